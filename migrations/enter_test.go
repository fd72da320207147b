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

// dirtyStatements set at session level, with set_config(..., false) or SET, what a statement could set
// for the session: each would change what the next statement on the connection sees or may do.
// sessionTok becomes the session's own tenant context.
func dirtyStatements(sessionTok string) []string {
	return []string{
		// The verifier's library loaded, as in any session that ran a scoped statement.
		"SELECT tenantseal.current_tenant()",
		"SELECT set_config('search_path', 'pg_temp', false)",
		"SELECT set_config('row_security', 'off', false)",
		"SET statement_timeout = '500ms'",
		"SET TimeZone = 'Pacific/Kiritimati'",
		"SET application_name = 'previous user'",
		fmt.Sprintf("SET tenantseal.context = '%s'", sessionTok), // a token is hex, digits, dots and [a-z]
		"SET default_transaction_read_only = on",
	}
}

// dirty runs dirtyStatements on conn, each in a transaction of its own.
func dirty(t *testing.T, conn *pgx.Conn, sessionTok string) {
	t.Helper()
	for _, stmt := range dirtyStatements(sessionTok) {
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

// TestEnterResetsTheSession: what the statements after c_enter(token) set for the session is undone when
// their transaction commits, exactly as a RESET ALL after them would; the context is the token's in the
// transaction and gone after it.
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
	// Without c_enter the same statements leave the session dirty: the probe times out.
	control := mustExecConn(t, f.d.AppDSN)
	dirty(t, control, old)
	if _, err := scanEnterState(control.QueryRow(ctx, enterProbe)); sqlState(err) != "57014" {
		t.Fatalf("the probe on the dirty session: got %v, want a statement timeout (57014): dirty sets nothing", err)
	}

	conn := mustExecConn(t, f.d.AppDSN)
	stmts := dirtyStatements(old)
	br := enter(t, conn, tok, append([]string{"SELECT current_setting('tenantseal.context')"}, stmts...)...)
	var inTx string
	if err := br.QueryRow().Scan(&inTx); err != nil {
		br.Close()
		t.Fatal(err)
	}
	for _, stmt := range stmts {
		if _, err := br.Exec(); err != nil {
			br.Close()
			t.Fatalf("%s after c_enter: %v", stmt, err)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	if inTx != tok {
		t.Errorf("the context in the transaction of c_enter: got %s, want the token given", names.redact(inTx))
	}

	after, err := scanEnterState(conn.QueryRow(ctx, enterProbe))
	if err != nil {
		t.Fatalf("the probe after the transaction of c_enter: %v", err)
	}
	if diff := cmp.Diff(fresh, after); diff != "" {
		t.Errorf("after the transaction of c_enter, want a fresh session's settings (-fresh +after):\n%s", names.redact(diff))
	}

	t.Run("as set_config and RESET ALL", func(t *testing.T) {
		// Every setting the session can see, read in the transaction (after the statements) and in the
		// next one, on two sessions: one entered with c_enter, one with set_config and RESET ALL after
		// the statements. pg_settings leaves out placeholders such as tenantseal.context: read it by name.
		const settings = `SELECT name || ' = ' || coalesce(setting, '<null>') || ' (' || source || ')' FROM pg_settings
		                  UNION ALL SELECT 'tenantseal.context = ' || coalesce(current_setting('tenantseal.context', true), '<null>')
		                  ORDER BY 1`
		collect := func(rows pgx.Rows, err error) []string {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			return lines
		}
		// run sends b, skips the results before the settings, reads them, and closes the batch.
		run := func(c *pgx.Conn, b *pgx.Batch) []string {
			t.Helper()
			br := c.SendBatch(ctx, b)
			defer br.Close()
			for range len(stmts) + 1 {
				if _, err := br.Exec(); err != nil {
					t.Fatal(err)
				}
			}
			lines := collect(br.Query())
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			return lines
		}
		entered, reset := mustExecConn(t, f.d.AppDSN), mustExecConn(t, f.d.AppDSN)
		eb, rb := &pgx.Batch{}, &pgx.Batch{}
		eb.Queue("SELECT tenantseal.c_enter($1)", tok)
		rb.Queue("SELECT set_config('tenantseal.context', $1, true)", tok)
		for _, stmt := range stmts {
			eb.Queue(stmt)
			rb.Queue(stmt)
		}
		eb.Queue(settings)
		rb.Queue(settings)
		rb.Queue("RESET ALL")
		inEnter, inReset := run(entered, eb), run(reset, rb)
		if diff := cmp.Diff(inReset, inEnter); diff != "" {
			t.Errorf("settings in the transaction (-set_config and RESET ALL +c_enter):\n%s", names.redact(diff))
		}
		nextEnter, nextReset := collect(entered.Query(ctx, settings)), collect(reset.Query(ctx, settings))
		if !slices.Contains(nextEnter, "tenantseal.context = ") && !slices.Contains(nextEnter, "tenantseal.context = <null>") {
			t.Errorf("the next transaction after c_enter has a tenantseal.context: %s", names.redact(strings.Join(nextEnter, "; ")))
		}
		if diff := cmp.Diff(nextReset, nextEnter); diff != "" {
			t.Errorf("settings in the next transaction (-set_config and RESET ALL +c_enter):\n%s", names.redact(diff))
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
		session tenantseal.TenantID // whose token the previous user set at session level
		want    []string            // tenants of the rows visible, and current_tenant()
	}{
		{"active tenant", tokOf(f.active), f.other, []string{f.active.String()}},
		{"other tenant", tokOf(f.other), f.active, []string{f.other.String()}},
		{"NULL token", nil, f.active, nil},
		{"empty token", "", f.active, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := mustExecConn(t, f.d.AppDSN)
			// The previous user of the connection entered with its own token and set everything of
			// dirtyStatements for the session: its commit undoes it. Read with row_security off, as it
			// set it, the query below would fail instead of showing rows.
			prev := enter(t, conn, tokOf(tc.session), dirtyStatements(tokOf(tc.session))...)
			if err := prev.Close(); err != nil {
				t.Fatalf("the previous user's batch: %v", err)
			}
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
