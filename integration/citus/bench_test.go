package citus_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
)

// BenchmarkPointRead compares, in one run, a point read by tenant and key on Citus (coordinator and
// workers) and on one PostgreSQL server (the coordinator's, a database without Citus): raw pgx on a
// copy of the table without row-level security, and tenantseal's signed context. Report the ratios
// signed/raw of each with benchstat; the README's "Scaling out" quotes them.
//
//	TENANTSEAL_CITUS_DSN=... go test -run '^$' -bench PointRead -benchtime 3s -count 5 ./integration/citus
func BenchmarkPointRead(b *testing.B) {
	const tenants, rows = 100, 100
	for _, engine := range []struct {
		name  string
		citus bool
	}{{"single", false}, {"citus", true}} {
		c := newDatabase(b, engine.citus)
		ids := make([]tenantseal.TenantID, tenants)
		for i := range ids {
			ids[i] = c.tenant(b, fmt.Sprintf("tenant %d", i))
		}
		p := c.pool(b, nil)
		c.benchNotes(b, p, rows, ids)
		raw, err := pgxpool.New(testContext(b), c.res.AppDSN)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(raw.Close)
		read := map[string]func(id tenantseal.TenantID, key int) error{
			"raw": func(id tenantseal.TenantID, key int) error {
				var body string
				return raw.QueryRow(testContext(b), "SELECT body FROM app.notes_raw WHERE tenant_id = $1 AND id = $2", id, key).Scan(&body)
			},
			"signed": func(id tenantseal.TenantID, key int) error {
				var body string
				return p.QueryRow(as(b, id), "SELECT body FROM app.notes WHERE tenant_id = $1 AND id = $2", id, key).Scan(&body)
			},
		}
		for _, variant := range []string{"raw", "signed"} {
			f := read[variant]
			b.Run(engine.name+"/"+variant+"/clients=1", func(b *testing.B) {
				for b.Loop() {
					if err := f(ids[rand.IntN(tenants)], 1+rand.IntN(rows)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(engine.name+"/"+variant+"/clients=8", func(b *testing.B) {
				b.SetParallelism(4) // 8 goroutines on 2 cores
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := f(ids[rand.IntN(tenants)], 1+rand.IntN(rows)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// benchNotes makes app.notes (protected; on Citus distributed) with rows rows per tenant, through the
// app role, and app.notes_raw, the same rows without row-level security, which the app role reads.
func (c *cluster) benchNotes(b *testing.B, p *db.Pool, rows int, ids []tenantseal.TenantID) {
	b.Helper()
	ddl := []string{
		"CREATE SCHEMA app",
		fmt.Sprintf("GRANT USAGE ON SCHEMA app TO %s", c.res.Roles.App),
		"CREATE TABLE app.notes (tenant_id uuid NOT NULL, id bigint NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id))",
		"CREATE TABLE app.notes_raw (tenant_id uuid NOT NULL, id bigint NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id))",
		fmt.Sprintf("GRANT SELECT ON app.notes_raw TO %s", c.res.Roles.App),
	}
	if c.workers != nil {
		ddl = append(ddl, "SELECT tenantseal.distribute_table('app.notes')",
			"SELECT create_distributed_table('app.notes_raw', 'tenant_id', colocate_with => 'app.notes')")
	} else {
		ddl = append(ddl, "SELECT tenantseal.protect_table('app.notes')")
	}
	c.ownerExec(b, ddl...)
	values := make([]string, rows)
	for i := range values {
		values[i] = fmt.Sprintf("($1, %d, 'note %d of a tenant')", i+1, i+1)
	}
	for _, id := range ids {
		if _, err := p.Exec(as(b, id), "INSERT INTO app.notes VALUES "+strings.Join(values, ", "), id); err != nil {
			b.Fatal(err)
		}
	}
	super, err := pgx.Connect(testContext(b), c.superIn(b))
	if err != nil {
		b.Fatal(err)
	}
	defer super.Close(testContext(b))
	if _, err := super.Exec(testContext(b), "INSERT INTO app.notes_raw SELECT * FROM app.notes"); err != nil {
		b.Fatal(err)
	}
	if _, err := super.Exec(testContext(b), "ANALYZE app.notes_raw"); err != nil {
		b.Fatal(err)
	}
}
