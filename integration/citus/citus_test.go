package citus_test

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/cli"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/internal/token"
	"github.com/tenantseal/tenantseal/internal/uuid"
	"github.com/tenantseal/tenantseal/isolation"
	"github.com/tenantseal/tenantseal/lint"
	"github.com/tenantseal/tenantseal/tenants"
)

// notes distributes app.notes by tenant and gives each tenant rows 1..n through the app role.
func (c *cluster) notes(t testing.TB, p *db.Pool, n int, ids ...tenantseal.TenantID) {
	t.Helper()
	c.ownerExec(t,
		"CREATE SCHEMA app",
		fmt.Sprintf("GRANT USAGE ON SCHEMA app TO %s", c.res.Roles.App),
		"CREATE TABLE app.notes (tenant_id uuid NOT NULL, id bigint NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id))",
		"SELECT tenantseal.distribute_table('app.notes')",
	)
	// A multi-row VALUES: Citus runs INSERT ... SELECT of rows the coordinator makes as COPY to the
	// shards, which PostgreSQL refuses under row-level security.
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("($1, %d, 'note %d')", i+1, i+1)
	}
	for _, id := range ids {
		if _, err := p.Exec(as(t, id), "INSERT INTO app.notes VALUES "+strings.Join(values, ", "), id); err != nil {
			t.Fatalf("seed the notes of %s: %v", id, err)
		}
	}
}

func count(t testing.TB, p *db.Pool, id tenantseal.TenantID, sql string, args ...any) (int, error) {
	t.Helper()
	var n int
	err := p.QueryRow(as(t, id), sql, args...).Scan(&n)
	return n, err
}

// The policy of a distributed table is the Citus form, evaluated on the workers: each tenant sees and
// writes its own rows only, with or without a tenant predicate of its own, naming the other tenant or
// not.
func TestDistributedTableIsolation(t *testing.T) {
	c := newCluster(t)
	a, b := c.tenant(t, "Acme"), c.tenant(t, "Globex")
	p := c.pool(t, nil)
	if !p.Citus() {
		t.Fatal("the pool on the coordinator is not in Citus mode")
	}
	if v := os.Getenv(pgtest.VerifierEnv); v != "" && string(p.Verifier()) != v {
		t.Fatalf("the coordinator runs the %s verifier, want %s", p.Verifier(), v)
	}
	for i, v := range c.workerValues(t, "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'c_current_tenant') AND pg_get_functiondef('tenantseal.current_tenant()'::regprocedure) ~ 'c_current_tenant' THEN 'c' ELSE 'plpgsql' END") {
		if v != string(p.Verifier()) {
			t.Errorf("worker %s runs the %s verifier, the coordinator %s", c.workers[i], v, p.Verifier())
		}
	}
	c.notes(t, p, 40, a, b)

	var qual string
	if err := c.ownerConn(t).QueryRow(testContext(t), `SELECT pg_get_expr(polqual, polrelid) FROM pg_policy
		WHERE polrelid = 'app.notes'::regclass AND polcmd = 'r'`).Scan(&qual); err != nil {
		t.Fatal(err)
	}
	if qual != "(tenant_id = tenantseal.current_tenant())" {
		t.Errorf("policy of the distributed table: %s, want the Citus form without a sub-select", qual)
	}
	for _, tc := range []struct {
		name string
		sql  string
		args []any
		want int
	}{
		{"no predicate (every shard)", "SELECT count(*) FROM app.notes", nil, 40},
		{"own tenant", "SELECT count(*) FROM app.notes WHERE tenant_id = $1", []any{a}, 40},
		{"the other tenant", "SELECT count(*) FROM app.notes WHERE tenant_id = $1", []any{b}, 0},
		{"the other tenant's row", "SELECT count(*) FROM app.notes WHERE tenant_id = $1 AND id = 7", []any{b}, 0},
		{"both tenants", "SELECT count(*) FROM app.notes WHERE tenant_id IN ($1, $2)", []any{a, b}, 40},
	} {
		n, err := count(t, p, a, tc.sql, tc.args...)
		if err != nil || n != tc.want {
			t.Errorf("%s as Acme: %d rows (%v), want %d", tc.name, n, err, tc.want)
		}
	}
	var pe *pgconn.PgError
	if _, err := p.Exec(as(t, a), "INSERT INTO app.notes VALUES ($1, 1000, 'planted')", b); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("insert of a Globex row as Acme: %v, want 42501 (row-level security)", err)
	}
	if tag, err := p.Exec(as(t, a), "UPDATE app.notes SET body = 'x' WHERE tenant_id = $1", b); err != nil || tag.RowsAffected() != 0 {
		t.Errorf("update of Globex's rows as Acme: %v rows (%v), want 0", tag.RowsAffected(), err)
	}
	if tag, err := p.Exec(as(t, a), "DELETE FROM app.notes"); err != nil || tag.RowsAffected() != 40 {
		t.Errorf("delete of every row as Acme: %v rows (%v), want Acme's 40", tag.RowsAffected(), err)
	}
	if n, err := count(t, p, b, "SELECT count(*) FROM app.notes"); err != nil || n != 40 {
		t.Errorf("Globex after Acme deleted everything it could: %d rows (%v), want 40", n, err)
	}
	// Without a context the workers admit nothing.
	if n, err := p.Unscoped().Query(testContext(t), "SELECT 1 FROM app.notes"); err == nil {
		rows := 0
		for n.Next() {
			rows++
		}
		n.Close()
		if rows != 0 {
			t.Errorf("unscoped read: %d rows, want 0", rows)
		}
	}
}

