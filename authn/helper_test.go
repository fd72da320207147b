package authn_test

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/authn/authntest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Audiences and claims of the test world.
const (
	apiAud   = "invoicing"
	staffAud = "support-console"
)

var (
	tenantA = mustTenantID("0190a000-0000-7000-8000-00000000000a")
	tenantB = mustTenantID("0190b000-0000-7000-8000-00000000000b")
)

func mustTenantID(s string) tenantseal.TenantID {
	id, err := tenantseal.ParseTenantID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// events collects what is recorded.
type events struct {
	mu  sync.Mutex
	got []recorded
}

type recorded struct {
	tenantseal.Event
	Subject string
}

func (r *events) Record(ctx context.Context, e tenantseal.Event) {
	p, _ := tenantseal.PrincipalFrom(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, recorded{e, p.Subject})
}

// take returns the events recorded since the last take.
func (r *events) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func kinds(rs []recorded) []tenantseal.EventKind {
	var out []tenantseal.EventKind
	for _, r := range rs {
		out = append(out, r.Kind)
	}
	return out
}

// alerts collects burst alerts.
type alerts struct {
	mu  sync.Mutex
	got []audit.Alert
}

func (a *alerts) Alert(_ context.Context, al audit.Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, al)
}

func (a *alerts) all() []audit.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]audit.Alert(nil), a.got...)
}

// world is a loopback identity provider with three issuers, "customers" (an Auth0-like IdP that
// names tenants A and B with org_id), "partner" (tenant B's own IdP, tid) and "staff", and an
// Authenticator trusting them, on a settable clock.
type world struct {
	srv                       *authntest.Server
	customers, partner, staff *authntest.Issuer
	clock                     *authntest.Clock
	events                    *events
	alerts                    *alerts
	auth                      *authn.Authenticator
	cfg                       authn.Config // auth's, for a second Authenticator of the same service
}

func newWorld(t testing.TB, edit ...func(*authn.Config)) *world {
	t.Helper()
	srv, err := authntest.NewServer("127.0.0.1:0", authntest.Options{Issuers: []string{"customers", "partner", "staff"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	w := &world{srv: srv, customers: srv.Issuer("customers"), partner: srv.Issuer("partner"), staff: srv.Issuer("staff"),
		clock: newClock(), events: &events{}, alerts: &alerts{}}
	for _, iss := range []*authntest.Issuer{w.customers, w.partner, w.staff} {
		iss.Now = w.clock.Now
	}
	reg, err := authn.NewStaticRegistry(
		authn.Binding{Tenant: tenantA, Claim: "org_a", Issuers: []string{w.customers.URL()}},
		authn.Binding{Tenant: tenantB, Claim: "org_b", Issuers: []string{w.customers.URL()}},
		authn.Binding{Tenant: tenantB, Claim: "tid-b", Issuers: []string{w.partner.URL()}},
	)
	if err != nil {
		t.Fatal(err)
	}
	cfg := authn.Config{
		Issuers: []authn.Issuer{
			{URL: w.customers.URL(), Audiences: []string{apiAud}, TypedTokens: true,
				Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"org_id"}, Roles: authn.ClaimPath{"https://example.com/roles"}}},
			{URL: w.partner.URL(), Audiences: []string{apiAud}, StaffAudiences: []string{"partner-support"},
				Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"tid"}, Roles: authn.ClaimPath{"roles"}}},
			{URL: w.staff.URL(), StaffAudiences: []string{staffAud}, TypedTokens: true,
				Claims: authn.ClaimMapping{Roles: authn.ClaimPath{"realm_access", "roles"}}},
		},
		Registry: reg,
		Recorder: w.events,
		Bursts:   authn.BurstConfig{Alerter: w.alerts},
		Now:      w.clock.Now,
	}
	for _, e := range edit {
		e(&cfg)
	}
	a, err := authn.New(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	w.auth, w.cfg = a, cfg
	return w
}

// userToken is a token of tenant A's user alice from the customers issuer, with extra claims.
func (w *world) userToken(extra map[string]any) string {
	c := map[string]any{"org_id": "org_a", "https://example.com/roles": []string{"clerk"}}
	maps.Copy(c, extra)
	return w.customers.Token("alice", apiAud, c)
}

// staffToken is a token of staff member sam, with MFA and a fresh login unless extra says otherwise.
func (w *world) staffToken(extra map[string]any) string {
	c := map[string]any{"amr": []string{"pwd", "mfa"}, "auth_time": w.clock.Now().Unix(),
		"realm_access": map[string]any{"roles": []string{"support"}}}
	maps.Copy(c, extra)
	return w.staff.Token("sam", staffAud, c)
}

// newClock is a clock standing at the current second.
func newClock() *authntest.Clock {
	c := &authntest.Clock{}
	c.Set(time.Now().Truncate(time.Second))
	return c
}

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

// serve sends one request with token (none when empty) to h from 192.0.2.7 and returns the recorder.
func serve(h http.Handler, target, token string, header ...string) *httptest.ResponseRecorder {
	return serveFrom(h, "192.0.2.7", target, token, header...)
}

// serveFrom is serve from source; header holds name, value pairs.
func serveFrom(h http.Handler, source, target, token string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.RemoteAddr = source + ":4711"
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}
