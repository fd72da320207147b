package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/token"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
)

var demoCommand = command{
	name:    "demo",
	summary: "prove tenant isolation on a server (--dsn), or on a throwaway one with `make demo`",
	run:     runDemo,
}

const demoAbout = `
Bootstraps and migrates a database on the server of --dsn (a superuser connection string), applies the
examples' migrations (examples/reference), writes a development KEK to a temporary directory, and
creates the tenants acme and globex, each with its own keysets wrapped by that KEK. 'make demo' runs it
on a throwaway PostgreSQL in a container instead, through the development binary (go run
./internal/cmd/tenantseal-dev demo).

Through the example repositories (reference.Customers, reference.Invoices), as the app role, it stores a
customer per tenant with email, phone and notes encrypted, shows that the stored row holds only
ciphertext, reads it back decrypted, finds it by a differently cased email address (blind index) and
creates an invoice per tenant. Then it checks that neither tenant can read, change or delete the other's
rows, with SQL and through the repositories, that a call without a Principal is refused before any SQL
is sent, and that a forged tenant context set with raw SQL is refused (SQLSTATE TS401). It exits 1 if
any check fails.

The KEK is removed at the end, also on failure and Ctrl-C. The demo refuses to touch an existing database
or roles of the same names, and drops what it created when it ends (with 'make demo', the container goes
away whole).`

func runDemo(ctx context.Context, s *session, args []string) (err error) {
	f := newFlags(s, "demo", "--dsn <superuser connection string> [flags]", demoAbout)
	dsn := f.String("dsn", "", "superuser connection string of the server to run on (required, but for 'make demo')")
	database := f.String("database", "demo", "database to create")
	prefix := f.String("prefix", "demo", "role name prefix")
	timeout := f.Duration("connect-timeout", db.DefaultConnectTimeout, "give up connecting after this long")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("demo: unexpected argument %q", pos[0])
	}
	d := &demo{s: s, database: *database, roles: db.Roles(*prefix), prefix: *prefix}
	switch {
	case *dsn != "":
		if d.superDSN, err = prepareDSN(s, *dsn, *timeout); err != nil {
			return err
		}
	case s.opts.StartServer == nil:
		return usageErrorf("demo: no server to run on: pass --dsn <superuser connection string>, or run 'make demo' for a throwaway one")
	}
	defer func() {
		if terr := d.teardown(ctx); err == nil {
			err = terr
		}
	}()
	s.printf("tenantseal isolation demo\n\n== Setup\n")
	if err := d.setup(ctx); err != nil {
		return err
	}
	s.printf("\n== Encrypted fields (as %s, through reference.Customers and reference.Invoices)\n", d.roles.App)
	if err := d.encryptedChecks(ctx); err != nil {
		return err
	}
	s.printf("\n== Isolation checks (as %s, the application's role)\n", d.roles.App)
	d.runChecks(ctx)
	s.printf("\n== Teardown\n")
	if err := d.teardown(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if d.failed > 0 {
		s.printf("\nisolation demo FAILED: %d of %d checks failed\n", d.failed, d.checks)
		return fmt.Errorf("isolation demo failed: %d of %d checks failed (see the FAIL lines above)", d.failed, d.checks)
	}
	s.printf("\nisolation demo passed (%d checks)\n", d.checks)
	return nil
}

type demo struct {
	s        *session
	superDSN string
	database string
	prefix   string
	roles    db.RoleNames

	server  *Server // started by the demo, stopped by teardown
	created bool    // database and roles are the demo's to drop
	pool    *db.Pool
	res     *bootstrap.Result
	kekDir  string // holds the development KEK; removed by teardown

	customers *reference.Customers
	invoices  *reference.Invoices

	acme, globex         tenantseal.TenantID
	acmeCust, globexCust string // customer ids, set by encryptedChecks
	globexInvoice        repo.ID

	checks, failed int
	tornDown       bool
}

func (d *demo) step(format string, a ...any) { d.s.printf("- "+format+"\n", a...) }

