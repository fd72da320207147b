package authn_test

import (
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/internal/metrictest"
)

func TestRefusalsCountedByKind(t *testing.T) {
	t.Parallel()
	m := metrictest.New(t)
	w := newWorld(t, func(c *authn.Config) { c.MeterProvider = m.Provider })
	h := w.auth.Middleware(whoami)
	expired := w.userToken(map[string]any{"exp": w.clock.Now().Add(-time.Hour).Unix(), "iat": w.clock.Now().Add(-2 * time.Hour).Unix()})
	for _, tc := range []struct {
		target, token string
		status        int
	}{
		{"/v1/x", w.userToken(nil), 200},
		{"/v1/x", "", 401},
		{"/v1/x", expired, 401},
		{"/v1/x", expired, 401},
		{"/v1/x?tenant=" + tenantB.String(), w.userToken(nil), 403},
	} {
		if rec := serve(h, tc.target, tc.token); rec.Code != tc.status {
			t.Fatalf("%s: got %d, want %d", tc.target, rec.Code, tc.status)
		}
	}
	for kind, want := range map[tenantseal.EventKind]int64{tenantseal.EventAuthRefused: 1, tenantseal.EventAuthExpired: 2, tenantseal.EventTenantMismatch: 1} {
		if got := m.Sum(t, "tenantseal.authn.refusals", authn.AttrKind.String(string(kind))); got != want {
			t.Errorf("%s refusals: got %d, want %d", kind, got, want)
		}
	}
	if got := m.Sum(t, "tenantseal.authn.refusals"); got != 4 {
		t.Errorf("all refusals: got %d, want 4", got)
	}
}
