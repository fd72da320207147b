package migrations_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/internal/token"
	"github.com/tenantseal/tenantseal/migrations"
)

// enterProbe reads, in the transaction it runs in, what a previous user of a pooled connection could
// have left behind: the settings dirty changes, the transaction's access mode and the tenant context.
// It sleeps longer than the statement_timeout that dirty sets, so that it fails while that is in force.
const enterProbe = `SELECT current_setting('search_path'), current_setting('row_security'),
       current_setting('statement_timeout'), current_setting('default_transaction_read_only'),
       current_setting('TimeZone'), current_setting('application_name'),
       current_setting('transaction_read_only'), coalesce(current_setting('tenantseal.context', true), ''),
       (SELECT 'slept' FROM pg_sleep(0.6))`

type enterState struct {
	SearchPath, RowSecurity, StatementTimeout, DefaultReadOnly, TimeZone, AppName string
	ReadOnly, Context, Slept                                                      string
}

// redactor names the tokens a test uses, so that failures show which one a setting holds, not the
// token itself.
type redactor map[string]string

func (r redactor) redact(s string) string {
	for tok, name := range r {
		s = strings.ReplaceAll(s, tok, name)
	}
	return s
}

func scanEnterState(r pgx.Row) (enterState, error) {
	var s enterState
	err := r.Scan(&s.SearchPath, &s.RowSecurity, &s.StatementTimeout, &s.DefaultReadOnly, &s.TimeZone, &s.AppName,
		&s.ReadOnly, &s.Context, &s.Slept)
	return s, err
}

// dirty leaves on conn, at session level, what a statement of a previous user could have set with
// set_config(..., false) or SET: each would change what the next statement sees or may do. sessionTok
// becomes the session's own tenant context.
func dirty(t *testing.T, conn *pgx.Conn, sessionTok string) {
	t.Helper()
	for _, stmt := range []string{
		// The verifier's library loaded, as in any session that ran a scoped statement: c_enter then
		// runs within the statement_timeout below even on a busy machine.
		"SELECT tenantseal.current_tenant()",
		"SELECT set_config('search_path', 'pg_temp', false)",
		"SELECT set_config('row_security', 'off', false)",
		"SET statement_timeout = '500ms'",
		"SET TimeZone = 'Pacific/Kiritimati'",
		"SET application_name = 'previous user'",
		fmt.Sprintf("SET tenantseal.context = '%s'", sessionTok), // a token is hex, digits, dots and [a-z]
		"SET default_transaction_read_only = on",
	} {
		mustRun(t, conn, stmt)
	}
}

// mustExecConn connects to dsn sending every statement unprepared (pgx.QueryExecModeExec): parsed,
// planned and run in the round trip of its batch, after the c_enter before it, as a pool must send them
// (a statement prepared ahead, in a round trip of its own, is planned under the settings the previous
// user left on the connection).
func mustExecConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	c, err := pgx.ConnectConfig(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.WithoutCancel(testContext(t))) })
	return c
}

// enter runs c_enter(tok) and then each of queries in one implicit transaction (one pgx batch outside
// a transaction, as the pool sends them) and returns the batch's results for the queries to read.
func enter(t *testing.T, conn *pgx.Conn, tok any, queries ...string) pgx.BatchResults {
	t.Helper()
	b := &pgx.Batch{}
	b.Queue("SELECT tenantseal.c_enter($1)", tok)
	for _, q := range queries {
		b.Queue(q)
	}
	br := conn.SendBatch(testContext(t), b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		t.Fatalf("c_enter: %v", err)
	}
	return br
}

