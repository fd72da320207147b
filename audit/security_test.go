package audit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/migrations"
)

// secured is a database bootstrapped as a superuser on roles of its own, as `tenantseal bootstrap`
// does it: event triggers installed, and roles that a test may change without touching other tests'.
type secured struct {
	res      *bootstrap.Result
	superDSN string // the superuser, in the database
}

func newSecured(t *testing.T) *secured {
	t.Helper()
	ctx := testContext(t)
	server := pgtest.SharedCluster(t).Server
	var b [3]byte
	rand.Read(b[:])
	prefix := "sw" + hex.EncodeToString(b[:])
	res, err := bootstrap.Run(ctx, server.SuperDSN, bootstrap.Options{Database: prefix + "_db", RolePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, server.SuperDSN)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{res.Database}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
		r := res.Roles
		for _, role := range []string{r.App, r.Auditor, r.AuditWriter, r.Probe, r.Owner} {
			id := pgx.Identifier{role}.Sanitize()
			if _, err := conn.Exec(ctx, "DROP OWNED BY "+id+"; DROP ROLE "+id); err != nil {
				t.Error(err)
			}
		}
	})
	if !slices.ContainsFunc(res.Actions, func(a string) bool { return strings.Contains(a, "created event trigger tenantseal_audit_ddl") }) {
		t.Fatalf("bootstrap as a superuser: got actions %q, want the event triggers created", res.Actions)
	}
	return &secured{res: res, superDSN: pgtest.WithDatabase(server.SuperDSN, res.Database)}
}

