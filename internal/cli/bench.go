package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal/internal/bench"
)

var benchCommand = command{
	name:    "bench",
	summary: "measure the price of isolation against raw pgx, app-side filtering and the usual RLS recipe",
	run:     runBench,
}

const benchAbout = `
On the server of --dsn (a superuser connection string; it creates the databases bench, benchflat_small
and benchflat_big, and roles of the same prefixes: use a server for benchmarks, not production), or on a
throwaway PostgreSQL in a container on the host's network with 'make bench' (go run
./internal/cmd/tenantseal-dev bench: loopback without Docker's userland proxy), loads --tenants x
--customers customers through the example repositories (encrypted fields, blind indexes) with invoices for
about half of them, measures the round trip, and measures the same point read through every variant,
interleaved round after round at each client count:

  1  raw pgx, no RLS (a copy of the table without policies), one connection per client: the baseline
  2  application-side filtering through a pgx pool
  3  the usual RLS recipe: BEGIN, set_config, query, COMMIT (four round trips)
  4  tenantseal with an unsigned context, one round trip, C verifier
  5  tenantseal with a signed context (the default), one round trip, C verifier (5p: plpgsql verifier;
     5k: a tenant column compared by tenant key, the policy of bigint, integer and text tenant columns)
  6  repository Get, fields decrypted
  7  repository List of 50 rows, decrypted (7b: the same list in raw pgx)
  8  repository Insert, encrypted with a blind index (8b: a raw pgx insert)
  9  variants 1 and 5 through pgbouncer in transaction pooling mode (9a, 9b)
  10 the whole stack: the invoicing example service on loopback answering GET /v1/customers/{id} for a
     caller with a signed OIDC access token (verification, registry, signed context, repository Get,
     decryption, JSON), beside the library's point reads

The C verifier is the extension tenantseal_verify; on a server without it every variant runs the plpgsql
verifier, and the report says so. The same reads also run server-only, sent by pgbench (--pgbench; S1 raw,
S2 set_config and raw, S4 unsigned, S5 signed, S5r signed with RESET ALL, S5e signed with c_enter as
db.Pool sends it, S5p signed on the plpgsql verifier), and, on a second server under valgrind's callgrind
('make bench' starts one when valgrind is installed), their instructions per transaction.

With --flat it also measures variant 5 at 100 tenants and at --flat-tenants tenants with the same rows per
tenant, and pgbench's raw and signed reads on both. It writes results.json, results.md and chart.svg to
--out, prints the Markdown, and says plainly which targets were missed.`

func runBench(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "bench", "--dsn <superuser connection string> [--tenants N] [--customers N] [--clients 1,8] [--out DIR] [flags]", benchAbout)
	dsn := f.String("dsn", "", "superuser connection string of the server to measure on (required, but for 'make bench')")
	tenants := f.Int("tenants", 1000, "tenants in the main dataset (at most 100000)")
	customers := f.Int("customers", 1000, "customers per tenant in the main dataset")
	clients := f.String("clients", "1,8", "comma-separated client counts (the targets are at 1 and 8; on a machine of 2 CPUs 64 measures the queue)")
	rounds := f.Int("rounds", 3, "interleaved rounds; the report takes medians")
	duration := f.Duration("duration", 2*time.Second, "length of one measurement")
	warmup := f.Duration("warmup", 100*time.Millisecond, "warm-up before each measurement (the Go variants first do one operation per tenant)")
	flat := f.Bool("flat", true, "also measure the signed read at 100 and at --flat-tenants tenants")
	flatTenants := f.Int("flat-tenants", 100_000, "tenants of the large flatness dataset")
	flatRows := f.Int("flat-rows", 5, "customers per tenant in the flatness datasets")
	out := f.String("out", "bench-results", "directory for results.json, results.md and chart.svg")
	pgbench := f.String("pgbench", "", "pgbench binary for the server-only variants (default: on PATH, or PostgreSQL 15's); - skips them")
	timeout := f.Duration("connect-timeout", 10*time.Second, "give up connecting after this long")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("bench: unexpected argument %q", pos[0])
	}
	cfg := bench.Config{Tenants: *tenants, CustomersPerTenant: *customers, Rounds: *rounds, Duration: *duration,
		Warmup: *warmup, Flat: *flat, FlatTenants: *flatTenants, FlatRows: *flatRows, Pgbench: *pgbench, Progress: s.stderr}
	switch {
	case *tenants < 1 || *tenants > 100_000:
		return usageErrorf("bench: --tenants must be between 1 and 100000")
	case *customers < 50:
		return usageErrorf("bench: --customers must be at least 50 (variant 7 lists 50)")
	case *rounds < 1 || *duration <= 0 || *warmup < 0:
		return usageErrorf("bench: --rounds, --duration and --warmup must be positive")
	case *flat && (*flatTenants < 100 || *flatTenants > 1_000_000 || *flatRows < 1):
		return usageErrorf("bench: --flat-tenants must be between 100 and 1000000, --flat-rows at least 1")
	}
	for _, c := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 256 {
			return usageErrorf("bench: --clients: %q is not a count between 1 and 256", c)
		}
		cfg.Clients = append(cfg.Clients, n)
	}
	switch {
	case *dsn != "":
		if cfg.SuperDSN, err = prepareDSN(s, *dsn, *timeout); err != nil {
			return err
		}
		cfg.Server = "the server of --dsn"
	case s.opts.StartServer == nil:
		return usageErrorf("bench: no server to measure on: pass --dsn <superuser connection string>, or run 'make bench' for a throwaway one")
	default:
		fmt.Fprintln(s.stderr, "starting PostgreSQL")
		srv, err := s.opts.StartServer(ctx)
		if err != nil {
			return err
		}
		s.connSecrets(srv.SuperDSN)
		if srv.Stop != nil {
			defer srv.Stop(context.WithoutCancel(ctx))
		}
		fmt.Fprintln(s.stderr, "using "+srv.Describe)
		cfg.SuperDSN, cfg.Server, cfg.Callgrind = srv.SuperDSN, srv.Describe, srv.Callgrind
	}
	program := "tenantseal"
	if *dsn == "" {
		program = "go run ./internal/cmd/tenantseal-dev" // the build that starts a server
	}
	command := program + " " + strings.Join(append([]string{"bench"}, redactArgs(args)...), " ")
	rep, err := bench.Run(ctx, cfg, *out, command)
	if err != nil {
		return err
	}
	s.printf("%s\nwrote %s/results.md, results.json and chart.svg\n", bench.Markdown(rep), *out)
	return nil
}

// redactArgs drops the value of --dsn from the command line the report quotes.
func redactArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--dsn" || a == "-dsn":
			i++
		case strings.HasPrefix(a, "--dsn=") || strings.HasPrefix(a, "-dsn="):
		default:
			out = append(out, a)
		}
	}
	return out
}