// TestEnterResetsTheSession: c_enter(token) leaves none of the session-level settings of a previous
// statement on the connection in force, sets the context for its transaction only, and does exactly
// what RESET ALL followed by set_config('tenantseal.context', token, true) does.
func TestEnterResetsTheSession(t *testing.T) {
	t.Parallel()
	f := newCFixture(t)
	ctx := testContext(t)
	soon := time.Now().Add(time.Hour)
	tok := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: soon})
	old := sign(t, f.key, token.Claims{Tenant: f.other.Handle(), Subject: "mallory", Expires: soon})

	names := redactor{tok: "<the token given to c_enter>", old: "<the session's own token>"}

	fresh, err := scanEnterState(mustConn(t, f.d.AppDSN).QueryRow(ctx, enterProbe))
	if err != nil {
		t.Fatal(err)
	}
	conn := mustExecConn(t, f.d.AppDSN)
	dirty(t, conn, old)
	if _, err := scanEnterState(conn.QueryRow(ctx, enterProbe)); sqlState(err) != "57014" {
		t.Fatalf("the probe on the dirty session: got %v, want a statement timeout (57014): dirty sets nothing", err)
	}

	br := enter(t, conn, tok, enterProbe)
	got, err := scanEnterState(br.QueryRow())
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("the probe after c_enter: %v", err)
	}
	// RESET ALL leaves the transaction's characteristics as they were: it began read-only.
	want := fresh
	want.ReadOnly, want.Context = "on", tok
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("in the transaction of c_enter (-want +got):\n%s", names.redact(diff))
	}

	after, err := scanEnterState(conn.QueryRow(ctx, enterProbe))
	if err != nil {
		t.Fatalf("the probe after the transaction of c_enter: %v", err)
	}
	if diff := cmp.Diff(fresh, after); diff != "" {
		t.Errorf("after the transaction of c_enter, want a fresh session's settings (-fresh +after):\n%s", names.redact(diff))
	}

	t.Run("as RESET ALL and set_config", func(t *testing.T) {
		// Every setting the session can see, read in the transaction and in the next one, on two
		// sessions left alike: one entered with c_enter, one with RESET ALL and set_config.
		// pg_settings leaves out placeholders such as tenantseal.context: read it by name.
		const settings = `SELECT name || ' = ' || coalesce(setting, '<null>') || ' (' || source || ')' FROM pg_settings
		                  UNION ALL SELECT 'tenantseal.context = ' || coalesce(current_setting('tenantseal.context', true), '<null>')
		                  ORDER BY 1`
		read := func(br pgx.BatchResults) []string {
			t.Helper()
			rows, err := br.Query()
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			return lines
		}
		next := func(c *pgx.Conn) []string {
			t.Helper()
			rows, err := c.Query(ctx, settings)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			return lines
		}
		sessions := map[string]*pgx.Conn{"c_enter": mustExecConn(t, f.d.AppDSN), "RESET ALL": mustExecConn(t, f.d.AppDSN)}
		for _, c := range sessions {
			dirty(t, c, old)
		}
		inEnter := read(enter(t, sessions["c_enter"], tok, settings))
		ref := &pgx.Batch{}
		ref.Queue("RESET ALL")
		ref.Queue("SELECT set_config('tenantseal.context', $1, true)", tok)
		ref.Queue(settings)
		rb := sessions["RESET ALL"].SendBatch(ctx, ref)
		for range 2 {
			if _, err := rb.Exec(); err != nil {
				t.Fatal(err)
			}
		}
		inReset := read(rb)
		if !slices.Contains(inEnter, "tenantseal.context = "+tok) {
			t.Errorf("c_enter's transaction has no tenantseal.context = <token> among %d settings", len(inEnter))
		}
		if diff := cmp.Diff(inReset, inEnter); diff != "" {
			t.Errorf("settings in the transaction (-RESET ALL and set_config +c_enter):\n%s", names.redact(diff))
		}
		if diff := cmp.Diff(next(sessions["RESET ALL"]), next(sessions["c_enter"])); diff != "" {
			t.Errorf("settings in the next transaction (-RESET ALL and set_config +c_enter):\n%s", names.redact(diff))
		}
	})
}

// TestEnterScopesTheTransaction: after c_enter, the policies show exactly the rows of the token's
// tenant in that transaction, none for NULL or ”, and nothing of it, nor of the session's own context,
// is left for the next statement.
func TestEnterScopesTheTransaction(t *testing.T) {
	t.Parallel()
	f := newCFixture(t)
	ctx := testContext(t)
	soon := time.Now().Add(time.Hour)
	tokOf := func(id tenantseal.TenantID) string {
		return sign(t, f.key, token.Claims{Tenant: id.Handle(), Subject: "alice", Expires: soon})
	}
	for _, tc := range []struct {
		name    string
		tok     any                 // c_enter's argument
		session tenantseal.TenantID // whose token the session holds at session level
		want    []string            // tenants of the rows visible, and current_tenant()
	}{
		{"active tenant", tokOf(f.active), f.other, []string{f.active.String()}},
		{"other tenant", tokOf(f.other), f.active, []string{f.other.String()}},
		{"NULL token", nil, f.active, nil},
		{"empty token", "", f.active, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := mustExecConn(t, f.d.AppDSN)
			dirty(t, conn, tokOf(tc.session))
			// Read with row_security off, as dirty left it, this query fails instead of showing rows.
			br := enter(t, conn, tc.tok,
				"SELECT coalesce(array_agg(tenant_id::text ORDER BY tenant_id), '{}') FROM public.customers",
				"SELECT tenantseal.current_tenant()::text")
			var rows []string
			var current *string
			err := br.QueryRow().Scan(&rows)
			if err == nil {
				err = br.QueryRow().Scan(&current)
			}
			if cerr := br.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("after c_enter: %v", err)
			}
			if diff := cmp.Diff(tc.want, rows, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("tenants of the visible customers (-want +got):\n%s", diff)
			}
			if got := deref(current); (tc.want == nil && current != nil) || (tc.want != nil && got != tc.want[0]) {
				t.Errorf("current_tenant() = %s, want %v", got, tc.want)
			}

			var ctxAfter *string
			var n int
			if err := conn.QueryRow(ctx, "SELECT current_setting('tenantseal.context', true), (SELECT count(*) FROM public.customers)").Scan(&ctxAfter, &n); err != nil {
				t.Fatal(err)
			}
			if ctxAfter == nil {
				ctxAfter = new(string)
			}
			if *ctxAfter != "" || n != 0 {
				t.Errorf("after the transaction: a context of %d bytes, %d customers visible; want no context and none", len(*ctxAfter), n)
			}
		})
	}
}

