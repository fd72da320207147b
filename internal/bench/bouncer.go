package bench

import (
	"context"
	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgbouncer"
)

// bouncer is pgbouncer in transaction pooling mode in front of the bench database.
type bouncer struct {
	b      *pgbouncer.Bouncer
	appDSN string
}

func (b *bouncer) stop() { b.b.Stop() }

// bouncerPoolSize is the server connections pgbouncer keeps: fewer than the 64 clients.
const bouncerPoolSize = 16

func startBouncer(ctx context.Context, res *bootstrap.Result) (*bouncer, error) {
	app, err := dsn.Parse(res.AppDSN)
	if err != nil {
		return nil, err
	}
	pw := app.Get(dsn.Password)
	b, err := pgbouncer.Start(ctx, pgbouncer.Options{
		Upstream: res.AppDSN, Databases: []string{res.Database}, PoolSize: bouncerPoolSize,
		Users: map[string]string{res.Roles.App: pw},
	})
	if err != nil {
		return nil, err
	}
	return &bouncer{b: b, appDSN: b.DSN(res.Roles.App, pw, res.Database)}, nil
}
