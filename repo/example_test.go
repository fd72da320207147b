package repo_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/repo"
)

// Patient is an application's own struct: tag its columns and it is a repository. The tenant column
// and the pk are whichever columns the tags name (both uuid here; see the package doc for bigint,
// integer and text keys).
type Patient struct {
	TenantID tenantseal.TenantID `ts:"clinic_id,tenant"`
	ID       repo.ID             `ts:"patient_id,pk"`
	Name     string              `ts:"display_name"`
	Email    string              `ts:"email,encrypted,bidx=email_bidx,normalize=email"`
	Notes    *string             `ts:"notes,encrypted"`
	Version  int64               `ts:"version,version"`
	Created  time.Time           `ts:"created_at,readonly"`
}

// A repository over your own struct. It needs a database, so it has no output here.
func ExampleNew() {
	ctx := context.Background()
	cfg, _ := db.ParseConfig("postgres://tenantseal_app@localhost/tenantseal")
	cfg.SigningKey, _ = db.ParseContextKey("k1:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	pool, err := db.Open(ctx, cfg)
	if err != nil {
		return
	}
	defer pool.Close()
	kek, _ := keys.OpenKEK(ctx, "local-keyset:///etc/tenantseal/kek.json")
	kr, _ := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(pool)})

	patients, err := repo.New[Patient](ctx, pool, kr, "public.patients")
	if err != nil {
		return // a tag that does not fit the table is reported here
	}
	// Authentication middleware put the caller here; the tenant never comes from the request body.
	tenant, _ := tenantseal.ParseTenantID("0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5b")
	ctx = tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: "user-42"})

	p := Patient{Name: "Ada", Email: "ada@example.com"}
	if err := patients.Insert(ctx, &p); err != nil {
		return
	}
	found, _ := patients.FindBy(ctx, "email", " ADA@example.com")
	fmt.Println(len(found))
	if _, err := patients.Get(ctx, repo.NewID()); errors.Is(err, repo.ErrNotFound) {
		fmt.Println("not found")
	}
}

// IDs of every key type: each prints its canonical text, which also binds its row's ciphertexts, and
// IDs of different kinds never compare equal.
func ExampleIntID() {
	n, t := repo.IntID(7), repo.TextID("7")
	u, _ := repo.ParseID("0190A5B2-7C3D-4E5F-8A9B-0C1D2E3F4A5B")
	fmt.Println(n, t, u)
	fmt.Println(n == t, n == repo.IntID(7))
	// Output:
	// 7 7 0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5b
	// false true
}
