package tenants_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/tenants"
)

func TestValidateRegion(t *testing.T) {
	for _, ok := range []string{"eu", "eu-west-1", "us-east-2", "europe-west3", "ap-southeast-1", "x", strings.Repeat("a", 32)} {
		if err := tenants.ValidateRegion(ok); err != nil {
			t.Errorf("ValidateRegion(%q) = %v, want nil", ok, err)
		}
	}
	// Every refusal says the same: the rule, never the value.
	first := tenants.ValidateRegion("")
	for _, bad := range []string{"", "EU", "eu west", "eu--west", "-eu", "eu-", "1eu", "eu_west", "eu.west", strings.Repeat("a", 33), "eu\n", "é"} {
		err := tenants.ValidateRegion(bad)
		if !errors.Is(err, tenants.ErrInvalidRegion) || err.Error() != first.Error() {
			t.Errorf("ValidateRegion(%q) = %v, want ErrInvalidRegion saying the rule alone", bad, err)
		}
	}
}

// A region is recorded and shown; setting it again records nothing; a deleted tenant's is kept. The
// database refuses a malformed region written by other means, and dates deletions itself.
func TestSetRegionAndDeletedAt(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	owner := mustConn(t, d.OwnerDSN)
	ctx := testContext(t)
	rec := &recorder{}
	a := mustCreate(t, owner, "a", nil).ID
	for _, region := range []string{"eu-west-1", "eu-west-1", "", "us"} {
		if err := tenants.SetRegion(ctx, owner, a, region, tenants.Recording(rec)); err != nil {
			t.Fatalf("set region %q: %v", region, err)
		}
	}
	want := []tenantseal.Event{
		{Kind: tenantseal.EventTenantChange, TargetTenant: a, Table: "tenantseal.tenants", Operation: "set-region", Detail: "region eu-west-1, was none"},
		{Kind: tenantseal.EventTenantChange, TargetTenant: a, Table: "tenantseal.tenants", Operation: "set-region", Detail: "region none, was eu-west-1"},
		{Kind: tenantseal.EventTenantChange, TargetTenant: a, Table: "tenantseal.tenants", Operation: "set-region", Detail: "region us, was none"},
	}
	if diff := cmp.Diff(want, rec.Take()); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
	if tn, err := tenants.Get(ctx, owner, a); err != nil || tn.Region != "us" || tn.RetentionPolicy != "" || tn.DeletedAt != nil {
		t.Errorf("got %+v, %v; want region us, no policy, not deleted", tn, err)
	}
	if err := tenants.SetRegion(ctx, owner, a, "EU", tenants.Recording(rec)); !errors.Is(err, tenants.ErrInvalidRegion) {
		t.Errorf("got %v, want ErrInvalidRegion", err)
	}
	if _, err := owner.Exec(ctx, "UPDATE tenantseal.tenant_governance SET region = 'Europe (Frankfurt)' WHERE tenant_id = $1", a); sqlState(err) != "23514" {
		t.Errorf("a malformed region written directly: got %v, want a check violation (23514)", err)
	}
	if err := tenants.SetRetentionPolicy(ctx, owner, a, "nothing"); !errors.Is(err, tenants.ErrNoSuchPolicy) {
		t.Errorf("an unknown policy: got %v, want ErrNoSuchPolicy", err)
	}

	if err := tenants.Delete(ctx, owner, a); err != nil {
		t.Fatal(err)
	}
	deleted, err := tenants.Get(ctx, owner, a)
	if err != nil || deleted.DeletedAt == nil || deleted.DeletedAt.Before(deleted.CreatedAt) {
		t.Fatalf("got %+v, %v; want the deletion dated", deleted, err)
	}
	// Deleting again, or writing the date directly, leaves the first date.
	if err := tenants.Delete(ctx, owner, a); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, "UPDATE tenantseal.tenants SET deleted_at = now() + interval '1 year' WHERE key = $1", a.String()); err != nil {
		t.Fatal(err)
	}
	if again, _ := tenants.Get(ctx, owner, a); again.DeletedAt == nil || !again.DeletedAt.Equal(*deleted.DeletedAt) {
		t.Errorf("got deleted_at %v, want it kept at %v", again.DeletedAt, deleted.DeletedAt)
	}
	if err := tenants.SetRegion(ctx, owner, a, "eu", tenants.Recording(rec)); !errors.Is(err, tenants.ErrDeleted) {
		t.Errorf("set a deleted tenant's region: got %v, want ErrDeleted", err)
	}
	if ev := rec.Take(); len(ev) != 0 {
		t.Errorf("got %+v recorded, want nothing", ev)
	}
	b := mustCreate(t, owner, "b", nil).ID
	if _, err := owner.Exec(ctx, "UPDATE tenantseal.tenants SET deleted_at = now() WHERE key = $1", b.String()); err != nil {
		t.Fatal(err)
	}
	if tn, _ := tenants.Get(ctx, owner, b); tn.DeletedAt != nil {
		t.Errorf("an active tenant: got deleted_at %v, want none", tn.DeletedAt)
	}
}