// TestEnterPrivileges: the app role may execute c_enter whichever verifier is selected, select_verifier
// grants it again when it selects the C one, and no other role may.
func TestEnterPrivileges(t *testing.T) {
	t.Parallel()
	f := newCFixture(t)
	ctx := testContext(t)
	owner := mustConn(t, f.d.OwnerDSN)
	app, auditor := f.d.Roles.App, f.d.Roles.Auditor
	may := func(role string) bool {
		t.Helper()
		var ok bool
		if err := owner.QueryRow(ctx, "SELECT has_function_privilege($1, 'tenantseal.c_enter(text)', 'EXECUTE')", role).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !may(app) || may(auditor) || may("public") {
		t.Errorf("EXECUTE on c_enter: app %v, auditor %v, public %v; want only the app role", may(app), may(auditor), may("public"))
	}
	if _, err := mustConn(t, f.d.AuditorDSN).Exec(ctx, "SELECT tenantseal.c_enter('')"); sqlState(err) != "42501" {
		t.Errorf("c_enter as the auditor: got %v, want permission denied (42501)", err)
	}
	for _, v := range []db.Verifier{db.VerifierPLpgSQL, db.VerifierC} {
		mustRun(t, owner, fmt.Sprintf("REVOKE EXECUTE ON FUNCTION tenantseal.c_enter(text) FROM %s", pgx.Identifier{app}.Sanitize()))
		f.d.UseVerifier(t, v)
		if got, want := may(app), v == db.VerifierC; got != want {
			t.Errorf("after select_verifier('%s'): the app role may execute c_enter %v, want %v", v, got, want)
		}
	}
}

// TestEnterMigratesUpAndDown: migration 26 brings tenantseal_verify 1.2 and the app role's grant,
// reverting it goes back to 1.1 without c_enter, and reverting 21 goes back to 1.0 from either.
func TestEnterMigratesUpAndDown(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	if pgtest.Verifiers(t, d)[0] != db.VerifierC {
		t.Fatalf("the server has no C verifier (extension tenantseal_verify): run the tests on the local image (`make pg-image`)")
	}
	ctx := testContext(t)
	owner := mustConn(t, d.OwnerDSN)
	state := func() string {
		t.Helper()
		var s string
		if err := owner.QueryRow(ctx, `SELECT (SELECT extversion FROM pg_extension WHERE extname = 'tenantseal_verify')
		        || CASE WHEN to_regprocedure('tenantseal.c_enter(text)') IS NULL THEN ' without c_enter'
		           WHEN has_function_privilege($1, 'tenantseal.c_enter(text)', 'EXECUTE') THEN ' with c_enter for the app role'
		           ELSE ' with c_enter, not for the app role' END`, d.Roles.App).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var available string
	if err := owner.QueryRow(ctx, "SELECT default_version FROM pg_available_extensions WHERE name = 'tenantseal_verify'").Scan(&available); err != nil || available != "1.2" {
		t.Fatalf("the server's default tenantseal_verify: got %q (%v), want 1.2 (rebuild the image: make pg-image)", available, err)
	}
	step := func(what string, do func() error, want string) {
		t.Helper()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := state(); got != want {
			t.Errorf("after %s: tenantseal_verify %s, want %s", what, got, want)
		}
	}
	mg := migrator(t, d, migrations.Options{ConfirmLoss: migrations.Losses(), Recorder: auditWriter(t, writerDSN(d)), AuditArchive: io.Discard})
	const ready = "1.2 with c_enter for the app role"
	step("the migrations up to 26", func() error { return mg.Goto(ctx, 26) }, ready)
	step("down to 25", func() error { return mg.Goto(ctx, 25) }, "1.1 without c_enter")
	step("up to 26", func() error { return mg.Goto(ctx, 26) }, ready)
	// A database whose migration 20 installed 1.2 (the server's default) reverts to 1.0 all the same.
	step("down to 25 with 1.2 installed", func() error {
		if err := mg.Goto(ctx, 25); err != nil {
			return err
		}
		_, err := owner.Exec(ctx, "ALTER EXTENSION tenantseal_verify UPDATE TO '1.2'")
		return err
	}, "1.2 with c_enter, not for the app role")
	step("down to 20", func() error { return mg.Goto(ctx, 20) }, "1.0 without c_enter")
	step("up again", func() error { return mg.Goto(ctx, 26) }, ready)
	if err := mg.Up(ctx); err != nil {
		t.Fatal(err)
	}

	// And it works as the app role.
	br := enter(t, mustExecConn(t, d.AppDSN), "", "SELECT coalesce(current_setting('tenantseal.context', true), '<null>')")
	var got string
	err := br.QueryRow().Scan(&got)
	br.Close()
	if err != nil || got != "" {
		t.Errorf("c_enter('') after up again: context %q (%v), want ''", got, err)
	}
}
