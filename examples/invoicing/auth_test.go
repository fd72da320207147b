package invoicing_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/authn/authntest"
)

// Expired, wrong-audience and forged tokens are refused with an RFC 6750 challenge and recorded.
func TestTokensRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := e.clock.Now()
	forgedKey, forgedKid, err := authntest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	claims := func(edit map[string]any) map[string]any {
		c := e.customers.Claims("alice", apiAud)
		c["org_id"] = "org_acme"
		for k, v := range edit {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name  string
		token string
		kind  tenantseal.EventKind
	}{
		{"expired", e.customers.Sign(claims(map[string]any{"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(-time.Minute).Unix()})), tenantseal.EventAuthExpired},
		{"valid for a day", e.customers.Sign(claims(map[string]any{"exp": now.Add(24 * time.Hour).Unix()})), tenantseal.EventAuthExpired},
		{"wrong audience", e.customers.Sign(claims(map[string]any{"aud": "billing"})), tenantseal.EventAuthRefused},
		{"forged with an unknown key", e.customers.SignWith(claims(nil), authntest.SignOptions{Key: forgedKey, KeyID: forgedKid}), tenantseal.EventAuthRefused},
		{"forged under the issuer's kid", e.customers.SignWith(claims(nil), authntest.SignOptions{Key: forgedKey, KeyID: e.customers.JWKS().Keys[0].KeyID}), tenantseal.EventAuthRefused},
		{"globex's IdP naming acme", e.globexSSO.Token("mallory", apiAud, map[string]any{"tid": "org_acme"}), tenantseal.EventIssuerMismatch},
		{"unknown tenant", e.customers.Sign(claims(map[string]any{"org_id": "org_initech"})), tenantseal.EventUnknownTenant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "GET", "/v1/customers", tc.token, nil)
			if ch := r.header.Get("WWW-Authenticate"); r.status != http.StatusUnauthorized || !strings.HasPrefix(ch, `Bearer realm="invoicing", error="invalid_token"`) {
				t.Errorf("got %d with challenge %q, want 401 invalid_token", r.status, ch)
			}
		})
	}
	if r := e.do(t, "GET", "/v1/customers", "", nil); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Bearer realm="invoicing"` {
		t.Errorf("no token: got %d %q, want 401 with a bare challenge", r.status, r.header.Get("WWW-Authenticate"))
	}
	got := map[tenantseal.EventKind]int{}
	for _, en := range e.events(t, "") {
		got[en.Kind]++
		if en.Kind == tenantseal.EventIssuerMismatch && (str(en.TargetTenant) != e.acme.String() || !strings.HasSuffix(str(en.Subject), "/globex-sso#mallory")) {
			t.Errorf("issuer mismatch %+v: want acme as the target and mallory of globex-sso as the subject", en)
		}
	}
	want := map[tenantseal.EventKind]int{tenantseal.EventAuthExpired: 2, tenantseal.EventAuthRefused: 4,
		tenantseal.EventUnknownTenant: 1, tenantseal.EventIssuerMismatch: 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("got %d %s events, want %d (all: %v)", got[k], k, n, got)
		}
	}
}

// The identity provider rotates its signing key in the middle of the test: tokens under the new key
// are accepted as soon as the service may fetch keys again, and the old ones still verify meanwhile.
func TestKeyRotationMidTest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.userToken("alice", "org_acme", nil)
	e.mustDo(t, 200, "GET", "/v1/customers", old, nil)
	if _, err := e.customers.Rotate(); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(authn.DefaultMinRefetchInterval)
	fresh := e.userToken("alice", "org_acme", nil)
	e.mustDo(t, 200, "GET", "/v1/customers", fresh, nil)
	e.mustDo(t, 200, "GET", "/v1/customers", old, nil)
	if n := e.customers.JWKSFetches(); n != 2 {
		t.Errorf("got %d JWKS fetches, want 2: at start and once for the new kid", n)
	}
}
