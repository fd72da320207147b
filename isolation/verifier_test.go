package isolation_test

import (
	"testing"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/isolation/isolationtest"
)

// The isolation suite passes on each verifier of tenant contexts: the C one where the server has the
// extension (the local image does), and the plpgsql one that managed PostgreSQL runs.
func TestIsolationSuiteOnEachVerifier(t *testing.T) {
	t.Parallel()
	probe := pgtest.NewDatabase(t)
	for _, v := range pgtest.Verifiers(t, probe) {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			d.UseVerifier(t, v)
			if rep := isolationtest.Run(t, suiteConfig(d, testing.Short())); !rep.OK() {
				t.Fatalf("the %s verifier leaks: %d leaks, %d errors", v, len(rep.Leaks()), len(rep.Errors()))
			}
		})
	}
}
