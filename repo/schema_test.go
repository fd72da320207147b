package repo_test

import (
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/repo"
)

// New reports a description that does not fit the table, each for its own reason.
func TestNewChecksTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type base struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
	}
	type missingColumn struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Nickname string              `ts:"nickname"`
	}
	type missingPK struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"uid,pk"`
	}
	type badEncType struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Phone    int                 `ts:"phone,encrypted"`
	}
	type encOnText struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Name     string              `ts:"display_name,encrypted"`
	}
	type wrongBidx struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Phone    string              `ts:"phone,encrypted,bidx=email_bidx"`
	}
	type noPK struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		Name     string              `ts:"display_name"`
	}
	type noTenant struct {
		ID   repo.ID `ts:"id,pk"`
		Name string  `ts:"display_name"`
	}
	type twoPKs struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Other    repo.ID             `ts:"tenant_id,pk"`
	}
	type pkOnText struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"display_name,pk"`
	}
	type readonlyTenant struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant,readonly"`
		ID       repo.ID             `ts:"id,pk"`
	}
	type badOption struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk,sparkly"`
	}
	type badVersion struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Version  string              `ts:"version,version"`
	}
	type unknownNormalizer struct {
		TenantID tenantseal.TenantID `ts:"tenant_id,tenant"`
		ID       repo.ID             `ts:"id,pk"`
		Email    string              `ts:"email,encrypted,bidx=email_bidx,normalize=upper"`
	}
	ctx := testContext(t)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"missing column", newErr[missingColumn](t, e, "customers"), `column "nickname" does not exist`},
		{"missing pk column", newErr[missingPK](t, e, "customers"), `column "uid" does not exist`},
		{"encrypted int", newErr[badEncType](t, e, "customers"), "must be string, []byte or *string"},
		{"encrypted text column", newErr[encOnText](t, e, "customers"), "must be bytea"},
		{"blind index not registered", newErr[wrongBidx](t, e, "customers"), "tenantseal.encrypted_columns says"},
		{"no pk", newErr[noPK](t, e, "customers"), "needs a field tagged pk"},
		{"no tenant", newErr[noTenant](t, e, "customers"), "one tagged tenant"},
		{"two pks", newErr[twoPKs](t, e, "customers"), "column mapped twice"},
		{"pk on a text column", newErr[pkOnText](t, e, "customers"), "pk must be a repo.ID field on a uuid column"},
		{"readonly tenant", newErr[readonlyTenant](t, e, "customers"), "the pk and tenant fields take no other option"},
		{"unknown option", newErr[badOption](t, e, "customers"), "unknown option sparkly"},
		{"string version", newErr[badVersion](t, e, "customers"), "version must be an int64"},
		{"unknown normalizer", newErr[unknownNormalizer](t, e, "customers"), "unknown normalizer upper"},
		{"missing table", newErr[base](t, e, "no_such_table"), "no such table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", tc.err, tc.want)
			}
		})
	}
	// A minimal mapping is valid, and a repository over it can update: with nothing to write, Update
	// still tells a missing row from a present one.
	r, err := repo.New[base](ctx, e.pool, e.kr, "customers")
	if err != nil {
		t.Fatalf("a minimal valid mapping: %v", err)
	}
	_, ctxA := e.tenant(t, "a")
	c := mustCustomer(t, e, ctxA, "A", "a@x")
	if err := r.Update(ctxA, &base{ID: c.ID}); err != nil {
		t.Errorf("Update of a present row with nothing to write: %v", err)
	}
	if err := r.Update(ctxA, &base{ID: repo.NewID()}); err != repo.ErrNotFound {
		t.Errorf("Update of a missing row with nothing to write: got %v, want ErrNotFound", err)
	}
}

func newErr[T any](t testing.TB, e *env, table string) error {
	_, err := repo.New[T](testContext(t), e.pool, e.kr, table)
	return err
}
