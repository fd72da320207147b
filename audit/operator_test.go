package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
)

// alertCount counts the alerts it receives.
type alertCount struct{ n int }

func (a *alertCount) Alert(context.Context, audit.Alert) { a.n++ }

// An operator's actions, keyset unwraps and schema changes are records, not attempts: a burst of them
// (keys rotate --all over many tenants, a cold cache, a migration) raises no alert, where the same
// burst of attempts does.
func TestOperatorActionsRaiseNoAlert(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		kind tenantseal.EventKind
		want int
	}{{tenantseal.EventKeyRotate, 0}, {tenantseal.EventMigrate, 0}, {tenantseal.EventShred, 0}, {tenantseal.EventKeyCreate, 0},
		{tenantseal.EventKeyReencrypt, 0}, {tenantseal.EventKeyUnwrap, 0}, {tenantseal.EventDDL, 0}, {tenantseal.EventSecurityChange, 0},
		{tenantseal.EventSecurityBaseline, 0}, {tenantseal.EventDeletionCertificate, 0}, {tenantseal.EventRetentionPolicy, 0},
		{tenantseal.EventForeignID, 1}, {tenantseal.EventInvalidContext, 1}} {
		got := &alertCount{}
		d := audit.NewDetector(audit.DetectorConfig{Alerter: got, Now: func() time.Time { return now }})
		subject := "ops@host"
		for range 20 {
			d.Observe(context.Background(), audit.Entry{Kind: tc.kind, Subject: &subject})
		}
		if got.n != tc.want {
			t.Errorf("%s: got %d alerts for 20 events, want %d", tc.kind, got.n, tc.want)
		}
		if tc.kind.Attempt() != (tc.want != 0) {
			t.Errorf("%s: Attempt() = %v, want it to say whether the kind is an attempt", tc.kind, tc.kind.Attempt())
		}
	}
}
