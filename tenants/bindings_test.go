package tenants_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/tenants"
)

const (
	customers = "https://customers.example.com/"
	partner   = "https://sso.partner.example.com/"
)

func TestBindUnbindBindings(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	owner := mustConn(t, d.OwnerDSN)
	a, b := mustCreate(t, owner, "a", nil), mustCreate(t, owner, "b", nil)
	rec := &recorder{}
	for _, st := range []struct {
		id            tenantseal.TenantID
		issuer, claim string
		err           error
	}{
		{a.ID, customers, "org_a", nil},
		{a.ID, customers, "org_a", nil}, // bound already: nothing changes, nothing is recorded
		{b.ID, customers, "org_a", tenants.ErrBound},
		{b.ID, partner, "org_a", nil}, // another issuer may name another tenant by the same value
		{b.ID, customers, "org_b", nil},
		{tenantseal.TenantIDFromUUID([16]byte{1}), customers, "org_x", tenants.ErrNotFound},
		{a.ID, "", "org_a", tenants.ErrInvalidBinding},
		{a.ID, customers, "", tenants.ErrInvalidBinding},
		{a.ID, customers, strings.Repeat("x", tenants.MaxClaimLen+1), tenants.ErrInvalidBinding},
		{a.ID, customers, "org\na", tenants.ErrInvalidBinding},
		{a.ID, customers + "\xff", "org_a", tenants.ErrInvalidBinding},
	} {
		err := tenants.Bind(ctx, owner, st.id, st.issuer, st.claim, tenants.Recording(rec))
		if !errors.Is(err, st.err) || (st.err == nil) != (err == nil) {
			t.Errorf("Bind(%v, %s, %.20q): got %v, want %v", st.id, st.issuer, st.claim, err, st.err)
		}
	}
	if got := rec.Take(); len(got) != 3 || got[0].TargetTenant != a.ID || got[0].Operation != "bind" || got[0].Kind != tenantseal.EventTenantChange ||
		!strings.Contains(got[0].Detail, customers) || !strings.Contains(got[0].Detail, `"org_a"`) {
		t.Errorf("got records %+v, want three binds, the first of a to org_a at customers", got)
	}

	got, err := tenants.Bindings(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	want := []tenants.Binding{
		{Tenant: a.ID, Issuer: customers, Claim: "org_a", Status: tenants.StatusActive},
		{Tenant: b.ID, Issuer: customers, Claim: "org_b", Status: tenants.StatusActive},
		{Tenant: b.ID, Issuer: partner, Claim: "org_a", Status: tenants.StatusActive},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(tenants.Binding{}, "CreatedAt")); diff != "" {
		t.Errorf("bindings (-want +got):\n%s", diff)
	}
	if got, err := tenants.Bindings(ctx, owner, a.ID); err != nil || len(got) != 1 || got[0].Claim != "org_a" {
		t.Errorf("a's bindings: got %+v, %v; want org_a only", got, err)
	}

	if err := tenants.Unbind(ctx, owner, partner, "org_a", tenants.Recording(rec)); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Unbind(ctx, owner, partner, "org_a"); !errors.Is(err, tenants.ErrNotBound) {
		t.Errorf("unbind again: got %v, want ErrNotBound", err)
	}
	if got := rec.Take(); len(got) != 1 || got[0].TargetTenant != b.ID || got[0].Operation != "unbind" {
		t.Errorf("got records %+v, want the unbinding of b", got)
	}
	if err := tenants.Delete(ctx, owner, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Bind(ctx, owner, a.ID, partner, "org_a2"); !errors.Is(err, tenants.ErrDeleted) {
		t.Errorf("bind a deleted tenant: got %v, want ErrDeleted", err)
	}
	if got, _ := tenants.Bindings(ctx, owner, a.ID); len(got) != 1 || got[0].Status != tenants.StatusDeleted {
		t.Errorf("a's bindings: got %+v, want org_a, of a deleted tenant", got)
	}
}

// The app role learns from the bindings only what it asks with issuer and claim value together, and
// every lookup that finds no active tenant is counted, even when the caller rolls back.
func TestAppRoleCannotListBindings(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	owner := mustConn(t, d.OwnerDSN)
	a, b := mustCreate(t, owner, "a", nil), mustCreate(t, owner, "b", nil)
	for _, bd := range []struct {
		id         tenantseal.TenantID
		iss, claim string
	}{{a.ID, customers, "org_a"}, {b.ID, partner, "tid-b"}} {
		if err := tenants.Bind(ctx, owner, bd.id, bd.iss, bd.claim); err != nil {
			t.Fatal(err)
		}
	}
	app := mustConn(t, d.AppDSN)
	for _, sql := range []string{
		"SELECT * FROM tenantseal.tenant_bindings",
		"SELECT count(*) FROM tenantseal.tenant_bindings",
		"EXPLAIN ANALYZE SELECT * FROM tenantseal.tenant_bindings WHERE claim = 'org_a'",
		"SELECT * FROM tenantseal.spent_tokens",
		"DELETE FROM tenantseal.spent_tokens",
		"INSERT INTO tenantseal.tenant_bindings (issuer, claim, tenant_id) VALUES ('x', 'y', gen_random_uuid())",
		"SELECT last_value FROM tenantseal.binding_refusals",
		"SELECT setval('tenantseal.binding_refusals', 1)",
	} {
		if _, err := app.Exec(ctx, sql); sqlState(err) != "42501" {
			t.Errorf("%s: got %v, want a permission error (42501)", sql, err)
		}
	}
	lookup := func(iss, claim string) []string {
		t.Helper()
		rows, err := app.Query(ctx, "SELECT concat_ws(' ', tenant_key, tenant_status, other_issuer) FROM tenantseal.tenant_binding($1, $2)", iss, claim)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, c := range []struct {
		iss, claim string
		want       []string
	}{
		{customers, "org_a", []string{a.ID.String() + " active f"}},
		{"https://idp2.example.com/", "org_a", nil},               // an issuer bound to no tenant learns nothing
		{partner, "org_a", []string{a.ID.String() + " active t"}}, // a bound issuer learns the target of its mismatch
		{customers, "org_", nil},
		{customers, "%", nil},
		{customers, "", nil},
	} {
		if got := lookup(c.iss, c.claim); !cmp.Equal(got, c.want, cmpopts.EquateEmpty()) {
			t.Errorf("tenant_binding(%s, %q): got %q, want %q", c.iss, c.claim, got, c.want)
		}
	}
	// A caller that rolls its misses back, or catches them, leaves them counted.
	if _, err := app.Exec(ctx, "BEGIN; SELECT tenantseal.tenant_binding('x', 'y'); SELECT tenantseal.tenant_binding('x', 'z'); ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Suspend(ctx, owner, a.ID); err != nil {
		t.Fatal(err)
	}
	if got := lookup(customers, "org_a"); !cmp.Equal(got, []string{a.ID.String() + " suspended f"}) {
		t.Errorf("suspended: got %q", got)
	}
	n, err := tenants.RefusedLookups(ctx, owner)
	if err != nil || n != 8 {
		t.Errorf("refused lookups: got %d, %v; want 8 (5 misses, 2 rolled back, 1 suspended)", n, err)
	}
}
