package main

import (
	"context"
	"io"

	"github.com/tenantseal/tenantseal/internal/cli"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys/kms"
)

// run is cli.Run with a server starter.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.RunWith(cli.Options{StartServer: startServer, KMS: kms.Clients}, args, stdin, stdout, stderr)
}

// startServer starts PostgreSQL in a container, or hands over the server of TENANTSEAL_TEST_DSN, which
// is someone else's: demo and bench then drop what they create on it and touch nothing that exists.
func startServer(ctx context.Context) (*cli.Server, error) {
	s, err := pgtest.StartServer(ctx)
	if err != nil {
		return nil, err
	}
	if !s.Started() {
		return &cli.Server{SuperDSN: s.SuperDSN, Describe: "the server named by $TENANTSEAL_TEST_DSN"}, nil
	}
	where := "a container"
	if set, err := dsn.Parse(s.SuperDSN); err == nil {
		where = set.Get(dsn.Host) + ":" + set.Get(dsn.Port)
	}
	return &cli.Server{SuperDSN: s.SuperDSN, Describe: s.Image + ", listening on " + where, Stop: s.Stop}, nil
}