func (d *demo) setup(ctx context.Context) error {
	if d.superDSN == "" {
		d.step("starting PostgreSQL ...")
		srv, err := d.s.opts.StartServer(ctx)
		if err != nil {
			return err
		}
		d.server = srv
		d.s.connSecrets(srv.SuperDSN)
		d.superDSN = srv.SuperDSN
		if srv.Stop != nil {
			d.step("started %s", srv.Describe)
		} else {
			d.step("using %s", srv.Describe)
		}
	}
	if d.server == nil || d.server.Stop == nil {
		// Someone else's server: touch nothing that exists already.
		if err := d.refuseExisting(ctx); err != nil {
			return err
		}
	}
	d.created = true

	res, err := bootstrap.Run(ctx, d.superDSN, bootstrap.Options{Database: d.database, RolePrefix: d.prefix})
	if err != nil {
		return err
	}
	d.res = res
	for _, dsn := range []string{res.OwnerDSN, res.AppDSN, res.AuditorDSN} {
		d.s.connSecrets(dsn)
	}
	d.step("bootstrap as a superuser: %s", strings.Join(res.Actions, ", "))
	if err := reference.Migrate(ctx, res.OwnerDSN); err != nil {
		return err
	}
	d.step("applied the examples' migrations as the owner (examples/reference: customers, invoices, documents)")

	if d.kekDir, err = os.MkdirTemp("", "tenantseal-demo-kek-"); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	uri, err := keys.InitLocalKEK(filepath.Join(d.kekDir, "kek.json"))
	if err != nil {
		return err
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		return err
	}
	d.step("created a development KEK (%s) in %s: a key file in clear, for the demo only (production uses a KMS)", kek.ID, d.kekDir)

	owner, err := pgx.Connect(ctx, res.OwnerDSN)
	if err != nil {
		return err
	}
	defer owner.Close(context.WithoutCancel(ctx))
	admin := pgstore.NewAdmin(owner, kek)
	for _, t := range []struct {
		name string
		id   *tenantseal.TenantID
	}{{"acme", &d.acme}, {"globex", &d.globex}} {
		if *t.id, err = admin.CreateTenant(ctx, t.name); err != nil {
			return fmt.Errorf("demo: tenant %s: %w", t.name, err)
		}
	}
	d.step("as %s, with pgstore.Admin.CreateTenant: created tenants acme (%s) and globex (%s), each with its own keysets (aead, prf) wrapped by the KEK",
		d.roles.Owner, d.acme, d.globex)

	cfg, err := db.ParseConfig(res.AppDSN)
	if err != nil {
		return err
	}
	cfg.SigningKey = res.ContextKey
	cfg.RolePrefix = d.prefix
	cfg.MeterProvider, cfg.Logger = d.s.meters, d.s.logger()
	cfg.AllowPlaintextLoopback = allowPlaintextLoopback()
	if d.pool, err = db.Open(ctx, cfg); err != nil {
		return err
	}
	d.step("opened a db.Pool as %s with context key %s: the role guard accepted it (no superuser, no BYPASSRLS, owns nothing)", d.roles.App, res.ContextKey.ID)

	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(d.pool), MeterProvider: d.s.meters})
	if err != nil {
		return err
	}
	if d.customers, err = reference.NewCustomers(ctx, d.pool, kr); err != nil {
		return err
	}
	if d.invoices, err = reference.NewInvoices(ctx, d.pool, kr); err != nil {
		return err
	}
	d.step("opened a keys.Keyring over the pool (it loads a tenant's keysets as %s, under row-level security, and unwraps them with the KEK here), and reference.Customers and reference.Invoices over both",
		d.roles.App)
	return nil
}

// refuseExisting fails when the database or a role that the demo would create already exists.
func (d *demo) refuseExisting(ctx context.Context) error {
	c, err := pgx.Connect(ctx, d.superDSN)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var found []string
	rows, err := c.Query(ctx, `SELECT 'database ' || datname FROM pg_database WHERE datname = $1
		UNION ALL SELECT 'role ' || rolname FROM pg_roles WHERE rolname = ANY($2) ORDER BY 1`,
		d.database, []string{d.roles.Owner, d.roles.App, d.roles.Auditor, d.roles.AuditWriter, d.roles.Probe})
	if err != nil {
		return err
	}
	if found, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return err
	}
	if len(found) > 0 {
		return fmt.Errorf("demo: %s already exist(s) on that server; the demo creates and drops its own: pass unused names with --database and --prefix", strings.Join(found, ", "))
	}
	return nil
}

// as returns ctx carrying a Principal of tenant, as authentication middleware would.
func (d *demo) as(ctx context.Context, tenant tenantseal.TenantID, name string) context.Context {
	return tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: "demo-user@" + name})
}

