package migrations_test

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

// freshDatabase creates an empty database beside d's, prepared as bootstrap prepares one (owned by the
// owner role, the role prefix set, connect for the app and auditor) but not migrated, and returns the
// superuser's and the owner's configurations for it.
func freshDatabase(t *testing.T, d *pgtest.Database) (super, owner *pgx.ConnConfig) {
	t.Helper()
	ctx := testContext(t)
	name := d.Name + "_fresh"
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	server := mustConn(t, d.SuperDSN)
	for _, stmt := range []string{
		fmt.Sprintf("CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0", q(name), q(d.Roles.Owner)),
		fmt.Sprintf("ALTER DATABASE %s SET tenantseal.role_prefix = '%s'", q(name), d.RolePrefix()),
		fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", q(name)),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s, %s", q(name), q(d.Roles.App), q(d.Roles.Auditor)),
	} {
		if _, err := server.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		c := mustConn(t, d.SuperDSN)
		c.Exec(testContext(t), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", q(name)))
	})
	super, owner = mustParse(t, d.SuperDSN), mustParse(t, d.OwnerDSN)
	super.Database, owner.Database = name, name
	c := mustConnConfig(t, super)
	for _, stmt := range []string{
		fmt.Sprintf("ALTER SCHEMA public OWNER TO %s", q(d.Roles.Owner)),
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
	} {
		if _, err := c.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return super, owner
}

func mustParse(t *testing.T, dsn string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mustConnConfig(t *testing.T, cfg *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	c, err := pgx.ConnectConfig(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(testContext(t)) })
	return c
}

// notices collects what migrations raise.
type notices struct {
	mu  sync.Mutex
	got []string
}

func (n *notices) add(x *pgconn.Notice) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, x.Severity+": "+x.Message)
}

func (n *notices) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.got...)
}

