package citus_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/adopt"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/repo"
)

type contact struct {
	Tenant  tenantseal.TenantID `ts:"tenant_id,tenant"`
	ID      repo.ID             `ts:"id,pk"`
	Name    string              `ts:"name"`
	Email   string              `ts:"email,encrypted,bidx=email_bidx,normalize=email"`
	Version int64               `ts:"version,version"`
}

// The repositories on a distributed table: every statement names the tenant, so Citus routes each to
// the one worker that holds the tenant's shard; encrypted fields and blind indexes work as on one
// server, and another tenant's row is not found.
func TestRepository(t *testing.T) {
	c := newCluster(t)
	ctx := testContext(t)
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	admin := pgstore.NewAdmin(c.ownerConn(t), kek)
	a, err := admin.CreateTenant(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := admin.CreateTenant(ctx, "Globex")
	if err != nil {
		t.Fatal(err)
	}
	c.ownerExec(t,
		"CREATE SCHEMA app",
		"GRANT USAGE ON SCHEMA app TO "+c.res.Roles.App,
		`CREATE TABLE app.contacts (tenant_id uuid NOT NULL, id uuid NOT NULL, name text NOT NULL, email bytea NOT NULL,
			email_bidx bytea, version bigint NOT NULL DEFAULT 1, PRIMARY KEY (tenant_id, id))`,
		"CREATE INDEX contacts_email ON app.contacts (tenant_id, email_bidx)",
		"SELECT tenantseal.distribute_table('app.contacts')",
		"INSERT INTO tenantseal.encrypted_columns VALUES ('app.contacts', 'email', 'email_bidx', 'email')",
	)
	p := c.pool(t, nil)
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(p)})
	if err != nil {
		t.Fatal(err)
	}
	contacts, err := repo.New[contact](ctx, p, kr, "app.contacts")
	if err != nil {
		t.Fatal(err)
	}
	asA, asB := as(t, a), as(t, b)
	var mine []repo.ID
	for _, name := range []string{"Ada", "Grace", "Edsger"} {
		v := contact{Name: name, Email: strings.ToLower(name) + "@acme.example"}
		if err := contacts.Insert(asA, &v); err != nil {
			t.Fatalf("insert: %v", err)
		}
		mine = append(mine, v.ID)
	}
	theirs := contact{Name: "Hank", Email: "hank@globex.example"}
	if err := contacts.Insert(asB, &theirs); err != nil {
		t.Fatal(err)
	}

	got, err := contacts.Get(asA, mine[1])
	if err != nil || got.Name != "Grace" || got.Email != "grace@acme.example" {
		t.Errorf("Get: %+v (%v)", got, err)
	}
	if _, err := contacts.Get(asA, theirs.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get of Globex's row as Acme: %v, want ErrNotFound", err)
	}
	page, err := contacts.List(asA, repo.ListOptions{Limit: 10})
	if err != nil || len(page.Items) != 3 {
		t.Errorf("List as Acme: %d items (%v), want 3", len(page.Items), err)
	}
	found, err := contacts.FindBy(asA, "email", "GRACE@acme.example")
	if err != nil || len(found) != 1 || found[0].ID != mine[1] {
		t.Errorf("FindBy the blind index: %v (%v)", found, err)
	}
	if found, err := contacts.FindBy(asA, "email", "hank@globex.example"); err != nil || len(found) != 0 {
		t.Errorf("FindBy Globex's email as Acme: %v (%v), want nothing", found, err)
	}
	got.Name = "Grace Hopper"
	if err := contacts.Update(asA, &got); err != nil {
		t.Errorf("Update: %v", err)
	}
	stale := got
	stale.Version--
	if err := contacts.Update(asA, &stale); !errors.Is(err, repo.ErrConflict) {
		t.Errorf("Update with a stale version: %v, want ErrConflict", err)
	}
	theirs.Tenant = a
	if err := contacts.Update(asA, &theirs); err == nil {
		t.Error("Update of Globex's row as Acme succeeded")
	}
	if err := contacts.Delete(asA, mine[0]); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if n, err := contacts.Count(asA); err != nil || n != 2 {
		t.Errorf("Count as Acme: %d (%v), want 2", n, err)
	}
	if n, err := contacts.Count(asB); err != nil || n != 1 {
		t.Errorf("Count as Globex: %d (%v), want 1", n, err)
	}
}

