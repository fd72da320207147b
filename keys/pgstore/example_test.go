package pgstore_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// The application loads keysets as the app role, through row-level security.
func ExampleLoader() {
	ctx := context.Background()
	var pool *db.Pool // db.Open(ctx, cfg) as the app role
	kek, err := keys.OpenKEK(ctx, "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k")
	if err != nil {
		log.Fatal(err)
	}
	if err := pgstore.CheckKEK(ctx, pool, kek); err != nil {
		log.Fatal(err) // not the KEK this database's keysets are wrapped with
	}
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(pool)})
	if err != nil {
		log.Fatal(err)
	}
	var tenant tenantseal.TenantID // from the verified access token
	ctx = tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: "ada"})
	ct, err := kr.Encrypt(ctx, keys.Field{Table: "customers", Column: "email", Row: "…"}, []byte("ada@example.com"))
	_, _ = ct, err
}

// A tenant's row and its keysets commit together, in a transaction of the caller's.
func ExampleAdmin_CreateKeysetsIn() {
	ctx := context.Background()
	var owner *pgx.Conn // pgx.Connect(ctx, ownerDSN)
	var kek *keys.KEK
	admin := pgstore.NewAdmin(owner, kek)
	err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error {
		var id tenantseal.TenantID
		if err := tx.QueryRow(ctx, "INSERT INTO tenantseal.tenants (name) VALUES ($1) RETURNING id", "acme").Scan(&id); err != nil {
			return err
		}
		return admin.CreateKeysetsIn(ctx, tx, id)
	})
	if err != nil {
		log.Fatal(err)
	}
}