// after returns the entries appended after seq, read as the auditor.
func (s *secured) after(t *testing.T, seq int64) []audit.Entry {
	t.Helper()
	out, err := audit.Query(testContext(t), mustConn(t, s.res.AuditorDSN), audit.Filter{AfterSeq: seq, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *secured) head(t *testing.T) int64 {
	t.Helper()
	var seq int64
	if err := mustConn(t, s.res.AuditorDSN).QueryRow(testContext(t), "SELECT seq FROM tenantseal.audit_head").Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

func (s *secured) verify(t *testing.T) {
	t.Helper()
	res, err := audit.Verify(testContext(t), mustConn(t, s.res.AuditorDSN))
	if err != nil || res.Break != nil {
		t.Errorf("audit verify: got %+v (%v), want the chain intact", res, err)
	}
}

// Each kind of DDL on a tenant table, its policies and tenantseal's functions is in the chain, as the
// owner and as a superuser: a ddl entry with the command, the table and the role, and what it changed,
// old → new.
func TestDDLRecorded(t *testing.T) {
	t.Parallel()
	s := newSecured(t)
	ctx := testContext(t)
	roles := s.res.Roles
	var superuser string
	if err := mustConn(t, s.superDSN).QueryRow(ctx, "SELECT session_user").Scan(&superuser); err != nil {
		t.Fatal(err)
	}
	for _, actor := range []struct {
		name, dsn, role string
	}{{"owner", s.res.OwnerDSN, roles.Owner}, {"superuser", s.superDSN, superuser}} {
		t.Run(actor.name, func(t *testing.T) {
			conn := mustConn(t, actor.dsn)
			tbl := "notes_" + actor.name
			fn := "tenantseal.probe_" + actor.name + "()"
			if _, err := mustConn(t, s.res.OwnerDSN).Exec(ctx, fmt.Sprintf(`CREATE TABLE public.%s (tenant_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (tenant_id, id));
				SELECT tenantseal.protect_table('public.%[1]s')`, tbl)); err != nil {
				t.Fatal(err)
			}
			q := "public." + tbl
			for _, tc := range []struct {
				sql, tag, table, change string
			}{
				{"ALTER POLICY " + tbl + "_select ON " + q + " USING (true)", "ALTER POLICY", q, "policy " + tbl + "_select on " + q + " definition: PERMISSIVE FOR SELECT TO " + roles.App + " USING ((tenant_id = ( SELECT tenantseal.current_tenant() AS current_tenant))) → PERMISSIVE FOR SELECT TO " + roles.App + " USING (true)"},
				{"ALTER TABLE " + q + " NO FORCE ROW LEVEL SECURITY", "ALTER TABLE", q, "table " + q + " forced row security: forced → not forced"},
				{"ALTER TABLE " + q + " DISABLE ROW LEVEL SECURITY", "ALTER TABLE", q, "table " + q + " row security: enabled → disabled"},
				{"DROP POLICY " + tbl + "_delete ON " + q, "DROP POLICY", q, "policy " + tbl + "_delete on " + q + " definition: PERMISSIVE FOR DELETE TO " + roles.App + " USING ((tenant_id = ( SELECT tenantseal.current_tenant() AS current_tenant))) → (none)"},
				{"CREATE POLICY open ON " + q + " USING (true)", "CREATE POLICY", q, "policy open on " + q + " definition: (none) → PERMISSIVE FOR ALL TO PUBLIC USING (true)"},
				{"GRANT SELECT ON " + q + " TO " + roles.Auditor, "GRANT", "", "table " + q + " privileges: "},
				{"REVOKE DELETE ON " + q + " FROM " + roles.App, "REVOKE", "", roles.App + "=arw/"},
				{"ALTER TABLE " + q + " ADD COLUMN note text", "ALTER TABLE", q, ""},
				{"CREATE FUNCTION " + fn + " RETURNS int LANGUAGE sql AS 'SELECT 1'", "CREATE FUNCTION", "", "function " + strings.TrimSuffix(fn, "()") + "() definition: (none) → owner " + actor.role + " SECURITY INVOKER LANGUAGE sql body sha256 "},
				{"ALTER FUNCTION " + fn + " SECURITY DEFINER", "ALTER FUNCTION", "", "SECURITY INVOKER LANGUAGE sql body sha256 "},
				{"DROP FUNCTION " + fn, "DROP FUNCTION", "", " → (none)"},
				{"DROP TABLE " + q, "DROP TABLE", q, "table " + q + " row security: disabled → (none)"},
			} {
				before := s.head(t)
				if _, err := conn.Exec(ctx, tc.sql); err != nil {
					t.Fatalf("%s: %v", tc.sql, err)
				}
				got := s.after(t, before)
				ddl := slices.IndexFunc(got, func(en audit.Entry) bool {
					return en.Kind == tenantseal.EventDDL && str(en.Operation) == tc.tag && str(en.Subject) == "db:"+actor.role &&
						(tc.table == "" || str(en.Table) == tc.table)
				})
				if ddl < 0 {
					t.Errorf("%s: got entries %s, want a ddl entry %s by db:%s on %q", tc.sql, describe(got), tc.tag, actor.role, tc.table)
					continue
				}
				if tc.change != "" && !slices.ContainsFunc(got[ddl:], func(en audit.Entry) bool {
					return en.Kind == tenantseal.EventSecurityChange && strings.Contains(str(en.Detail), tc.change) && str(en.Subject) == "db:"+actor.role
				}) {
					t.Errorf("%s: got entries %s, want a security_change after the ddl entry containing %q", tc.sql, describe(got), tc.change)
				}
			}
		})
	}
	// The app role's own DDL records nothing and changes nothing it could hide behind: it can create
	// no object, and it can neither run nor disable what records.
	app := mustConn(t, s.res.AppDSN)
	before := s.head(t)
	for _, sql := range []string{
		"SELECT tenantseal.security_watch('forged')",
		"SELECT tenantseal.security_compare('forged')",
		"SELECT tenantseal.security_compare('forged', '[{\"kind\": \"ddl\"}]')",
		"SELECT tenantseal.audit_ddl()",
		"SELECT tenantseal.audit_ddl_drop()",
		"SELECT * FROM tenantseal.audit_append('[{\"kind\": \"security_change\", \"detail\": \"forged\"}]')",
		"UPDATE tenantseal.security_state SET snapshot = '{}'",
		"SELECT * FROM tenantseal.security_state",
		"ALTER EVENT TRIGGER tenantseal_audit_ddl DISABLE",
		"DROP EVENT TRIGGER tenantseal_audit_drop",
		"CREATE TEMP TABLE t (a int)",
	} {
		if _, err := app.Exec(ctx, sql); sqlState(err) != "42501" && sqlState(err) != "42883" {
			t.Errorf("as the app role, %s: got %v, want it refused", sql, err)
		}
	}
	// The owner may replace the functions, not the triggers: only their superuser may disable them.
	owner := mustConn(t, s.res.OwnerDSN)
	for _, sql := range []string{"ALTER EVENT TRIGGER tenantseal_audit_ddl DISABLE", "DROP EVENT TRIGGER tenantseal_audit_drop"} {
		if _, err := owner.Exec(ctx, sql); sqlState(err) != "42501" {
			t.Errorf("as the owner, %s: got %v, want it refused", sql, err)
		}
	}
	if got := s.after(t, before); len(got) != 0 {
		t.Errorf("got entries %s after the app role's and owner's refused attempts, want none", describe(got))
	}
	s.verify(t)
}

// Roles are global objects that event triggers never see: the writer's comparison of the security
// state records their changes, as old → new, under its instance name; the app role can run it neither
// to forge entries nor to consume changes before they are recorded.
//
// Not parallel: the comparison covers every superuser and BYPASSRLS role of the cluster, as it must in
// production, and the package's parallel tests create and drop such roles (their probe roles) on the
// same shared cluster; a sequential test runs while none of them does.
func TestSecurityWatcherRecordsRoleChanges(t *testing.T) {
	s := newSecured(t)
	ctx := testContext(t)
	roles := s.res.Roles
	w := mustWriter(t, &pgtest.Database{AuditWriterDSN: s.res.AuditWriterDSN}, func(c *audit.Config) { c.Instance = "watch-test" })
	first, err := w.CheckSecurity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(first, func(e audit.SecurityEntry) bool {
		return e.Kind == tenantseal.EventSecurityBaseline && e.Subject == "watcher:watch-test"
	}) {
		t.Fatalf("first check: got %v, want the baseline recorded by watcher:watch-test", first)
	}
	if again, err := w.CheckSecurity(ctx); err != nil || len(again) != 0 {
		t.Fatalf("check without a change: got %v (%v), want nothing", again, err)
	}

	app := mustConn(t, s.res.AppDSN)
	if _, err := app.Exec(ctx, "ALTER ROLE "+pgx.Identifier{roles.App}.Sanitize()+" SET work_mem = '2MB'"); err != nil {
		t.Fatal(err) // PostgreSQL lets every role do this to itself
	}
	super := mustConn(t, s.superDSN)
	for _, sql := range []string{
		"GRANT " + pgx.Identifier{roles.Owner}.Sanitize() + " TO " + pgx.Identifier{roles.App}.Sanitize(),
		"ALTER ROLE " + pgx.Identifier{roles.App}.Sanitize() + " BYPASSRLS",
	} {
		if _, err := super.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := app.Exec(ctx, "SELECT * FROM tenantseal.security_watch('forged')"); sqlState(err) != "42501" {
		t.Errorf("as the app role, security_watch: got %v, want it refused", err)
	}
	got, err := w.CheckSecurity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"role " + roles.App + " settings in every database: ",
		"role " + roles.App + " member of: none → " + roles.Owner,
		"role " + roles.Owner + " members: none → " + roles.App,
		"role " + roles.App + " attributes: NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB LOGIN",
	} {
		if !slices.ContainsFunc(got, func(e audit.SecurityEntry) bool {
			return e.Kind == tenantseal.EventSecurityChange && e.Subject == "watcher:watch-test" && strings.HasPrefix(e.Detail, want)
		}) {
			t.Errorf("got %v, want a change %q…", got, want)
		}
	}
	for _, e := range got {
		switch {
		case strings.HasPrefix(e.Detail, "role "+roles.App+" settings in every database: ") && !strings.HasSuffix(e.Detail, "work_mem=2MB"):
			t.Errorf("settings change %q: want the new work_mem after the arrow", e.Detail)
		case strings.HasPrefix(e.Detail, "role "+roles.App+" attributes: ") && !strings.Contains(e.Detail, "→ NOSUPERUSER BYPASSRLS"):
			t.Errorf("attribute change %q: want BYPASSRLS after the arrow", e.Detail)
		}
	}
	// The same, in the chain as the auditor reads it.
	entries := s.after(t, 0)
	if n := countKind(entries, tenantseal.EventSecurityChange); n != len(got) {
		t.Errorf("got %d security_change entries in the chain, want the %d the check returned", n, len(got))
	}
	s.verify(t)
}

// A writer with a SecurityInterval compares at start: the baseline is in the chain without a call.
func TestSecurityWatcherComparesAtStart(t *testing.T) {
	t.Parallel()
	s := newSecured(t)
	mustWriter(t, &pgtest.Database{AuditWriterDSN: s.res.AuditWriterDSN}, func(c *audit.Config) { c.SecurityInterval = time.Hour })
	deadline := time.Now().Add(20 * time.Second)
	for countKind(s.after(t, 0), tenantseal.EventSecurityBaseline) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no security baseline 20 s after the writer started: got %s", describe(s.after(t, 0)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countKind(entries []audit.Entry, k tenantseal.EventKind) int {
	n := 0
	for _, en := range entries {
		if en.Kind == k {
			n++
		}
	}
	return n
}

func describe(entries []audit.Entry) string {
	var b strings.Builder
	for _, en := range entries {
		fmt.Fprintf(&b, "\n  #%d %s %s %s %s %s", en.Seq, en.Kind, str(en.Subject), str(en.Table), str(en.Operation), str(en.Detail))
	}
	return b.String()
}

// Every keyset unwrap (a keyring cache miss) and every operator key action is in the chain, naming the
// tenant and the purpose or what changed, and no key material; a cache hit records nothing.
func TestKeyUseRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testContext(t)
	admin := e.admin.WithRecorder(e.w)
	op := tenantseal.WithPrincipal(ctx, tenantseal.OperatorPrincipal("ops@host"))
	b, err := admin.CreateTenant(op, "b")
	if err != nil {
		t.Fatal(err)
	}
	ctxB := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: b, Subject: "b-user"})
	bc := reference.Customer{DisplayName: "B", Email: "b@x", Phone: "secret-phone-555"}
	if err := e.customers.Insert(ctxB, &bc); err != nil {
		t.Fatal(err)
	}
	if _, err := e.customers.Get(ctxB, bc.ID); err != nil { // a cache hit
		t.Fatal(err)
	}
	if _, err := admin.Rotate(op, b); err != nil {
		t.Fatal(err)
	}
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "next.json"))
	if err != nil {
		t.Fatal(err)
	}
	next, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RotateKEK(op, next); err != nil {
		t.Fatal(err)
	}
	got := e.events(t)
	var unwraps []string
	for _, en := range got {
		if d := str(en.Detail); strings.Contains(d, "secret-phone") || strings.Contains(d, "\"value\"") || strings.Contains(d, "keyData") {
			t.Errorf("entry %s %q holds plaintext or key material", en.Kind, d)
		}
		if en.Kind == tenantseal.EventKeyUnwrap {
			if str(en.TargetTenant) != b.String() || str(en.TenantID) != b.String() || str(en.Table) != "tenantseal.tenant_keysets" || str(en.Operation) != "unwrap" {
				t.Errorf("unwrap entry %s: want tenant and target %s, table tenantseal.tenant_keysets, operation unwrap", describe([]audit.Entry{en}), b)
			}
			if !strings.HasPrefix(str(en.Detail), str(en.RowKey)+" keyset unwrapped with shared KEK kek-") || !strings.Contains(str(en.Detail), " by ") {
				t.Errorf("unwrap detail %q: want the purpose, the KEK's id and the process", str(en.Detail))
			}
			unwraps = append(unwraps, str(en.RowKey))
		}
	}
	if !slices.Equal(unwraps, []string{"aead", "prf"}) {
		t.Errorf("got unwraps of purposes %v, want aead then prf once: the second read is a cache hit", unwraps)
	}
	var ops []string
	for _, en := range got {
		if en.Kind.Operator() {
			if str(en.Subject) != "ops@host" || en.TenantID != nil {
				t.Errorf("operator entry %s: want subject ops@host and no tenant", describe([]audit.Entry{en}))
			}
			ops = append(ops, string(en.Kind)+" "+str(en.TargetTenant))
		}
	}
	if want := []string{"key_create " + b.String(), "key_rotate " + b.String(), "kek_rotate <nil>"}; !slices.Equal(ops, want) {
		t.Errorf("operator key actions: got %v, want %v", ops, want)
	}
}