// A statement with the tenant predicate is one task on one worker; the policy is an index condition
// (or a one-time filter beside the statement's own) there.
func TestRouting(t *testing.T) {
	c := newCluster(t)
	a, b := c.tenant(t, "Acme"), c.tenant(t, "Globex")
	p := c.pool(t, nil)
	c.notes(t, p, 20, a, b)
	plan := func(sql string, args ...any) string {
		rows, err := p.Query(as(t, a), "EXPLAIN (COSTS OFF, VERBOSE) "+sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	routed := plan("SELECT body FROM app.notes WHERE tenant_id = $1 AND id = $2", a, 3)
	if !strings.Contains(routed, "Task Count: 1\n") {
		t.Errorf("point read with the tenant predicate is not one task:\n%s", routed)
	}
	// With the statement's own tenant predicate the planner turns the policy into a one-time filter
	// (the verified tenant compared once with the predicate's) in front of the index scan; without it the
	// policy is the index condition. The verifier is current_tenant() or the C one it inlines to.
	onceBefore := regexp.MustCompile(`One-Time Filter: \(tenantseal\.(c_)?current_tenant\(\) = '[0-9a-f-]+'::uuid\)\n\s+->  Index Scan using notes_pkey_\d+`)
	if !onceBefore.MatchString(routed) {
		t.Errorf("point read: the policy is not a one-time filter before the index scan on the worker:\n%s", routed)
	}
	// The statements of the repositories (repo/statements.go): each names the tenant first.
	for _, sql := range []string{
		"SELECT count(*) FROM app.notes WHERE tenant_id = $1",
		"SELECT id, body FROM app.notes WHERE tenant_id = $1 AND id > 5 ORDER BY tenant_id, id LIMIT 50",
		"UPDATE app.notes SET body = 'x' WHERE tenant_id = $1 AND id = 4",
		"DELETE FROM app.notes WHERE tenant_id = $1 AND id = 4",
	} {
		if got := plan(sql, a); !strings.Contains(got, "Task Count: 1\n") {
			t.Errorf("%s is not one task:\n%s", sql, got)
		}
	}
	fanned := plan("SELECT body FROM app.notes WHERE id = $1", 3)
	asIndexCond := regexp.MustCompile(`Index Cond: \(\(notes\.tenant_id = tenantseal\.(c_)?current_tenant\(\)\) AND`)
	if strings.Contains(fanned, "Task Count: 1\n") || !asIndexCond.MatchString(fanned) {
		t.Errorf("without the tenant predicate: want every shard, each with the policy as its index condition:\n%s", fanned)
	}
}

// Key rotation, new tenants, suspension and settings reach every worker before the coordinator's
// transaction commits; a worker that drifted is brought back by sync_nodes.
func TestVerifierStateReachesWorkers(t *testing.T) {
	c := newCluster(t)
	digest := func() (string, []string) {
		var d string
		if err := c.ownerConn(t).QueryRow(testContext(t), "SELECT tenantseal.node_state_digest()").Scan(&d); err != nil {
			t.Fatal(err)
		}
		return d, c.workerValues(t, "SELECT tenantseal.node_state_digest()")
	}
	same := func(step string) {
		t.Helper()
		d, ws := digest()
		for i, w := range ws {
			if w != d {
				t.Errorf("after %s: worker %s's verifier tables differ from the coordinator's", step, c.workers[i])
			}
		}
	}
	same("bootstrap")
	a, b := c.tenant(t, "Acme"), c.tenant(t, "Globex")
	same("creating two tenants")
	p := c.pool(t, nil)
	c.notes(t, p, 10, a, b)

	if err := tenants.Suspend(testContext(t), c.ownerConn(t), b); err != nil {
		t.Fatal(err)
	}
	same("suspending Globex")
	if n, err := count(t, p, b, "SELECT count(*) FROM app.notes WHERE tenant_id = $1", b); !errors.Is(err, db.ErrInvalidContext) {
		t.Errorf("suspended Globex reads its rows on the workers: %d rows (%v), want ErrInvalidContext", n, err)
	}
	if err := tenants.Resume(testContext(t), c.ownerConn(t), b); err != nil {
		t.Fatal(err)
	}
	if n, err := count(t, p, b, "SELECT count(*) FROM app.notes WHERE tenant_id = $1", b); err != nil || n != 10 {
		t.Errorf("resumed Globex: %d rows (%v), want 10", n, err)
	}

	// Rotation: the new key verifies on every worker at once, the old one stops after the overlap.
	key, err := db.RotateContextKey(testContext(t), c.ownerConn(t), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	same("rotating the context key")
	rotated := c.pool(t, func(cfg *db.Config) { cfg.SigningKey = key })
	if n, err := count(t, rotated, a, "SELECT count(*) FROM app.notes WHERE tenant_id = $1", a); err != nil || n != 10 {
		t.Errorf("the new key on the workers: %d rows (%v), want 10", n, err)
	}
	time.Sleep(1500 * time.Millisecond)
	old := c.pool(t, func(cfg *db.Config) { cfg.TokenTTL = 2 * time.Second })
	if n, err := count(t, old, a, "SELECT count(*) FROM app.notes WHERE tenant_id = $1", a); !errors.Is(err, db.ErrInvalidContext) {
		t.Errorf("the retired key after its overlap: %d rows (%v), want ErrInvalidContext", n, err)
	}

	// A worker changed behind the coordinator's back is found and brought back.
	c.node(t, c.workers[0], c.name, "UPDATE tenantseal.tenants SET status = 'active' WHERE status <> 'active'; DELETE FROM tenantseal.context_keys")
	if d, ws := digest(); ws[0] == d {
		t.Fatal("a worker whose keys were deleted has the coordinator's digest")
	}
	if _, err := c.ownerConn(t).Exec(testContext(t), "SELECT tenantseal.sync_nodes()"); err != nil {
		t.Fatal(err)
	}
	same("sync_nodes")
	if _, err := c.ownerConn(t).Exec(testContext(t), "TRUNCATE tenantseal.tenants CASCADE"); err == nil {
		t.Error("TRUNCATE of the tenants on the coordinator, which the workers would not see, was not refused")
	}
}

// Tokens the workers did not get from a signer are refused there, as on one server; the app role's SET
// LOCAL of a forged or another tenant's unsigned context reads nothing.
func TestForgedContextOnWorkers(t *testing.T) {
	c := newCluster(t)
	a, b := c.tenant(t, "Acme"), c.tenant(t, "Globex")
	p := c.pool(t, nil)
	c.notes(t, p, 5, a, b)
	forged, err := token.Sign(c.res.ContextKey.ID, []byte("not the key, but 32 bytes long!!"),
		token.Claims{Tenant: b.Handle(), Subject: "attacker", Expires: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(testContext(t), c.res.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(testContext(t))
	for _, tok := range []string{forged, token.Unsigned(b.Handle()), "garbage"} {
		tx, err := conn.Begin(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		var n int
		_, err = tx.Exec(testContext(t), "SET LOCAL citus.propagate_set_commands TO local")
		if err == nil {
			_, err = tx.Exec(testContext(t), "SET LOCAL tenantseal.context TO '"+tok+"'")
		}
		if err == nil {
			err = tx.QueryRow(testContext(t), "SELECT count(*) FROM app.notes WHERE tenant_id = $1", b).Scan(&n)
		}
		_ = tx.Rollback(testContext(t))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "TS401" {
			t.Errorf("context %.12s…: %d rows of Globex (%v), want TS401 from the worker", tok, n, err)
		}
	}
}

// Open refuses a cluster one of whose workers logs every statement: the Citus mode's tokens are
// statement text.
func TestOpenRefusesStatementLogging(t *testing.T) {
	c := newCluster(t)
	c.node(t, c.workers[len(c.workers)-1], "postgres", fmt.Sprintf("ALTER DATABASE %s SET log_min_duration_statement = 0", c.name))
	cfg, err := db.ParseConfig(c.res.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RolePrefix, cfg.SigningKey, cfg.AllowPlaintextLoopback = c.name, c.res.ContextKey, true
	p, err := db.Open(testContext(t), cfg)
	if err == nil {
		p.Close()
	}
	if !errors.Is(err, db.ErrStatementLogging) {
		t.Fatalf("Open with a worker logging every statement: %v, want ErrStatementLogging", err)
	}
	if !strings.Contains(err.Error(), c.workers[len(c.workers)-1].String()) {
		t.Errorf("the error does not name the worker: %v", err)
	}
	c.node(t, c.workers[len(c.workers)-1], "postgres", fmt.Sprintf("ALTER DATABASE %s RESET log_min_duration_statement", c.name))

	// The coordinator logging the commands it sends the workers is refused too, and the push of the
	// verifier's tables with it.
	c.node(t, c.coordinator, "postgres", fmt.Sprintf("ALTER DATABASE %s SET citus.log_remote_commands = on", c.name))
	p, err = db.Open(testContext(t), cfg)
	if err == nil {
		p.Close()
	}
	if !errors.Is(err, db.ErrStatementLogging) || !strings.Contains(err.Error(), "citus.log_remote_commands") {
		t.Errorf("Open with the coordinator logging its remote commands: %v, want ErrStatementLogging naming the setting", err)
	}
	owner, err := pgx.Connect(testContext(t), c.res.OwnerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(testContext(t))
	if _, err := tenants.Create(testContext(t), owner, "Logged", nil); err == nil || !strings.Contains(err.Error(), "log_remote_commands") {
		t.Errorf("a new tenant pushed to the workers while the coordinator logs its remote commands: %v, want a refusal naming the setting", err)
	}
}

// The linter accepts the Citus form of the policy on a distributed table, and still finds a verifier
// called once per row there.
func TestLint(t *testing.T) {
	c := newCluster(t)
	a := c.tenant(t, "Acme")
	p := c.pool(t, nil)
	c.notes(t, p, 1, a)
	owner := c.ownerConn(t)
	opts := lint.Options{Schemas: []string{"app"}, AppRole: c.res.Roles.App, OwnerRole: c.res.Roles.Owner}
	findings, err := lint.Run(testContext(t), owner, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 0 {
		t.Errorf("distribute_table's policies: %d findings, want none: %v", len(findings), findings)
	}
	c.ownerExec(t,
		"CREATE TABLE app.loose (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id))",
		"SELECT create_distributed_table('app.loose', 'tenant_id', colocate_with => 'app.notes')",
		"ALTER TABLE app.loose ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE app.loose FORCE ROW LEVEL SECURITY",
		fmt.Sprintf("CREATE POLICY loose ON app.loose TO %s USING (tenant_id = tenantseal.current_tenant() AND tenantseal.current_tenant()::text <> '')", c.res.Roles.App),
	)
	if findings, err = lint.Run(testContext(t), owner, opts); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range findings {
		if f.Rule == "TS006" && strings.Contains(f.Object, "app.loose") {
			found = true
			if strings.Contains(f.Fix, "(SELECT") {
				t.Errorf("TS006 on a distributed table tells to write a sub-select, which Citus refuses: %s", f.Fix)
			}
		}
	}
	if !found {
		t.Errorf("a verifier called per row beside the tenant comparison on a distributed table: no TS006 in %v", findings)
	}
}

// The isolation suite, as the app role, against distributed tables: a tenant table, one with a
// composite foreign key to it, and a reference table of global rows.
func TestIsolationSuite(t *testing.T) {
	c := newCluster(t)
	a := c.tenant(t, "Acme")
	p := c.pool(t, nil)
	c.notes(t, p, 1, a)
	c.ownerExec(t,
		"CREATE TABLE app.comments (tenant_id uuid NOT NULL, id bigint NOT NULL, note_id bigint NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, note_id) REFERENCES app.notes (tenant_id, id))",
		"SELECT tenantseal.distribute_table('app.comments', colocate_with => 'app.notes')",
		"CREATE TABLE app.plans (id bigint PRIMARY KEY, name text NOT NULL)",
		"SELECT create_reference_table('app.plans')",
		fmt.Sprintf("GRANT SELECT ON app.plans TO %s", c.res.Roles.App),
	)
	super, err := dsn.WithDatabase(c.super, c.name)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := isolation.Check(testContext(t), isolation.Config{SuperDSN: super, AppDSN: c.res.AppDSN, ContextKey: c.res.ContextKey,
		AllowPlaintextLoopback: true, Short: true, Schemas: []string{"app"}, AcceptGlobal: []string{"app.plans"}})
	if err != nil {
		t.Fatalf("the isolation suite could not run: %v", err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	if !rep.OK() {
		t.Errorf("the isolation suite on Citus:\n%s", b.String())
	}
	t.Logf("%s", b.String())
}

// tenantseal citus check finds a worker whose verifier tables differ, and citus sync brings it back.
func TestCitusCommand(t *testing.T) {
	c := newCluster(t)
	c.tenant(t, "Acme")
	t.Setenv(tenantseal.EnvAllowPlaintextLoopback, "1")
	run := func(args ...string) (int, string) {
		var out, errs strings.Builder
		code := cli.Run(append(args, "--dsn", c.res.OwnerDSN), strings.NewReader(""), &out, &errs)
		return code, out.String() + errs.String()
	}
	if code, out := run("citus", "check"); code != 0 || strings.Count(out, "in step") != len(c.workers)+1 {
		t.Fatalf("citus check after bootstrap: exit %d\n%s", code, out)
	}
	c.node(t, c.workers[0], c.name, "UPDATE tenantseal.tenants SET status = 'suspended'")
	if code, out := run("citus", "check"); code != 1 || !strings.Contains(out, c.workers[0].String()+"  DIFFERS") {
		t.Errorf("citus check with a worker changed behind the coordinator: exit %d\n%s", code, out)
	}
	if code, out := run("citus", "sync"); code != 0 {
		t.Fatalf("citus sync: exit %d\n%s", code, out)
	}
	if code, out := run("citus", "check"); code != 0 {
		t.Errorf("citus check after sync: exit %d\n%s", code, out)
	}
}

// A change made with session_replication_role = replica (as the isolation suite's clean-up and logical
// replication make them) still reaches the workers.
func TestReplicaRoleChangesReachWorkers(t *testing.T) {
	c := newCluster(t)
	a := c.tenant(t, "Acme")
	super, err := pgx.Connect(testContext(t), c.superIn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(testContext(t))
	err = pgx.BeginFunc(testContext(t), super, func(tx pgx.Tx) error {
		if _, err := tx.Exec(testContext(t), "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(testContext(t), "UPDATE tenantseal.tenants SET status = 'suspended' WHERE id = $1", a.Handle())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range c.workerValues(t, fmt.Sprintf("SELECT status FROM tenantseal.tenants WHERE id = '%s'", uuid.Format(a.Handle()))) {
		if st != "suspended" {
			t.Errorf("worker %s: the tenant suspended under the replica role is %s there", c.workers[i], st)
		}
	}
}

// Bootstrap again on the cluster changes nothing; new passwords there are refused before anything
// changes, since each node would get its own.
func TestBootstrapAgain(t *testing.T) {
	c := newCluster(t)
	// What the first bootstrap did on every node is in its actions.
	all := strings.Join(c.res.Actions, "\n")
	for _, want := range []string{"created role " + c.res.Roles.App, "migrated from version 0 to", "created context signing key", "sent the verifier's keys, tenants and settings to"} {
		if !strings.Contains(all, want) {
			t.Errorf("bootstrap's actions lack %q:\n%s", want, all)
		}
	}
	for _, w := range c.workers {
		if !strings.Contains(all, "worker "+w.String()+": migrated from version 0 to") {
			t.Errorf("bootstrap's actions do not name worker %s's migrations:\n%s", w, all)
		}
	}
	opts := bootstrap.Options{Database: c.name, RolePrefix: c.name}
	opts.Passwords = bootstrap.Passwords{}
	for role, d := range map[string]string{c.res.Roles.Owner: c.res.OwnerDSN, c.res.Roles.App: c.res.AppDSN, c.res.Roles.Auditor: c.res.AuditorDSN, c.res.Roles.AuditWriter: c.res.AuditWriterDSN} {
		s, err := dsn.Parse(d)
		if err != nil {
			t.Fatal(err)
		}
		opts.Passwords[role] = s.Get(dsn.Password)
	}
	opts.ContextKey = &c.res.ContextKey
	res, err := bootstrap.RunCluster(testContext(t), c.super, opts)
	if err != nil {
		t.Fatalf("bootstrap again: %v", err)
	}
	if res.ContextKey.ID != c.res.ContextKey.ID || res.AppDSN != c.res.AppDSN {
		t.Errorf("bootstrap again changed the key or the app's connection string")
	}
	opts.ResetPasswords = true
	if _, err := bootstrap.RunCluster(testContext(t), c.super, opts); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("new passwords on the cluster: %v, want a refusal", err)
	}
	p := c.pool(t, nil)
	if n, err := count(t, p, c.tenant(t, "Acme"), "SELECT count(*) FROM tenantseal.tenants"); err != nil || n != 1 {
		t.Errorf("after the refused reset, the app role reads its tenant: %d (%v)", n, err)
	}
}
