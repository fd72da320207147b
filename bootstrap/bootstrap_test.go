package bootstrap_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// secretsOf returns the secrets res holds: the roles' passwords and the context key, as hex.
func secretsOf(t testing.TB, res *bootstrap.Result) []string {
	t.Helper()
	var out []string
	for _, c := range []string{res.OwnerDSN, res.AppDSN, res.AuditorDSN, res.AuditWriterDSN} {
		s, err := dsn.Parse(c)
		if err != nil {
			t.Fatal(err)
		}
		if pw := s.Get(dsn.Password); len(pw) < 16 {
			t.Fatalf("got password %q in %s, want a generated one", pw, s)
		}
		out = append(out, s.Secrets()...)
	}
	if len(res.ContextKey.Secret) > 0 {
		out = append(out, fmt.Sprintf("%x", res.ContextKey.Secret))
	}
	return out
}

// TestRunKeepsConnectionSettings: whatever form the superuser's connection string has, the roles'
// connection strings keep its TLS and timeout settings and log in, and printing the result shows none of
// the passwords it generated nor the context key.
func TestRunKeepsConnectionSettings(t *testing.T) {
	t.Parallel()
	super, err := dsn.Parse(superDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	super.Set(dsn.ConnectTimeout, "7")
	pgx5 := strings.Replace(super.URL(), "postgres://", "pgx5://", 1) + "&x-migrations-table=ignored"
	for _, tc := range []struct {
		name, dsn   string
		skipMigrate bool
	}{
		{"URL", super.URL(), false},
		{"keyword/value", super.ConnString(), true},
		{"pgx5 URL", pgx5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix, database := freshNames(t)
			res, err := bootstrap.Run(testContext(t), tc.dsn, bootstrap.Options{Database: database, RolePrefix: prefix, SkipMigrate: tc.skipMigrate})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{res.OwnerDSN, res.AppDSN, res.AuditorDSN, res.AuditWriterDSN} {
				u, err := url.Parse(c)
				if err != nil {
					t.Fatal(err)
				}
				if got := u.Query(); got.Get("connect_timeout") != "7" || got.Get("sslmode") != super.Get("sslmode") || got.Get("sslrootcert") != super.Get("sslrootcert") {
					t.Errorf("got settings %q, want connect_timeout=7, sslmode=%s and sslrootcert=%s carried over", u.RawQuery, super.Get("sslmode"), super.Get("sslrootcert"))
				}
				mustConn(t, c)
			}
			if !tc.skipMigrate && res.ContextKey.ID == "" {
				t.Errorf("got no context key, want one")
			}
			secrets := secretsOf(t, res)
			for _, shown := range []string{res.String(), fmt.Sprint(res), fmt.Sprintf("%+v", res), fmt.Sprintf("%#v", res)} {
				for _, sec := range secrets {
					if strings.Contains(shown, sec) {
						t.Errorf("got %q, want it without the secret %q", shown, sec)
					}
				}
				if !strings.Contains(shown, database) {
					t.Errorf("got %q, want it to name database %s", shown, database)
				}
			}
		})
	}
}

