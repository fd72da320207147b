package authn_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/authn"
)

// whoami answers with the tenant and subject of the request's Principal.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, _ := tenantseal.PrincipalFrom(r.Context())
	fmt.Fprintf(w, "%s %s", p.Tenant, p.Subject)
})

// The middleware has the signature chi's Use takes, and mounts on a ServeMux.
var _ func(http.Handler) http.Handler = (*authn.Authenticator)(nil).Middleware

func TestMiddleware(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(c *authn.Config) { c.Realm = "invoicing" })
	mux := http.NewServeMux()
	mux.Handle("/v1/", w.auth.Middleware(whoami))
	mux.Handle("/staff/", w.auth.StaffMiddleware(whoami))
	user := w.userToken(nil)
	expiredTok := w.userToken(map[string]any{"exp": w.clock.Now().Add(-time.Hour).Unix(), "iat": w.clock.Now().Add(-2 * time.Hour).Unix()})
	noTenant := w.customers.Token("alice", apiAud, nil)
	tests := []struct {
		name      string
		target    string
		token     string
		header    []string
		status    int
		challenge string // the WWW-Authenticate header, "" for none
		kind      tenantseal.EventKind
		target2   tenantseal.TenantID
	}{
		{"tenant user", "/v1/x", user, nil, 200, "", "", tenantseal.TenantID{}},
		{"own tenant id in the query", "/v1/x?tenant=" + tenantA.String(), user, nil, 200, "", "", tenantseal.TenantID{}},
		{"own tenant claim in the query", "/v1/x?tenant_id=org_a", user, nil, 200, "", "", tenantseal.TenantID{}},
		{"staff at a staff route", "/staff/x", w.staffToken(nil), nil, 200, "", "", tenantseal.TenantID{}},

		{"no token", "/v1/x", "", nil, 401, `Bearer realm="invoicing"`, tenantseal.EventAuthRefused, tenantseal.TenantID{}},
		{"Basic credentials", "/v1/x", "", []string{"Authorization", "Basic YTpi"}, 401, `Bearer realm="invoicing"`, tenantseal.EventAuthRefused, tenantseal.TenantID{}},
		{"token in the query", "/v1/x?access_token=" + user, "", nil, 400,
			`Bearer realm="invoicing", error="invalid_request", error_description="authn: malformed authorization request: token in the query string; send it in the Authorization header"`,
			tenantseal.EventAuthRefused, tenantseal.TenantID{}},
		{"two Authorization headers", "/v1/x", user, []string{"Authorization", "Bearer " + user}, 400, "error=\"invalid_request\"", tenantseal.EventAuthRefused, tenantseal.TenantID{}},
		{"not a token68", "/v1/x", "", []string{"Authorization", "Bearer a b"}, 400, "error=\"invalid_request\"", tenantseal.EventAuthRefused, tenantseal.TenantID{}},
		{"expired", "/v1/x", expiredTok, nil, 401, `error="invalid_token", error_description="authn: token expired or not valid now: expired at `, tenantseal.EventAuthExpired, tenantseal.TenantID{}},
		{"no tenant claim: quotes of the reason replaced", "/v1/x", noTenant, nil, 401,
			`error_description="authn: token names no known tenant: no tenant claim ['org_id']"`, tenantseal.EventUnknownTenant, tenantseal.TenantID{}},
		{"staff token at a tenant route", "/v1/x", w.staffToken(nil), nil, 403, `error="insufficient_scope"`, tenantseal.EventAuthRefused, tenantseal.TenantID{}},
		{"tenant token at a staff route", "/staff/x", user, nil, 403, `error="insufficient_scope"`, tenantseal.EventAuthRefused, tenantseal.TenantID{}},
		{"another tenant in the query", "/v1/x?tenant=" + tenantB.String(), user, nil, 403,
			`error="insufficient_scope", error_description="authn: tenant in query parameter 'tenant' differs from the token's"`, tenantseal.EventTenantMismatch, tenantB},
		{"another tenant's claim in the query", "/v1/x?tenant_id=org_b", user, nil, 403, `error="insufficient_scope"`, tenantseal.EventTenantMismatch, tenantB},
		{"another tenant in a header", "/v1/x", user, []string{"X-Tenant-ID", tenantB.String()}, 403,
			`error_description="authn: tenant in header 'X-Tenant-ID' differs from the token's"`, tenantseal.EventTenantMismatch, tenantB},
		{"own and another tenant in the query", "/v1/x?tenant=" + tenantA.String() + "&tenant=" + tenantB.String(), user, nil, 403,
			`error="insufficient_scope"`, tenantseal.EventTenantMismatch, tenantB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(mux, tc.target, tc.token, tc.header...)
			if rec.Code != tc.status {
				t.Fatalf("got status %d (%s), want %d", rec.Code, rec.Body, tc.status)
			}
			got := rec.Header().Get("WWW-Authenticate")
			if (tc.challenge == "") != (got == "") || !strings.Contains(got, tc.challenge) {
				t.Errorf("got WWW-Authenticate %q, want one with %q", got, tc.challenge)
			}
			evs := w.events.take()
			if tc.kind == "" {
				if len(evs) != 0 {
					t.Errorf("got events %v, want none", kinds(evs))
				}
				if !strings.Contains(rec.Body.String(), "#") {
					t.Errorf("handler saw %q, want the token's subject", rec.Body)
				}
				return
			}
			if len(evs) != 1 || evs[0].Kind != tc.kind || evs[0].TargetTenant != tc.target2 || !strings.Contains(evs[0].Detail, "source 192.0.2.7") {
				t.Fatalf("got events %+v, want one %s naming target %v and the source", evs, tc.kind, tc.target2)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error_description"] == "" {
				t.Errorf("got body %s (%v), want JSON with error_description", rec.Body, err)
			}
			if tc.token != "" && strings.Contains(rec.Body.String()+got, tc.token) {
				t.Error("the response quotes the token")
			}
		})
	}
}

func TestBurstAlerts(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(c *authn.Config) { c.Bursts.Threshold = 3 })
	h := w.auth.Middleware(whoami)
	refuse := func(source string, n int) {
		for range n {
			serveFrom(h, source, "/v1/x", "forged.token.here")
		}
	}
	refuse("192.0.2.7", 3)
	if got := w.alerts.all(); len(got) != 0 {
		t.Fatalf("at the threshold: got alerts %+v, want none", got)
	}
	refuse("192.0.2.7", 5)
	got := w.alerts.all()
	want := []string{"source:192.0.2.7"}
	if keys := alertKeys(got); !cmp.Equal(keys, want) || got[0].Count != 4 || got[0].Kinds["auth_refused"] != 4 {
		t.Fatalf("got alerts %+v, want one for %v counting 4 auth_refused", got, want)
	}
	refuse("198.51.100.9", 3)
	if keys := alertKeys(w.alerts.all()); len(keys) != 1 {
		t.Errorf("another source under the threshold: got alerts %v, want still one", keys)
	}
	w.clock.Add(time.Minute)
	refuse("192.0.2.7", 4)
	if keys := alertKeys(w.alerts.all()); len(keys) != 2 {
		t.Errorf("a burst in the next window: got alerts %v, want a second one", keys)
	}
}

func alertKeys(as []audit.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Key)
	}
	return out
}
