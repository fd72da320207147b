package repo_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/repo"
)

// note is the shape of every fixture table below; each noteXxx type is the same struct with the tags of
// one table, so that one test body runs on all of them (struct conversion ignores tags).
type note struct {
	TenantID  tenantseal.TenantID
	ID        repo.ID
	Title     string
	Secret    string
	Version   int64
	CreatedAt time.Time
}

// The case: the pk column is uid, the tenant column tenant_id.
type noteUID struct {
	TenantID  tenantseal.TenantID `ts:"tenant_id,tenant"`
	ID        repo.ID             `ts:"uid,pk"`
	Title     string              `ts:"title"`
	Secret    string              `ts:"secret,encrypted,bidx=secret_bidx,normalize=lower"`
	Version   int64               `ts:"version,version"`
	CreatedAt time.Time           `ts:"created_at,readonly"`
}

// Neither column has the usual name; pk is a reserved word.
type noteAccount struct {
	TenantID  tenantseal.TenantID `ts:"account_id,tenant"`
	ID        repo.ID             `ts:"key,pk"`
	Title     string              `ts:"title"`
	Secret    string              `ts:"secret,encrypted,bidx=secret_bidx,normalize=lower"`
	Version   int64               `ts:"version,version"`
	CreatedAt time.Time           `ts:"created_at,readonly"`
}

// The usual column names, in tables whose names are not.
type noteUsual struct {
	TenantID  tenantseal.TenantID `ts:"tenant_id,tenant"`
	ID        repo.ID             `ts:"id,pk"`
	Title     string              `ts:"title"`
	Secret    string              `ts:"secret,encrypted,bidx=secret_bidx,normalize=lower"`
	Version   int64               `ts:"version,version"`
	CreatedAt time.Time           `ts:"created_at,readonly"`
}

// Column names with spaces, quotes, capitals and a per-cent sign.
type noteOdd struct {
	TenantID  tenantseal.TenantID `ts:"Org Id,tenant"`
	ID        repo.ID             `ts:"row \"key\",pk"`
	Title     string              `ts:"Title %d"`
	Secret    string              `ts:"secret's,encrypted,bidx=secret's bidx,normalize=lower"`
	Version   int64               `ts:"v%s,version"`
	CreatedAt time.Time           `ts:"created_at,readonly"`
}

const oddSchema = `Odd "Schema" 100%`

// fixture is a table of note's shape.
type fixture struct {
	schema, table                      string
	tenant, pk, title, secret, version string
	// protect puts the table under tenantseal.protect_table, which needs the tenant column tenant_id;
	// otherwise the test writes the policy itself.
	protect bool
}

func (f fixture) ident() string { return pgx.Identifier{f.schema, f.table}.Sanitize() }

