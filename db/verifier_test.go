package db_test

import (
	"testing"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestOpenReportsVerifier(t *testing.T) {
	t.Parallel()
	probe := pgtest.NewDatabase(t)
	for _, v := range pgtest.Verifiers(t, probe) {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			d.UseVerifier(t, v)
			if got := mustOpen(t, mustConfig(t, d, d.AppDSN)).Verifier(); got != v {
				t.Errorf("got %q, want %q", got, v)
			}
		})
	}
	t.Run("schema before migration 20", func(t *testing.T) {
		t.Parallel()
		d := pgtest.NewDatabase(t)
		d.UseVerifier(t, db.VerifierPLpgSQL)
		mustExec(t, mustConn(t, d.OwnerDSN), "DROP FUNCTION tenantseal.verifier()")
		if got := mustOpen(t, mustConfig(t, d, d.AppDSN)).Verifier(); got != db.VerifierPLpgSQL {
			t.Errorf("got %q, want %q", got, db.VerifierPLpgSQL)
		}
	})
}