// Reverting 0022 while the superuser's event triggers exist is refused to the owner, naming what a
// superuser runs first; as a superuser it drops them, and bootstrap's step puts them back after 0022
// is applied again.
func TestRevertWithEventTriggers(t *testing.T) {
	t.Parallel()
	s := newSecured(t)
	ctx := testContext(t)
	mg, err := migrations.New(ctx, s.res.OwnerDSN, migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	if err := mg.Goto(ctx, 22); err != nil { // what follows 0022 holds nothing here
		t.Fatal(err)
	}
	err = mg.Down(ctx, 1)
	if err == nil || !strings.Contains(err.Error(), "DROP EVENT TRIGGER tenantseal_audit_ddl;") {
		t.Fatalf("revert 0022 as the owner: got %v, want a refusal naming the event triggers to drop", err)
	}
	if v, dirty, err := mg.Version(); err != nil || v != 22 || dirty {
		t.Errorf("after the refusal: version %d dirty %v (%v), want 22 clean", v, dirty, err)
	}
	super, err := migrations.New(ctx, s.superDSN, migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	if err := super.Down(ctx, 1); err != nil {
		t.Fatalf("revert 0022 as a superuser: %v", err)
	}
	if err := mg.Up(ctx); err != nil {
		t.Fatal(err)
	}
	actions, err := bootstrap.InstallEventTriggers(ctx, mustConn(t, s.superDSN))
	if err != nil || len(actions) != 2 {
		t.Errorf("install again: got %q (%v), want both event triggers created", actions, err)
	}
	if actions, err := bootstrap.InstallEventTriggers(ctx, mustConn(t, s.superDSN)); err != nil || len(actions) != 0 {
		t.Errorf("install once more: got %q (%v), want nothing to do", actions, err)
	}
	var nse *bootstrap.NeedsSuperuserError
	if _, err := bootstrap.InstallEventTriggers(ctx, mustConn(t, s.res.OwnerDSN)); !errors.As(err, &nse) {
		t.Errorf("install as the owner: got %v, want a *NeedsSuperuserError", err)
	}
	s.verify(t)
}

// The owner may drop the triggers' functions, and with them the triggers: the remaining trigger records
// the first, the watcher the last.
func TestOwnerDroppingTheTriggersIsRecorded(t *testing.T) {
	t.Parallel()
	s := newSecured(t)
	ctx := testContext(t)
	w := mustWriter(t, &pgtest.Database{AuditWriterDSN: s.res.AuditWriterDSN}, func(c *audit.Config) { c.Instance = "watch-test" })
	if _, err := w.CheckSecurity(ctx); err != nil {
		t.Fatal(err)
	}
	owner := mustConn(t, s.res.OwnerDSN)
	before := s.head(t)
	if _, err := owner.Exec(ctx, "DROP FUNCTION tenantseal.audit_ddl() CASCADE"); err != nil {
		t.Fatal(err)
	}
	got := s.after(t, before)
	if !slices.ContainsFunc(got, func(en audit.Entry) bool {
		return en.Kind == tenantseal.EventDDL && str(en.Operation) == "DROP FUNCTION" && str(en.Subject) == "db:"+s.res.Roles.Owner
	}) || !slices.ContainsFunc(got, func(en audit.Entry) bool {
		return en.Kind == tenantseal.EventSecurityChange && strings.HasPrefix(str(en.Detail), "event trigger tenantseal_audit_ddl definition: ") &&
			strings.HasSuffix(str(en.Detail), " → (none)")
	}) {
		t.Errorf("owner drops audit_ddl: got %s, want the drop and the trigger's removal recorded", describe(got))
	}
	if _, err := owner.Exec(ctx, "DROP FUNCTION tenantseal.audit_ddl_drop() CASCADE"); err != nil {
		t.Fatal(err)
	}
	changes, err := w.CheckSecurity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(changes, func(e audit.SecurityEntry) bool {
		return e.Subject == "watcher:watch-test" && strings.HasPrefix(e.Detail, "event trigger tenantseal_audit_drop definition: ") &&
			strings.HasSuffix(e.Detail, " → (none)")
	}) {
		t.Errorf("owner drops audit_ddl_drop: the watcher got %v, want the last trigger's removal", changes)
	}
	s.verify(t)
}
