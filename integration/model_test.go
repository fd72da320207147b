package integration_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/examples/reference"

	"pgregory.net/rapid"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
)

// modelRow is what a tenant should see of one customer.
type modelRow struct {
	name, email, phone string
	version            int64
}

// model is every tenant's customers as the repository should show them.
type model struct {
	rows []map[repo.ID]modelRow // by tenant index
}

func (m *model) owner(id repo.ID) int {
	for ti, rows := range m.rows {
		if _, ok := rows[id]; ok {
			return ti
		}
	}
	return -1
}

func (m *model) emailTaken(ti int, email string) bool {
	for _, r := range m.rows[ti] {
		if keys.NormalizeEmail(r.email) == keys.NormalizeEmail(email) {
			return true
		}
	}
	return false
}

// Random sequences of repository operations by random tenants, checked after every step against an
// in-memory model of what each tenant should see. rapid shrinks a failing sequence to a minimal one.
func TestRepositoryModel(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)
	d := pgtest.NewDatabase(t)
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	admin := pgstore.NewAdmin(mustConn(t, d.OwnerDSN), kek)
	pool := mustPool(t, d, d.AppDSN)
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(pool)})
	if err != nil {
		t.Fatal(err)
	}
	customers, err := reference.NewCustomers(ctx, pool, kr)
	if err != nil {
		t.Fatal(err)
	}
	emails := []string{"ada@example.com", " ADA@example.com", "bob@example.com", "eve@example.org"}
	names := []string{"Ada", "Bob", "Eve", "Mallory"}
	run := 0

	rapid.Check(t, func(rt *rapid.T) {
		// Fresh tenants for every sequence: each starts from nothing.
		run++
		const n = 3
		var tenants []tenantseal.TenantID
		m := &model{}
		for i := range n {
			id, err := admin.CreateTenant(ctx, fmt.Sprintf("model-%d-%d", run, i))
			if err != nil {
				rt.Fatal(err)
			}
			tenants = append(tenants, id)
			m.rows = append(m.rows, map[repo.ID]modelRow{})
		}
		actx := func(ti int) context.Context {
			return tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenants[ti], Subject: fmt.Sprintf("user-%d", ti)})
		}
		var known []repo.ID // every id ever inserted, of any tenant, deleted or not
		tenant := rapid.IntRange(0, n-1)
		anyID := func(rt *rapid.T) repo.ID {
			return rapid.SampledFrom(append(slices.Clone(known), repo.NewID())).Draw(rt, "id")
		}

		rt.Repeat(map[string]func(*rapid.T){
			"insert": func(rt *rapid.T) {
				ti := tenant.Draw(rt, "tenant")
				c := reference.Customer{
					DisplayName: rapid.SampledFrom(names).Draw(rt, "name"),
					Email:       rapid.SampledFrom(emails).Draw(rt, "email"),
					Phone:       fmt.Sprintf("+1 555 %04d", rapid.IntRange(0, 9999).Draw(rt, "phone")),
				}
				err := customers.Insert(actx(ti), &c)
				if m.emailTaken(ti, c.Email) {
					// The blind index is unique per tenant: the same address in another tenant is fine.
					if err == nil {
						rt.Fatalf("T%d inserted a second customer with %q", ti, c.Email)
					}
					return
				}
				if err != nil {
					rt.Fatalf("T%d insert: %v", ti, err)
				}
				if c.TenantID != tenants[ti] {
					rt.Fatalf("insert filled tenant %s, want T%d", c.TenantID, ti)
				}
				m.rows[ti][c.ID] = modelRow{name: c.DisplayName, email: c.Email, phone: c.Phone, version: c.Version}
				known = append(known, c.ID)
			},
			"insert naming another tenant": func(rt *rapid.T) {
				ti := tenant.Draw(rt, "tenant")
				other := (ti + 1 + rapid.IntRange(0, n-2).Draw(rt, "other")) % n
				c := reference.Customer{TenantID: tenants[other], DisplayName: "x", Email: "x@example.com"}
				if err := customers.Insert(actx(ti), &c); !errors.Is(err, repo.ErrTenantMismatch) {
					rt.Fatalf("T%d inserting a row of T%d: got %v, want ErrTenantMismatch", ti, other, err)
				}
			},
			"get": func(rt *rapid.T) {
				ti := tenant.Draw(rt, "tenant")
				id := anyID(rt)
				got, err := customers.Get(actx(ti), id)
				want, own := m.rows[ti][id]
				switch {
				case !own:
					if !errors.Is(err, repo.ErrNotFound) {
						rt.Fatalf("T%d get %s (of T%d): got %v %+v, want ErrNotFound", ti, id, m.owner(id), err, got)
					}
				case err != nil:
					rt.Fatalf("T%d get own %s: %v", ti, id, err)
				case got.DisplayName != want.name || got.Email != want.email || got.Phone != want.phone || got.Version != want.version:
					rt.Fatalf("T%d get %s: got %+v, want %+v", ti, id, got, want)
				}
			},
			"update": func(rt *rapid.T) {
				ti := tenant.Draw(rt, "tenant")
				id := anyID(rt)
				want, own := m.rows[ti][id]
				stale := own && rapid.Bool().Draw(rt, "stale")
				c := reference.Customer{ID: id, DisplayName: rapid.SampledFrom(names).Draw(rt, "name"), Email: want.email, Phone: want.phone, Version: want.version}
				if stale {
					c.Version--
				}
				err := customers.Update(actx(ti), &c)
				switch {
				case !own:
					if !errors.Is(err, repo.ErrNotFound) {
						rt.Fatalf("T%d update %s (of T%d): got %v, want ErrNotFound", ti, id, m.owner(id), err)
					}
				case stale:
					if !errors.Is(err, repo.ErrConflict) {
						rt.Fatalf("T%d stale update: got %v, want ErrConflict", ti, err)
					}
				case err != nil:
					rt.Fatalf("T%d update own %s: %v", ti, id, err)
				default:
					want.name, want.version = c.DisplayName, want.version+1
					m.rows[ti][id] = want
				}
			},
			"delete": func(rt *rapid.T) {
				ti := tenant.Draw(rt, "tenant")
				id := anyID(rt)
				err := customers.Delete(actx(ti), id)
				if _, own := m.rows[ti][id]; !own {
					if !errors.Is(err, repo.ErrNotFound) {
						rt.Fatalf("T%d delete %s (of T%d): got %v, want ErrNotFound", ti, id, m.owner(id), err)
					}
					return
				}
				if err != nil {
					rt.Fatalf("T%d delete own %s: %v", ti, id, err)
				}
				delete(m.rows[ti], id)
			},
			"find by email": func(rt *rapid.T) {
				ti := tenant.Draw(rt, "tenant")
				email := rapid.SampledFrom(emails).Draw(rt, "email")
				got, err := customers.FindBy(actx(ti), "email", email)
				if err != nil {
					rt.Fatalf("T%d find %q: %v", ti, email, err)
				}
				var want []repo.ID
				for id, r := range m.rows[ti] {
					if keys.NormalizeEmail(r.email) == keys.NormalizeEmail(email) {
						want = append(want, id)
					}
				}
				var ids []repo.ID
				for _, c := range got {
					ids = append(ids, c.ID)
				}
				slices.SortFunc(want, repo.ID.Compare)
				if !slices.Equal(ids, want) {
					rt.Fatalf("T%d find %q: got %v, want %v", ti, email, ids, want)
				}
			},
			// After every step, every tenant lists exactly its own rows, decrypted, with their versions.
			"": func(rt *rapid.T) {
				for ti := range tenants {
					page, err := customers.List(actx(ti), repo.ListOptions{Limit: repo.MaxLimit})
					if err != nil {
						rt.Fatalf("T%d list: %v", ti, err)
					}
					if len(page.Items) != len(m.rows[ti]) {
						rt.Fatalf("T%d lists %d customers, want %d", ti, len(page.Items), len(m.rows[ti]))
					}
					for _, c := range page.Items {
						want, ok := m.rows[ti][c.ID]
						if !ok || c.TenantID != tenants[ti] || c.DisplayName != want.name || c.Email != want.email || c.Phone != want.phone || c.Version != want.version {
							rt.Fatalf("T%d lists %+v, want %+v (own: %v, of T%d)", ti, c, want, ok, m.owner(c.ID))
						}
					}
				}
			},
		})
	})
}
