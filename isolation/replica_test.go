package isolation_test

import (
	"testing"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/isolation"
	"github.com/tenantseal/tenantseal/isolation/isolationtest"
)

// On a hot standby the app role's reads are attacked there; the checks that write as the app role do
// not run there (a standby refuses every write), and each of them passes on the primary of the same
// database instead. It runs before the parallel tests, alone: the other suites' runs have a time budget
// each.
func TestIsolationSuiteOnReplica(t *testing.T) {
	rs := pgtest.SharedReplicaSet(t)
	d := rs.NewDatabase(t)
	cfg := suiteConfig(d, true)
	cfg.AppDSN = rs.Replica.On(d.AppDSN)
	rep := isolationtest.Run(t, cfg)
	if !rep.Standby {
		t.Fatal("the report does not say the app role ran on a standby")
	}
	if !rep.OK() {
		t.Fatalf("on the standby: %d leaks, %d errors", len(rep.Leaks()), len(rep.Errors()))
	}
	passed, notRun := 0, 0
	for _, r := range rep.Results {
		if r.Status == isolation.StatusPass {
			passed++
		}
		if len(r.NotRun) > 0 {
			notRun++
		}
	}
	// The suite has read cases and write cases: both kinds must show, or the split is hollow.
	if passed < 20 || notRun == 0 {
		t.Fatalf("on the standby: %d results passed, %d have checks not run; want read checks passing and write checks set aside", passed, notRun)
	}

	primary := isolationtest.Run(t, suiteConfig(d, true))
	if primary.Standby {
		t.Fatal("the primary's report says standby")
	}
	for _, r := range rep.Results {
		if len(r.NotRun) == 0 {
			continue
		}
		p, ok := primary.Find(r.Case, r.Target)
		if !ok || p.Status != isolation.StatusPass || p.Checks < r.Checks+1 {
			t.Errorf("%s on %s: checks not run on the standby (%d), on the primary: %+v; want them passed there", r.Case, r.Target, len(r.NotRun), p)
		}
	}
}
