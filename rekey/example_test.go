package rekey_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/rekey"
)

// After a rotation: move the tenant's stored values under its new keys, then retire the old ones.
func ExampleReencrypt() {
	ctx := context.Background()
	var (
		lock   *pgx.Conn      // a connection of its own, for the tenant's lock
		pool   *db.Pool       // the app role's pool
		kr     *keys.Keyring  // over pgstore.Loader(pool)
		admin  *pgstore.Admin // the owner role's
		tenant tenantseal.TenantID
	)
	ctx = tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: "rekey"})
	st, err := rekey.Reencrypt(ctx, pool, kr, rekey.ReencryptOptions{Lock: lock})
	if err != nil {
		log.Fatal(err)
	}
	if st.Raced > 0 {
		return // rows written meanwhile: run again before retiring
	}
	u, err := rekey.Usage(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	// Refused with pgstore.ErrTooSoon until no application cache can still encrypt under the old keys.
	retired, err := admin.Retire(ctx, tenant, u, keys.RetireOptions{})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("retired keys %v", retired.IDs())
}