// check records one expectation: problem is empty when it held.
func (d *demo) check(what, problem string) {
	d.checks++
	if problem == "" {
		d.s.printf("PASS  %s\n", what)
		return
	}
	d.failed++
	d.s.printf("FAIL  %s: %s\n", what, d.s.redact(oneLine(problem)))
}

type customerRow struct {
	Tenant string
	ID     string
	Name   string
}

func (d *demo) runChecks(ctx context.Context) {
	acme := d.as(ctx, d.acme, "acme")
	globex := d.as(ctx, d.globex, "globex")

	for _, t := range []struct {
		name     string
		ctx      context.Context
		tenant   tenantseal.TenantID
		customer string
	}{{"acme", acme, d.acme, d.acmeCust}, {"globex", globex, d.globex, d.globexCust}} {
		rows, err := d.pool.Query(t.ctx, "SELECT tenant_id::text, id::text, display_name FROM customers ORDER BY created_at, id")
		var got []customerRow
		if err == nil {
			got, err = pgx.CollectRows(rows, pgx.RowToStructByPos[customerRow])
		}
		var listing []string
		for _, r := range got {
			listing = append(listing, fmt.Sprintf("%s %q", r.ID, r.Name))
		}
		what := fmt.Sprintf("%s lists all customers and sees only its own: [%s]", t.name, strings.Join(listing, ", "))
		switch {
		case err != nil:
			d.check(what, err.Error())
		case len(got) != 1 || got[0].ID != t.customer || got[0].Tenant != t.tenant.String():
			d.check(what, fmt.Sprintf("got %d rows %v, want only customer %s of tenant %s", len(got), got, t.customer, t.tenant))
		default:
			d.check(what, "")
		}
	}

	var name string
	err := d.pool.QueryRow(acme, "SELECT display_name FROM customers WHERE id = $1", d.globexCust).Scan(&name)
	d.check("acme reads globex's customer by its id: no row", wantNoRow(err, name))
	err = d.pool.QueryRow(acme, "SELECT display_name FROM customers WHERE tenant_id = $1 AND id = $2", d.globex, d.globexCust).Scan(&name)
	d.check("acme reads it again naming globex's tenant_id in the WHERE clause: no row", wantNoRow(err, name))

	tag, err := d.pool.Exec(acme, "UPDATE customers SET display_name = 'changed by acme' WHERE id = $1", d.globexCust)
	d.check("acme updates globex's customer: 0 rows affected", wantNoneAffected(tag, err))
	tag, err = d.pool.Exec(acme, "DELETE FROM customers WHERE id = $1", d.globexCust)
	d.check("acme deletes globex's customer: 0 rows affected", wantNoneAffected(tag, err))
	_, err = d.pool.Exec(acme, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'planted by acme')", d.globex)
	d.check("acme inserts a customer into globex (tenant_id = globex): refused by the policy (SQLSTATE 42501)", wantSQLState(err, "42501"))

	err = d.pool.QueryRow(globex, "SELECT display_name FROM customers WHERE id = $1", d.globexCust).Scan(&name)
	switch {
	case err != nil:
		d.check("globex's customer is unchanged", err.Error())
	case name != "Globex buyer":
		d.check("globex's customer is unchanged", fmt.Sprintf("got display_name %q, want %q", name, "Globex buyer"))
	default:
		d.check(fmt.Sprintf("globex's customer is unchanged: %q", name), "")
	}

	d.repoIsolationChecks(acme)

	_, err = d.pool.Exec(ctx, "SELECT count(*) FROM customers")
	problem := ""
	if !errors.Is(err, tenantseal.ErrNoTenant) {
		problem = fmt.Sprintf("got error %v, want tenantseal.ErrNoTenant", err)
	}
	d.check("a call without a Principal is refused before any SQL is sent (tenantseal.ErrNoTenant)", problem)

	d.rawSQLChecks(ctx)
}