// create makes the table as the owner, as an application's migration would.
func (f fixture) create(t *testing.T, e *env) {
	t.Helper()
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	tbl, app := f.ident(), q(e.d.Roles.App)
	if f.schema != "public" {
		e.owner(t, fmt.Sprintf("CREATE SCHEMA IF NOT EXISTS %s", q(f.schema)))
		e.owner(t, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s, %s", q(f.schema), app, q(e.d.Roles.Probe)))
	}
	e.owner(t, fmt.Sprintf(`CREATE TABLE %s (
		%s uuid NOT NULL REFERENCES tenantseal.tenants (id),
		%s uuid NOT NULL,
		%s text NOT NULL,
		%s bytea,
		%s bytea,
		%s bigint NOT NULL DEFAULT 1,
		created_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (%[2]s, %[3]s))`,
		tbl, q(f.tenant), q(f.pk), q(f.title), q(f.secret), q(f.bidx()), q(f.version)))
	if f.protect {
		e.owner(t, "SELECT tenantseal.protect_table($1::regclass)", tbl)
	} else {
		cond := q(f.tenant) + " = (SELECT tenantseal.current_tenant())"
		e.owner(t, fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", tbl))
		e.owner(t, fmt.Sprintf("ALTER TABLE %s FORCE ROW LEVEL SECURITY", tbl))
		e.owner(t, fmt.Sprintf("CREATE POLICY tenant ON %s TO %s USING (%s) WITH CHECK (%[3]s)", tbl, app, cond))
		e.owner(t, fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s", tbl, app))
	}
	e.owner(t, "INSERT INTO tenantseal.encrypted_columns VALUES ($1::regclass, $2, $3, 'lower')", tbl, f.secret, f.bidx())
}

func (f fixture) bidx() string {
	if f.secret == "secret" {
		return "secret_bidx"
	}
	return f.secret + " bidx"
}

// Every statement uses the tenant and pk columns as tagged and the table as named: Insert, InsertMany,
// Get, List, Count, FindBy, Update, Delete, end to end, as the app role under row-level security.
func TestAnyColumnAndTableNames(t *testing.T) {
	t.Parallel()
	usual := fixture{tenant: "tenant_id", pk: "id", title: "title", secret: "secret", version: "version", protect: true}
	for _, tc := range []struct {
		name string
		f    fixture
		run  func(t *testing.T, e *env, rec *events, f fixture)
	}{
		{"pk uid", fixture{schema: "public", table: "notes", tenant: "tenant_id", pk: "uid", title: "title", secret: "secret", version: "version", protect: true},
			func(t *testing.T, e *env, rec *events, f fixture) { exercise[noteUID](t, e, rec, f) }},
		{"tenant account_id, pk key", fixture{schema: "public", table: "account_notes", tenant: "account_id", pk: "key", title: "title", secret: "secret", version: "version"},
			func(t *testing.T, e *env, rec *events, f fixture) { exercise[noteAccount](t, e, rec, f) }},
		{"table 50%d_off", with(usual, "public", "50%d_off"),
			func(t *testing.T, e *env, rec *events, f fixture) { exercise[noteUsual](t, e, rec, f) }},
		{"odd schema and table", with(usual, oddSchema, `it's a "table"`),
			func(t *testing.T, e *env, rec *events, f fixture) { exercise[noteUsual](t, e, rec, f) }},
		{"odd column names", fixture{schema: oddSchema, table: "50%d_off", tenant: "Org Id", pk: `row "key"`, title: "Title %d", secret: "secret's", version: "v%s"},
			func(t *testing.T, e *env, rec *events, f fixture) { exercise[noteOdd](t, e, rec, f) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, edit := recording()
			e := newEnv(t, edit)
			tc.f.create(t, e)
			tc.run(t, e, rec, tc.f)
		})
	}
}

func with(f fixture, schema, table string) fixture {
	f.schema, f.table = schema, table
	return f
}

func exercise[T any](t *testing.T, e *env, rec *events, f fixture) {
	ctx := testContext(t)
	a, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	r, err := repo.New[T](ctx, e.pool, e.kr, f.ident())
	if err != nil {
		t.Fatal(err)
	}
	to := func(v T) note { return convert[T, note](t, v) }
	from := func(n note) T { return convert[note, T](t, n) }

	first := from(note{Title: "t1", Secret: "Secret-1"})
	if err := r.Insert(ctxA, &first); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	more := []*T{ptr(from(note{Title: "t2", Secret: "Secret-2"})), ptr(from(note{Title: "t3", Secret: "Secret-3"}))}
	if err := r.InsertMany(ctxA, more); err != nil {
		t.Fatalf("InsertMany: %v", err)
	}
	n1 := to(first)
	if n1.ID.IsZero() || n1.TenantID != a || n1.Version != 1 || n1.CreatedAt.IsZero() {
		t.Fatalf("after Insert got %+v, want id, tenant, version 1 and created_at filled", n1)
	}
	got, err := r.Get(ctxA, n1.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(n1, to(got)); diff != "" {
		t.Errorf("Get differs from what was inserted (-inserted +got):\n%s", diff)
	}

	var seen []string
	opts := repo.ListOptions{Limit: 2}
	for {
		p, err := r.List(ctxA, opts)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, v := range p.Items {
			seen = append(seen, to(v).Title)
		}
		if p.Next == "" {
			break
		}
		opts.After = p.Next
	}
	if diff := cmp.Diff([]string{"t1", "t2", "t3"}, seen); diff != "" {
		t.Errorf("List pages (-want +got):\n%s", diff)
	}
	if n, err := r.Count(ctxA); err != nil || n != 3 {
		t.Errorf("Count: got %d (%v), want 3", n, err)
	}
	if n, err := r.Count(ctxA, repo.Eq(f.title, "t2")); err != nil || n != 1 {
		t.Errorf("Count of %s = t2: got %d (%v), want 1", f.title, n, err)
	}
	if p, err := r.List(ctxA, repo.ListOptions{}, repo.Eq(f.title, "t3")); err != nil || len(p.Items) != 1 || to(p.Items[0]).ID != to(*more[1]).ID {
		t.Errorf("List of %s = t3: got %d rows (%v), want the third", f.title, len(p.Items), err)
	}
	if found, err := r.FindBy(ctxA, f.secret, "SECRET-2"); err != nil || len(found) != 1 || to(found[0]).ID != to(*more[0]).ID {
		t.Errorf("FindBy %s: got %d rows (%v), want the second", f.secret, len(found), err)
	}

	stale := got
	n1.Title = "t1 again"
	updated := from(n1)
	if err := r.Update(ctxA, &updated); err != nil || to(updated).Version != 2 {
		t.Fatalf("Update: got version %d (%v), want 2", to(updated).Version, err)
	}
	if err := r.Update(ctxA, &stale); !errors.Is(err, repo.ErrConflict) {
		t.Errorf("stale Update: got %v, want ErrConflict", err)
	}

	// Another tenant finds nothing, and the miss is reported only where the audit writer's probe can
	// answer: it never breaks the caller's transaction.
	rec.take()
	foreign := to(updated)
	foreign.TenantID = tenantseal.TenantID{}
	fv := from(foreign)
	for _, miss := range []struct {
		name string
		err  error
	}{
		{"Get", func() error { _, err := r.Get(ctxB, n1.ID); return err }()},
		{"Update", r.Update(ctxB, &fv)},
		{"Delete", r.Delete(ctxB, n1.ID)},
	} {
		if !errors.Is(miss.err, repo.ErrNotFound) {
			t.Errorf("%s of a's row as b: got %v, want ErrNotFound", miss.name, miss.err)
		}
	}
	var kinds []tenantseal.EventKind
	for _, ev := range rec.take() {
		// A miss names the table as the audit writer's database resolves it, whatever the search path.
		if ev.RowKey != n1.ID.String() || ev.Table != f.ident() {
			t.Errorf("got event %+v, want one for row %s of %s", ev, n1.ID, f.ident())
		}
		kinds = append(kinds, ev.Kind)
	}
	// The probe answers for the tables protect_table protected (tenantseal.tenant_tables), by their row
	// key column: every fixture protected so has its pk there.
	var want []tenantseal.EventKind
	if f.protect {
		want = []tenantseal.EventKind{tenantseal.EventLookupMiss, tenantseal.EventLookupMiss, tenantseal.EventLookupMiss}
	}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("recorded events (-want +got):\n%s", diff)
	}
	err = e.pool.Tx(ctxB, func(tx pgx.Tx) error {
		if _, err := r.With(tx).Get(ctxB, n1.ID); !errors.Is(err, repo.ErrNotFound) {
			return fmt.Errorf("Get in a transaction: got %v, want ErrNotFound", err)
		}
		_, err := r.With(tx).Count(ctxB)
		return err
	})
	if err != nil {
		t.Errorf("after a miss in a transaction: %v", err)
	}
	if n, err := r.Count(ctxB); err != nil || n != 0 {
		t.Errorf("Count as b: got %d (%v), want 0", n, err)
	}

	if err := r.Delete(ctxA, n1.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := r.Get(ctxA, n1.ID); !errors.Is(err, repo.ErrNotFound) {
		t.Errorf("Get after Delete: got %v, want ErrNotFound", err)
	}
	if strings.Contains(fmt.Sprint(rec.take()), "Secret") {
		t.Error("an event holds plaintext")
	}
}

// convert converts between struct types that differ only in tags.
func convert[From, To any](t *testing.T, v From) To {
	t.Helper()
	rv := reflect.ValueOf(v)
	to := reflect.TypeFor[To]()
	if !rv.Type().ConvertibleTo(to) {
		t.Fatalf("%s does not convert to %s", rv.Type(), to)
	}
	return rv.Convert(to).Interface().(To)
}

// The registry of encrypted columns is matched by schema and name: the registration of a table of the
// same name in another schema does not count.
func TestRegistryIsPerSchema(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	registered := fixture{schema: "public", table: "50%d_off", tenant: "tenant_id", pk: "id", title: "title", secret: "secret", version: "version", protect: true}
	registered.create(t, e)
	other := with(registered, oddSchema, "50%d_off")
	other.create(t, e)
	e.owner(t, "DELETE FROM tenantseal.encrypted_columns WHERE table_name = $1::regclass", other.ident())
	if _, err := repo.New[noteUsual](testContext(t), e.pool, e.kr, registered.ident()); err != nil {
		t.Errorf("the registered table: %v", err)
	}
	_, err := repo.New[noteUsual](testContext(t), e.pool, e.kr, other.ident())
	if err == nil || !strings.Contains(err.Error(), "is not registered in tenantseal.encrypted_columns") {
		t.Errorf("the same name in another schema, not registered: got %v, want the registration missing", err)
	}
}