func TestRunAgain(t *testing.T) {
	t.Parallel()
	prefix, database := freshNames(t)
	ctx := testContext(t)
	opts := bootstrap.Options{Database: database, RolePrefix: prefix}
	first, err := bootstrap.Run(ctx, superDSN(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := bootstrap.CheckLogins(ctx, first); err != nil {
		t.Fatalf("CheckLogins: %v", err)
	}
	// Nothing of tenantseal's lands in public: not its registry, not its migrations table.
	rows, err := mustConn(t, first.OwnerDSN).Query(ctx, `SELECT c.relname::text FROM pg_class c
		WHERE c.relnamespace = 'public'::regnamespace UNION ALL
		SELECT p.proname::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace`)
	if err != nil {
		t.Fatal(err)
	}
	if public, err := pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(public) != 0 {
		t.Errorf("got %v (%v) in public after bootstrap, want nothing", public, err)
	}

	t.Run("with the passwords and key changes nothing", func(t *testing.T) {
		opts := opts
		opts.Passwords = passwordsOf(t, first)
		opts.ContextKey = &first.ContextKey
		again, err := bootstrap.Run(ctx, superDSN(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Actions) != 0 {
			t.Errorf("got actions %q, want none", again.Actions)
		}
		want := *first
		want.Actions = nil
		if diff := cmp.Diff(&want, again); diff != "" {
			t.Errorf("second run (-first +second):\n%s", diff)
		}
	})

	t.Run("without the passwords", func(t *testing.T) {
		_, err := bootstrap.Run(ctx, superDSN(t), opts)
		var upe *bootstrap.UnknownPasswordError
		if !errors.As(err, &upe) || upe.Role != first.Roles.Owner {
			t.Errorf("got %v, want an UnknownPasswordError for %s", err, first.Roles.Owner)
		}
	})

	t.Run("a wrong password is found by CheckLogins, then reset", func(t *testing.T) {
		wrong := *first
		u, err := url.Parse(first.AppDSN)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(first.Roles.App, "not-the-password")
		wrong.AppDSN = u.String()
		var le *bootstrap.LoginError
		if err := bootstrap.CheckLogins(ctx, &wrong); !errors.As(err, &le) || le.Role != first.Roles.App {
			t.Fatalf("got %v, want a LoginError for %s", err, first.Roles.App)
		}

		opts := opts
		opts.ResetPasswords = true
		opts.ContextKey = &first.ContextKey
		reset, err := bootstrap.Run(ctx, superDSN(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := reset.Actions, []string{"reset the password of role " + first.Roles.Owner,
			"reset the password of role " + first.Roles.App, "reset the password of role " + first.Roles.Auditor,
			"reset the password of role " + first.Roles.AuditWriter}; !cmp.Equal(got, want) {
			t.Errorf("got actions %q, want %q", got, want)
		}
		if reset.AppDSN == first.AppDSN || reset.ContextKey.ID != first.ContextKey.ID {
			t.Errorf("got app DSN unchanged or key %s, want a new password and the key %s kept", reset.ContextKey.ID, first.ContextKey.ID)
		}
		if err := bootstrap.CheckLogins(ctx, reset); err != nil {
			t.Errorf("CheckLogins after the reset: %v", err)
		}
		if err := bootstrap.CheckLogins(ctx, first); !errors.As(err, &le) {
			t.Errorf("CheckLogins with the old passwords: got %v, want a LoginError", err)
		}
	})
}

func passwordsOf(t testing.TB, res *bootstrap.Result) bootstrap.Passwords {
	t.Helper()
	pw := bootstrap.Passwords{}
	for _, c := range []string{res.OwnerDSN, res.AppDSN, res.AuditorDSN, res.AuditWriterDSN} {
		s, err := dsn.Parse(c)
		if err != nil {
			t.Fatal(err)
		}
		pw[s.Get(dsn.User)] = s.Get(dsn.Password)
	}
	return pw
}

// TestSteps calls the steps one by one, as a deployment that makes its own database would.
func TestSteps(t *testing.T) {
	t.Parallel()
	prefix, database := freshNames(t)
	ctx := testContext(t)
	super := mustConn(t, superDSN(t))
	roles := db.Roles(prefix)

	if err := bootstrap.CheckSuperuser(ctx, super); err != nil {
		t.Fatalf("CheckSuperuser as the superuser: %v", err)
	}
	passwords, actions, err := bootstrap.CreateRoles(ctx, super, prefix, bootstrap.RoleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions, []string{"created role " + roles.Owner, "created role " + roles.App, "created role " + roles.Auditor,
		"created role " + roles.AuditWriter, "created role " + roles.Probe,
		"set the session limits of role " + roles.App + " (idle_in_transaction_session_timeout=60000ms, lock_timeout=5000ms, statement_timeout=30000ms)",
		"set the session limits of role " + roles.AuditWriter + " (lock_timeout=5000ms)"}; !cmp.Equal(got, want) {
		t.Errorf("got actions %q, want %q", got, want)
	}
	if s := fmt.Sprint(passwords) + fmt.Sprintf("%#v", passwords); strings.Contains(s, passwords[roles.App]) {
		t.Errorf("got %q, want the passwords not shown", s)
	}

	// A hand edit that lets the app role skip row-level security is undone.
	if _, err := super.Exec(ctx, "ALTER ROLE "+roles.App+" BYPASSRLS"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bootstrap.CreateRoles(ctx, super, prefix, bootstrap.RoleOptions{Passwords: passwords}); err != nil {
		t.Fatal(err)
	}
	var bypass bool
	if err := super.QueryRow(ctx, "SELECT rolbypassrls FROM pg_roles WHERE rolname = $1", roles.App).Scan(&bypass); err != nil || bypass {
		t.Errorf("got rolbypassrls %v (%v), want false after CreateRoles", bypass, err)
	}

	actions, err = bootstrap.CreateDatabase(ctx, super, database, prefix, bootstrap.DatabaseOptions{})
	if err != nil || !cmp.Equal(actions, []string{"created database " + database}) {
		t.Fatalf("CreateDatabase: got %q, %v, want it created", actions, err)
	}
	ownerDSN, err := bootstrap.RoleDSN(super, roles.Owner, passwords[roles.Owner], database)
	if err != nil {
		t.Fatal(err)
	}
	in, err := dsn.WithDatabase(superDSN(t), database)
	if err != nil {
		t.Fatal(err)
	}
	if err := bootstrap.SecurePublicSchema(ctx, mustConn(t, in), prefix); err != nil {
		t.Fatal(err)
	}
	if actions, err = bootstrap.Migrate(ctx, ownerDSN, prefix); err != nil || len(actions) != 1 {
		t.Fatalf("Migrate: got %q, %v, want one action", actions, err)
	}
	owner := mustConn(t, ownerDSN)
	key, created, err := bootstrap.EnsureContextKey(ctx, owner, nil)
	if err != nil || !created {
		t.Fatalf("EnsureContextKey: got created %v, %v, want a new key", created, err)
	}
	if again, created, err := bootstrap.EnsureContextKey(ctx, owner, &key); err != nil || created || again.ID != key.ID {
		t.Errorf("EnsureContextKey with the key: got %s, created %v, %v, want %s kept", again.ID, created, err, key.ID)
	}
	if err := bootstrap.CheckSuperuser(ctx, owner); err == nil || !strings.Contains(err.Error(), "must be a superuser") {
		t.Errorf("CheckSuperuser as the owner: got %v, want a refusal", err)
	}

	// The app role may never hold the owner's privileges.
	if _, err := super.Exec(ctx, "GRANT "+roles.Owner+" TO "+roles.App); err != nil {
		t.Fatal(err)
	}
	_, _, err = bootstrap.CreateRoles(ctx, super, prefix, bootstrap.RoleOptions{Passwords: passwords})
	if want := fmt.Sprintf("role %s is a member of %s", roles.App, roles.Owner); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestNamesAreChecked: bad names are refused before anything connects.
func TestNamesAreChecked(t *testing.T) {
	for _, opts := range []bootstrap.Options{{Database: "Bad-Name"}, {RolePrefix: "x; DROP ROLE postgres"}, {Database: strings.Repeat("a", 41)}} {
		_, err := bootstrap.Run(t.Context(), "host=127.0.0.1 port=1", opts)
		if err == nil || !strings.Contains(err.Error(), "must match") {
			t.Errorf("Run(%+v): got %v, want a refused name", opts, err)
		}
	}
	var conn *pgx.Conn // never used: the name is refused first
	if _, err := bootstrap.CreateDatabase(t.Context(), conn, "ok", "Bad", bootstrap.DatabaseOptions{}); err == nil {
		t.Errorf("CreateDatabase with a bad prefix: got no error")
	}
}

// Bootstrap gives the app role exactly its session limits, again on every run, and makes tenant tables
// keep no column statistics, also for columns added after protect_table hid them.
func TestSessionLimitsAndHiddenStatistics(t *testing.T) {
	t.Parallel()
	prefix, database := freshNames(t)
	ctx := testContext(t)
	res, err := bootstrap.Run(ctx, superDSN(t), bootstrap.Options{Database: database, RolePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	super := mustConn(t, superDSN(t))
	settings := func(role string) []string {
		t.Helper()
		rows, err := super.Query(ctx, `SELECT c FROM pg_db_role_setting s, unnest(s.setconfig) c
			WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 1`, role)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := []string{"idle_in_transaction_session_timeout=60000", "lock_timeout=5000", "statement_timeout=30000"}
	if got := settings(res.Roles.App); !cmp.Equal(got, want) {
		t.Errorf("app role settings: got %v, want %v", got, want)
	}
	// What the app role set on itself goes, in any database; the limits come back.
	mustExec(t, super, "ALTER ROLE "+res.Roles.App+" SET statement_timeout = 0")
	mustExec(t, super, "ALTER ROLE "+res.Roles.App+" IN DATABASE "+database+" SET default_transaction_read_only = on")
	actions, err := bootstrap.SetSessionLimits(ctx, super, res.Roles, bootstrap.SessionLimits{})
	if err != nil || len(actions) != 1 {
		t.Errorf("SetSessionLimits again: got %q (%v), want one action", actions, err)
	}
	if got := settings(res.Roles.App); !cmp.Equal(got, want) {
		t.Errorf("app role settings after the reset: got %v, want %v", got, want)
	}

	in := mustConn(t, pgtest.WithDatabase(superDSN(t), database))
	mustExec(t, in, fmt.Sprintf(`SET ROLE %s;
		CREATE TABLE public.notes (tenant_id uuid NOT NULL, id uuid NOT NULL DEFAULT gen_random_uuid(), body text, PRIMARY KEY (tenant_id, id));
		SELECT tenantseal.protect_table('public.notes');
		ALTER TABLE public.notes ADD COLUMN later text;
		RESET ROLE;
		INSERT INTO tenantseal.tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'a');
		INSERT INTO public.notes (tenant_id, body, later) SELECT '00000000-0000-0000-0000-000000000001', 'b' || i, 'l' || i FROM generate_series(1, 50) i;
		ANALYZE public.notes`, res.Roles.Owner))
	count := func() int {
		var n int
		if err := in.QueryRow(ctx, "SELECT count(*) FROM pg_statistic WHERE starelid = 'public.notes'::regclass").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("before: %d column statistics, want 1 (of the column added after protect_table)", n)
	}
	if n, err := bootstrap.HideStatistics(ctx, in, prefix); err != nil || n != 1 {
		t.Errorf("HideStatistics: removed %d (%v), want 1", n, err)
	}
	mustExec(t, in, "ANALYZE public.notes")
	if n := count(); n != 0 {
		t.Errorf("after: %d column statistics, want none, also after ANALYZE", n)
	}
}