// rawSQLChecks play an attacker who runs arbitrary SQL as the app role, as SQL injection would.
func (d *demo) rawSQLChecks(ctx context.Context) {
	c, err := pgx.Connect(ctx, d.res.AppDSN)
	if err != nil {
		d.check("connect as the app role with raw SQL", err.Error())
		return
	}
	defer c.Close(context.WithoutCancel(ctx))

	var n int
	err = c.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n)
	switch {
	case err != nil:
		d.check("raw SQL as the app role without a context sees no customer", err.Error())
	case n != 0:
		d.check("raw SQL as the app role without a context sees no customer", fmt.Sprintf("got %d rows, want 0", n))
	default:
		d.check("raw SQL as the app role without a context sees no customer (0 rows)", "")
	}

	guessed := make([]byte, 32)
	rand.Read(guessed)
	signed, err := token.Sign(d.res.ContextKey.ID, guessed, token.Claims{
		Tenant: d.globex.Handle(), Subject: "attacker", Expires: time.Now().Add(time.Minute)})
	if err != nil {
		d.check("forge a token", err.Error())
		return
	}
	for _, f := range []struct{ what, token string }{
		{"a made-up token", "v1.forged." + d.globex.String()},
		{"a well-formed token for globex signed with a guessed secret", signed},
		{"an unsigned tenant id for globex", token.Unsigned(d.globex.Handle())},
	} {
		what := fmt.Sprintf("raw SQL as the app role: set_config('%s', <%s>) then SELECT: refused (SQLSTATE %s)", db.ContextSetting, f.what, db.SQLStateInvalidContext)
		if _, err := c.Exec(ctx, "SELECT set_config($1, $2, false)", db.ContextSetting, f.token); err != nil {
			d.check(what, err.Error())
			continue
		}
		err := c.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n)
		if p := wantSQLState(err, db.SQLStateInvalidContext); p != "" {
			if err == nil {
				p = fmt.Sprintf("the query ran and counted %d rows", n)
			}
			d.check(what, p)
			continue
		}
		var pe *pgconn.PgError
		errors.As(err, &pe)
		d.check(what+": "+pe.Message, "")
	}
}

func wantNoRow(err error, got string) string {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ""
	case err != nil:
		return err.Error()
	default:
		return fmt.Sprintf("got a row (display_name %q), want none", got)
	}
}

func wantNoneAffected(tag pgconn.CommandTag, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case tag.RowsAffected() != 0:
		return fmt.Sprintf("got %d rows affected, want 0", tag.RowsAffected())
	}
	return ""
}

func wantSQLState(err error, code string) string {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return "got success, want SQLSTATE " + code
	case !errors.As(err, &pe):
		return fmt.Sprintf("got %v, want SQLSTATE %s", err, code)
	case pe.Code != code:
		return fmt.Sprintf("got SQLSTATE %s (%s), want %s", pe.Code, pe.Message, code)
	}
	return ""
}

// teardown closes the pool, removes the development KEK and the server the demo started, or drops what
// the demo created on someone else's server. It runs once, on success, failure and interrupt alike.
func (d *demo) teardown(ctx context.Context) error {
	if d.tornDown {
		return nil
	}
	d.tornDown = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if d.pool != nil {
		d.pool.Close()
	}
	var kekErr error
	if d.kekDir != "" {
		if kekErr = os.RemoveAll(d.kekDir); kekErr == nil {
			d.step("removed the development KEK")
		} else {
			kekErr = fmt.Errorf("demo: remove the development KEK: %w", kekErr)
		}
	}
	return errors.Join(kekErr, d.dropServer(ctx))
}

// dropServer removes the server the demo started, or drops the database and roles the demo created.
func (d *demo) dropServer(ctx context.Context) error {
	if d.server != nil && d.server.Stop != nil {
		if err := d.server.Stop(ctx); err != nil {
			return fmt.Errorf("demo: remove the server: %w", err)
		}
		d.step("removed the server")
		return nil
	}
	if !d.created {
		return nil
	}
	c, err := pgx.Connect(ctx, d.superDSN)
	if err != nil {
		return fmt.Errorf("demo: clean up: %w", err)
	}
	defer c.Close(ctx)
	stmts := []string{fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{d.database}.Sanitize())}
	for _, r := range []string{d.roles.App, d.roles.Auditor, d.roles.AuditWriter, d.roles.Probe, d.roles.Owner} {
		stmts = append(stmts, fmt.Sprintf("DROP ROLE IF EXISTS %s", pgx.Identifier{r}.Sanitize()))
	}
	for _, stmt := range stmts {
		if _, err := c.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("demo: clean up: %w", err)
		}
	}
	d.step("dropped database %s and roles %s, %s, %s, %s, %s", d.database, d.roles.Owner, d.roles.App, d.roles.Auditor, d.roles.AuditWriter, d.roles.Probe)
	return nil
}
