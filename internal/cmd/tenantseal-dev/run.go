package main

import (
	"context"
	"io"
	"os"

	"github.com/tenantseal/tenantseal/internal/bench"
	"github.com/tenantseal/tenantseal/internal/cli"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// run is cli.Run with a server starter: for bench, a container on the host's network (clients reach it
// on loopback, not through Docker's userland proxy, whose round trip would hide the server's cost), with
// a second one under callgrind for the instruction counts.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	start := startServer
	if len(args) > 0 && args[0] == "bench" {
		start = startBenchServer
	}
	return cli.RunWith(cli.Options{StartServer: start}, args, stdin, stdout, stderr)
}

// startServer starts PostgreSQL in a container, or hands over the server of TENANTSEAL_TEST_DSN, which
// is someone else's: demo and bench then drop what they create on it and touch nothing that exists.
func startServer(ctx context.Context) (*cli.Server, error) {
	s, err := pgtest.StartServer(ctx)
	if err != nil {
		return nil, err
	}
	return describe(s, "a container, listening on "), nil
}

func startBenchServer(ctx context.Context) (*cli.Server, error) {
	start := pgtest.StartHostServer
	if os.Getenv("TENANTSEAL_TEST_DSN") != "" {
		start = pgtest.StartServer // which hands that server over
	}
	s, err := start(ctx)
	if err != nil {
		return nil, err
	}
	srv := describe(s, "a container on the host's network (no Docker proxy), listening on ")
	if s.Started() {
		srv.Callgrind = func(ctx context.Context) (bench.Instrumented, error) { return pgtest.StartCallgrindServer(ctx) }
	}
	return srv, nil
}

func describe(s *pgtest.Server, where string) *cli.Server {
	if !s.Started() {
		return &cli.Server{SuperDSN: s.SuperDSN, Describe: "the server named by $TENANTSEAL_TEST_DSN"}
	}
	addr := "?"
	if set, err := dsn.Parse(s.SuperDSN); err == nil {
		addr = set.Get(dsn.Host) + ":" + set.Get(dsn.Port)
	}
	return &cli.Server{SuperDSN: s.SuperDSN, Describe: s.Image + ", " + where + addr, Stop: s.Stop}
}
