package repo_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/repo"
)

// With one connection in the pool, a keyset load must never wait for a second one: not while List reads
// its rows, not inside a transaction.
func TestOneConnectionNeverDeadlocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ctxA := e.tenant(t, "a")
	mustCustomer(t, e, ctxA, "A", "a@x")

	one := e.d.Pool(t, func(c *db.Config) { c.PoolConfig.MaxConns = 1 })
	fresh := func() *repo.Table[customer] {
		kr, err := keys.NewKeyring(keys.Config{KEK: e.kek, Loader: pgstore.Loader(one)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := repo.New[customer](testContext(t), one, kr, "public.customers")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx, cancel := context.WithTimeout(ctxA, 10*time.Second)
	defer cancel()
	if p, err := fresh().List(ctx, repo.ListOptions{}); err != nil || len(p.Items) != 1 {
		t.Fatalf("List with a cold keyring on one connection: %d rows, %v", len(p.Items), err)
	}
	customers := fresh()
	err := one.Tx(ctx, func(tx pgx.Tx) error {
		c := customer{DisplayName: "B", Email: "b@x"}
		if err := customers.With(tx).Insert(ctx, &c); err != nil {
			return err
		}
		_, err := customers.With(tx).Get(ctx, c.ID)
		return err
	})
	if err != nil {
		t.Fatalf("Insert and Get in a transaction with a cold keyring on one connection: %v", err)
	}
}
