package db_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// BenchmarkPointRead is the signed point read through db.Pool (one round trip: the context, the
// statement and, since the pooled-session fix, the reset; the verifier checks the tenant's status too)
// against the same read with raw pgx as a superuser, whom row-level security does not apply to. Compare
// signed with raw: the ratio is the price of isolation on this machine.
func BenchmarkPointRead(b *testing.B) {
	d := pgtest.NewDatabase(b)
	ctx := testContext(b)
	cfg := mustConfig(b, d, d.AppDSN)
	cfg.PoolConfig.MaxConns = 8
	p := mustOpen(b, cfg)
	tenant := mustTenant(b, d, "a")
	ctxA := as(ctx, tenant, "bench")
	var id string
	for range 100 {
		if err := p.QueryRow(ctxA, "INSERT INTO customers (display_name) VALUES ($1) RETURNING id::text", "customer").Scan(&id); err != nil {
			b.Fatal(err)
		}
	}
	const read = "SELECT id, display_name, version FROM customers WHERE tenant_id = $1 AND id = $2::uuid"
	rc, err := pgxpool.ParseConfig(d.SuperDSN)
	if err != nil {
		b.Fatal(err)
	}
	rc.MaxConns = 8
	raw, err := pgxpool.NewWithConfig(ctx, rc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(raw.Close)
	scan := func(ctx context.Context, q db.RowQuerier) error {
		var (
			got  [16]byte
			name string
			v    int64
		)
		return q.QueryRow(ctx, read, tenant, id).Scan(&got, &name, &v)
	}
	for _, r := range []struct {
		name string
		ctx  context.Context
		q    db.RowQuerier
	}{{"raw", ctx, raw}, {"signed", ctxA, p}} {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := scan(r.ctx, r.q); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Eight clients: the server's work per read, not the round trip, sets the pace.
		b.Run(r.name+"-8", func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := scan(r.ctx, r.q); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
