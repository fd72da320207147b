package cli_test

import (
	"testing"

	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// On a database without Citus, citus check and sync say so and change nothing; a bad subcommand is a
// usage error. (The commands on a real cluster: package integration/citus, TestCitusCommand.)
func TestCitusWithoutCitus(t *testing.T) {
	t.Parallel()
	secrets := secretsFor(t, pgtest.NewDatabase(t))
	for _, sub := range []string{"check", "sync"} {
		wantFailure(t, run(t, "citus", sub, "--secrets", secrets), 1, "citus "+sub+": the database has no citus extension")
	}
	wantFailure(t, run(t, "citus", "rebalance", "--secrets", secrets), 2, `unknown subcommand "rebalance"`)
	wantFailure(t, run(t, "citus", "--secrets", secrets), 2, "missing subcommand")
}
