package repo_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/repo"
)

// The repository against raw pgx on the same rows, as the app role, side by side in one run. The raw
// variants run through the same db.Pool (one round trip with the signed context) without encryption,
// reflection or mapping: the difference is the repository's own cost.
func BenchmarkRepository(b *testing.B) {
	e := newEnv(b)
	tenant, ctx := e.tenant(b, "bench")
	rows := make([]*customer, 1000)
	for i := range rows {
		rows[i] = &customer{DisplayName: fmt.Sprint("c", i), Email: fmt.Sprintf("c%d@x", i), Phone: "+1 555 0100", Notes: ptr("some notes about this customer")}
	}
	if err := e.customers.InsertMany(ctx, rows); err != nil {
		b.Fatal(err)
	}
	id := rows[500].ID
	const cols = "tenant_id, id, display_name, email, phone, notes, created_at, updated_at, version"
	// The lists bind their limit as the repository does: the plan of a literal LIMIT differs (a sort
	// of all the tenant's rows where the repository's statement walks the primary key).
	// The scan variants read the same columns into typed destinations with no decryption: the scoped
	// statement and pgx's own decoding, which is what the repository adds its cost to.
	var x customer
	var email, phone, notes []byte
	dest := []any{&x.TenantID, &x.ID, &x.DisplayName, &email, &phone, &notes, &x.CreatedAt, &x.UpdatedAt, &x.Version}

	b.Run("get/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := e.pool.Query(ctx, "SELECT "+cols+" FROM customers WHERE tenant_id = $1 AND id = $2", tenant, id)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pgx.CollectRows(r, pgx.RowToMap); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get/scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := e.pool.QueryRow(ctx, "SELECT "+cols+" FROM customers WHERE tenant_id = $1 AND id = $2", tenant, id).Scan(dest...); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get/repo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.customers.Get(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("list50/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := e.pool.Query(ctx, "SELECT "+cols+" FROM customers WHERE tenant_id = $1 ORDER BY tenant_id, id LIMIT $2", tenant, 51)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pgx.CollectRows(r, pgx.RowToMap); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("list50/scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := e.pool.Query(ctx, "SELECT "+cols+" FROM customers WHERE tenant_id = $1 ORDER BY tenant_id, id LIMIT $2", tenant, 51)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pgx.ForEachRow(r, dest, func() error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("list50/repo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.customers.List(ctx, repo.ListOptions{Limit: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("findby/raw", func(b *testing.B) {
		var bidx []byte
		e.pool.QueryRow(ctx, "SELECT email_bidx FROM customers WHERE id = $1", id).Scan(&bidx)
		b.ReportAllocs()
		for b.Loop() {
			r, err := e.pool.Query(ctx, "SELECT "+cols+" FROM customers WHERE tenant_id = $1 AND email_bidx = $2", tenant, bidx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pgx.CollectRows(r, pgx.RowToMap); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("findby/repo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r, err := e.customers.FindBy(ctx, "email", "c500@x"); err != nil || len(r) != 1 {
				b.Fatalf("got %d rows (%v), want 1", len(r), err)
			}
		}
	})
	n := 0
	b.Run("insert/raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n++
			if _, err := e.pool.Exec(ctx, "INSERT INTO customers (tenant_id, id, display_name) VALUES ($1, $2, $3)", tenant, repo.NewID(), fmt.Sprint("raw", n)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("insert/raw-all", func(b *testing.B) {
		// Every column the repository writes, with values of the sizes it stores: ciphertexts and a
		// 20-byte blind index.
		bidx := make([]byte, 20)
		b.ReportAllocs()
		for b.Loop() {
			n++
			bidx[0], bidx[1], bidx[2] = byte(n), byte(n>>8), byte(n>>16)
			if _, err := e.pool.Exec(ctx, "INSERT INTO customers (tenant_id, id, display_name, email, email_bidx, phone, notes) VALUES ($1, $2, $3, $4, $5, $6, $7)",
				tenant, repo.NewID(), "r", make([]byte, 43), bidx, make([]byte, 44), make([]byte, 38)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("insert/repo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n++
			c := customer{DisplayName: "r", Email: fmt.Sprintf("r%d@x", n), Phone: "+1 555 0100", Notes: ptr("notes")}
			if err := e.customers.Insert(ctx, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