// adopt with Citus writes a migration that makes the global table a reference table and distributes
// the tenant tables, parents first, by their tenant columns; the result is isolated and routed.
func TestAdopt(t *testing.T) {
	c := newCluster(t)
	ctx := testContext(t)
	a, b := c.tenant(t, "Acme"), c.tenant(t, "Globex")
	owner := c.ownerConn(t)
	c.ownerExec(t,
		"CREATE SCHEMA shop",
		"CREATE TABLE shop.plans (id bigint PRIMARY KEY, name text NOT NULL)",
		"INSERT INTO shop.plans VALUES (1, 'free'), (2, 'pro')",
		// The child first in the catalog: adopt must distribute the parent before it.
		"CREATE TABLE shop.customers (tenant_id uuid NOT NULL, id bigint NOT NULL, plan_id bigint NOT NULL REFERENCES shop.plans, name text NOT NULL, PRIMARY KEY (tenant_id, id))",
		"CREATE TABLE shop.accounts (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id))",
		"ALTER TABLE shop.customers ADD COLUMN account_id bigint",
		"ALTER TABLE shop.customers ADD FOREIGN KEY (tenant_id, account_id) REFERENCES shop.accounts (tenant_id, id)",
	)
	tx, err := owner.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := adopt.Generate(ctx, tx, adopt.Options{Declaration: adopt.Declaration{Schemas: []string{"shop"}, Global: []string{"shop.plans"}, Citus: true}})
	_ = tx.Rollback(ctx)
	if err != nil {
		t.Fatal(err)
	}
	up := plan.UpSQL()
	ref := strings.Index(up, "create_reference_table('\"shop\".\"plans\"'")
	parent := strings.Index(up, "create_distributed_table('\"shop\".\"accounts\"'")
	child := strings.Index(up, "create_distributed_table('\"shop\".\"customers\"'")
	if ref < 0 || parent < 0 || child < 0 || !(ref < parent && parent < child) {
		t.Fatalf("the up file does not make plans a reference table, then distribute accounts, then customers:\n%s", up)
	}
	// As golang-migrate runs a file: the whole file as one string, in one implicit transaction.
	apply := func(file, sql string) {
		t.Helper()
		if _, err := owner.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("apply the %s file: %v\n%s", file, err, sql)
		}
	}
	apply("up", up)
	var kinds []string
	rows, err := owner.Query(ctx, "SELECT logicalrelid::text || ' ' || partmethod::text FROM pg_dist_partition WHERE logicalrelid::text LIKE 'shop.%' ORDER BY 1")
	if err == nil {
		kinds, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || strings.Join(kinds, ", ") != "shop.accounts h, shop.customers h, shop.plans n" {
		t.Errorf("distribution after adopt: %v (%v), want accounts and customers hash-distributed, plans a reference table", kinds, err)
	}
	p := c.pool(t, nil)
	for i, id := range []tenantseal.TenantID{a, b} {
		if _, err := p.Exec(as(t, id), "INSERT INTO shop.accounts VALUES ($1, 1)", id); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Exec(as(t, id), "INSERT INTO shop.customers (tenant_id, id, plan_id, name, account_id) VALUES ($1, 1, $2, 'c', 1)", id, i+1); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := p.QueryRow(as(t, a), "SELECT count(*) FROM shop.customers c JOIN shop.plans pl ON pl.id = c.plan_id").Scan(&n); err != nil || n != 1 {
		t.Errorf("Acme's customers joined with the plans: %d (%v), want 1", n, err)
	}
	if _, err := p.Exec(as(t, a), "INSERT INTO shop.customers (tenant_id, id, plan_id, name, account_id) VALUES ($1, 2, 1, 'x', 1)", b); err == nil {
		t.Error("Acme inserted a customer of Globex")
	}
	apply("down", plan.DownSQL())
	super, err := pgx.Connect(ctx, c.superIn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(ctx)
	var kept int
	if err := super.QueryRow(ctx, "SELECT (SELECT count(*) FROM shop.customers) + (SELECT count(*) FROM shop.accounts)").Scan(&kept); err != nil || kept != 4 {
		t.Errorf("rows after the down file: %d (%v), want the 4 written (2 customers, 2 accounts)", kept, err)
	}
	if err := owner.QueryRow(ctx, "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'shop.%'").Scan(&n); err != nil || n != 0 {
		t.Errorf("after the down file: %d distributed tables of shop (%v), want 0", n, err)
	}
}