// migrate runs Up of the migrations in files (tenantseal's own when nil) on the database of cfg. Files
// of an earlier release are recorded where that release kept its migrations table, public.schema_migrations,
// so that the current migrator finds the database as that release left it.
func migrate(t *testing.T, cfg *pgx.ConnConfig, files fs.FS, n *notices) {
	t.Helper()
	opts := migrations.Options{}
	if files != nil {
		opts.Source, opts.Table = files, "earlier_release"
		defer func() {
			c, err := pgx.ConnectConfig(testContext(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(testContext(t))
			if _, err := c.Exec(testContext(t), `ALTER TABLE tenantseal_migrations.earlier_release SET SCHEMA public;
				ALTER TABLE public.earlier_release RENAME TO schema_migrations`); err != nil {
				t.Fatal(err)
			}
		}()
	}
	if n != nil {
		opts.OnNotice = n.add
	}
	mg, err := migrations.NewWithConfig(testContext(t), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	if err := mg.Up(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

// beforeExamples is tenantseal's migrations 0001 to 0004 as released before the reference domain moved
// to examples/reference: 0002 and 0003 frozen in testdata, 0001 and 0004 as they are (0004 differs only
// by the probe's grant on the example tables, which 0005 does not look at).
func beforeExamples(t *testing.T) fs.FS {
	t.Helper()
	files := fstest.MapFS{}
	add := func(fsys fs.FS, name string) {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = &fstest.MapFile{Data: b}
	}
	add(migrations.FS(), "0001_foundation.up.sql")
	add(os.DirFS("testdata/before-examples"), "0002_reference_domain.up.sql")
	add(os.DirFS("testdata/before-examples"), "0003_keys.up.sql")
	add(migrations.FS(), "0004_audit.up.sql")
	return files
}

// mustStrings returns the one text column of sql's rows.
func mustStrings(t *testing.T, c *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := c.Query(testContext(t), sql)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// publicTables lists the tables, views and sequences in schema public.
func publicTables(t *testing.T, c *pgx.Conn) []string {
	return mustStrings(t, c, `SELECT relname::text FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f') ORDER BY 1`)
}

func registered(t *testing.T, c *pgx.Conn) []string {
	return mustStrings(t, c, "SELECT table_name::text || '.' || column_name FROM tenantseal.encrypted_columns ORDER BY 1")
}

// A fresh database gets no table of tenantseal's in public, not even golang-migrate's, and no registered
// encrypted column.
func TestFreshDatabaseHasNothingInPublic(t *testing.T) {
	t.Parallel()
	super, owner := freshDatabase(t, pgtest.NewDatabase(t))
	migrate(t, owner, nil, nil)
	c := mustConnConfig(t, super)
	if got := publicTables(t, c); len(got) != 0 {
		t.Errorf("got tables %v in public, want none", got)
	}
	if got := registered(t, c); len(got) != 0 {
		t.Errorf("got encrypted columns %v registered, want none", got)
	}
}

// Migration 0005 removes the example tables that 0002 used to create, but only from a database where
// they are empty and nothing depends on them; otherwise it keeps them, rows, registry and row-level
// security as they were, and says why.
func TestMigration0005DropsOnlyEmptyExampleTables(t *testing.T) {
	t.Parallel()
	oldTables := []string{"customers", "documents", "invoices", "schema_migrations", "tenants"}
	// The registry and the migrations table leave public whatever happens to the example tables.
	keptTables := []string{"customers", "documents", "invoices"}
	oldRegistered := []string{"customers.email", "customers.notes", "customers.phone", "documents.body", "invoices.memo"}
	for _, tc := range []struct {
		name string
		// setup runs as the superuser on the database migrated with the old files.
		setup        []string
		wantTables   []string
		wantRegistry []string
		wantRows     int      // customers kept
		wantNotice   []string // substrings of the one notice or warning, in order
	}{
		{
			name:         "empty",
			wantTables:   nil,
			wantRegistry: []string{},
			wantNotice:   []string{"NOTICE: tenantseal: dropped the empty example tables public.documents, public.invoices, public.customers"},
		},
		{
			name: "customers hold a row",
			setup: []string{
				"INSERT INTO public.tenants (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'a')",
				"INSERT INTO customers (tenant_id, display_name) VALUES ('00000000-0000-0000-0000-00000000000a', 'kept')",
			},
			wantTables:   keptTables,
			wantRegistry: oldRegistered,
			wantRows:     1,
			wantNotice: []string{"WARNING: tenantseal: kept public.documents, public.invoices, public.customers: they hold rows (public.customers)",
				"they are yours now", "examples/reference/migrations describes them", `x-migrations-table="tenantseal_migrations"."reference"`, "force 1"},
		},
		{
			name:         "a view depends on them",
			setup:        []string{"CREATE VIEW customer_names AS SELECT display_name FROM customers"},
			wantTables:   append([]string{"customer_names"}, keptTables...),
			wantRegistry: oldRegistered,
			wantNotice:   []string{"WARNING: tenantseal: kept the empty example tables public.documents, public.invoices, public.customers: other objects depend on them", "customer_names"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			super, owner := freshDatabase(t, pgtest.NewDatabase(t))
			migrate(t, owner, beforeExamples(t), nil)
			c := mustConnConfig(t, super)
			if diff := cmp.Diff(oldTables, publicTables(t, c)); diff != "" {
				t.Fatalf("the old migrations made (-want +got):\n%s", diff)
			}
			for _, stmt := range tc.setup {
				if _, err := c.Exec(testContext(t), stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			n := &notices{}
			migrate(t, owner, nil, n)
			var version uint
			if err := c.QueryRow(testContext(t), "SELECT version FROM tenantseal_migrations.schema_migrations").Scan(&version); err != nil || version != migrations.Latest() {
				t.Errorf("got version %d (%v), want %d", version, err, migrations.Latest())
			}
			if diff := cmp.Diff(tc.wantTables, publicTables(t, c), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("tables in public after migrating (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRegistry, registered(t, c)); diff != "" {
				t.Errorf("encrypted columns after migrating (-want +got):\n%s", diff)
			}
			got := n.all()
			if len(got) != 1 {
				t.Fatalf("got notices %q, want one", got)
			}
			rest := got[0]
			for _, want := range tc.wantNotice {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("got notice %q, want %q in it (after what came before)", got[0], want)
				}
				rest = rest[i+len(want):]
			}
			if len(tc.wantRegistry) == 0 {
				return
			}
			// Kept as they were: row-level security still forced, the row still there.
			var forced int
			if err := c.QueryRow(testContext(t), `SELECT count(*) FROM pg_class WHERE oid IN
				('customers'::regclass, 'invoices'::regclass, 'documents'::regclass) AND relforcerowsecurity`).Scan(&forced); err != nil || forced != 3 {
				t.Errorf("got %d tables with forced row-level security (%v), want 3", forced, err)
			}
			var rows int
			if err := c.QueryRow(testContext(t), "SELECT count(*) FROM customers").Scan(&rows); err != nil || rows != tc.wantRows {
				t.Errorf("got %d customers (%v), want %d", rows, err, tc.wantRows)
			}
		})
	}
}

// Where the examples' migrations made the tables, they are theirs: running 0005 again leaves them.
func TestMigration0005LeavesTheExamplesTables(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mg := mustMigrator(t, d.OwnerDSN)
	if err := mg.Down(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := mg.Up(testContext(t)); err != nil {
		t.Fatal(err)
	}
	c := mustConn(t, d.SuperDSN)
	want := []string{"customers", "documents", "invoices"}
	if diff := cmp.Diff(want, publicTables(t, c)); diff != "" {
		t.Errorf("tables in public (-want +got):\n%s", diff)
	}
	if got := registered(t, c); len(got) != 5 {
		t.Errorf("got encrypted columns %v, want the five of the examples", got)
	}
}
