package authn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/authn/authntest"
)

func TestAuthenticatePrincipal(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	now := w.clock.Now()
	tests := []struct {
		name  string
		token string
		want  tenantseal.Principal
	}{
		{"tenant user of the customers issuer", w.customers.Sign(map[string]any{
			"iss": w.customers.URL(), "sub": "alice", "aud": []string{apiAud, "other"}, "iat": now.Unix(),
			"exp": now.Add(time.Hour).Unix(), "jti": "j1", "org_id": "org_a", "amr": []string{"pwd"}, "acr": "silver",
			"auth_time": now.Add(-time.Minute).Unix(), "https://example.com/roles": []string{"clerk", "approver"}}),
			tenantseal.Principal{Tenant: tenantA, Subject: w.customers.URL() + "#alice", Roles: []string{"clerk", "approver"},
				Auth: tenantseal.Authentication{Issuer: w.customers.URL(), Audience: apiAud, TokenID: "j1",
					Expires: now.Add(time.Hour).UTC(), AuthTime: now.Add(-time.Minute).UTC(), AMR: []string{"pwd"}, ACR: "silver"}}},
		{"the same tenant through its own issuer, roles as one string, typ JWT", w.partner.SignWith(map[string]any{
			"iss": w.partner.URL(), "sub": "bob", "aud": apiAud, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
			"tid": "tid-b", "roles": "reader writer"}, authntest.SignOptions{Type: "JWT"}),
			tenantseal.Principal{Tenant: tenantB, Subject: w.partner.URL() + "#bob", Roles: []string{"reader", "writer"},
				Auth: tenantseal.Authentication{Issuer: w.partner.URL(), Audience: apiAud, Expires: now.Add(time.Minute).UTC(), AMR: []string{}}}},
		{"staff: no tenant", w.staffToken(map[string]any{"jti": "s1"}),
			tenantseal.Principal{Subject: w.staff.URL() + "#sam", Roles: []string{"support"},
				Auth: tenantseal.Authentication{Issuer: w.staff.URL(), Audience: staffAud, TokenID: "s1",
					Expires: now.Add(authntest.DefaultLifetime).UTC(), AuthTime: now.UTC(), AMR: []string{"pwd", "mfa"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, err := w.auth.Authenticate(testContext(t), tc.token)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := tenantseal.PrincipalFrom(ctx)
			if diff := cmp.Diff(tc.want, got, cmpEmptyAsNil); diff != "" {
				t.Errorf("Principal differs (-want +got):\n%s", diff)
			}
		})
	}
	if got := w.events.take(); len(got) != 0 {
		t.Errorf("got events %v, want none", kinds(got))
	}
}

var cmpEmptyAsNil = cmp.Transformer("emptyAsNil", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})

func TestAuthenticateRefusals(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	now := w.clock.Now()
	user := func(edit func(c map[string]any)) map[string]any {
		c := w.customers.Claims("alice", apiAud)
		c["org_id"] = "org_a"
		edit(c)
		return c
	}
	sign := func(edit func(c map[string]any)) string { return w.customers.Sign(user(edit)) }
	forgedKey, forgedKid, err := authntest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The public key as an HMAC secret: the classic RS256/HS256 confusion.
	pub := w.customers.JWKS().Keys[0]
	der, err := x509.MarshalPKIXPublicKey(pub.Key)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	noneToken := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." +
		strings.Split(sign(func(map[string]any) {}), ".")[1] + "."
	valid := sign(func(map[string]any) {})
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(
		mustDecode(t, parts[1]), `"org_a"`, `"org_b"`, 1))) + "." + parts[2]
	idToken := w.customers.SignWith(user(func(c map[string]any) { c["nonce"] = "n" }), authntest.SignOptions{Type: "JWT"})

	tests := []struct {
		name    string
		token   string
		want    error
		kind    tenantseal.EventKind
		reason  string
		subject bool // the refusal names the token's subject: signature verified, claims parsed
		target  tenantseal.TenantID
	}{
		{"expired", sign(func(c map[string]any) {
			c["exp"] = now.Add(-time.Minute).Unix()
			c["iat"] = now.Add(-2 * time.Minute).Unix()
		}),
			authn.ErrExpired, tenantseal.EventAuthExpired, "expired at", true, tenantseal.TenantID{}},
		{"not valid yet", sign(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() }),
			authn.ErrExpired, tenantseal.EventAuthExpired, "not valid before", true, tenantseal.TenantID{}},
		{"issued in the future", sign(func(c map[string]any) {
			c["iat"] = now.Add(2 * time.Minute).Unix()
			c["exp"] = now.Add(3 * time.Minute).Unix()
		}), authn.ErrExpired, tenantseal.EventAuthExpired, "issued in the future", true, tenantseal.TenantID{}},
		{"longer-lived than an hour", sign(func(c map[string]any) { c["exp"] = now.Add(61 * time.Minute).Unix() }),
			authn.ErrExpired, tenantseal.EventAuthExpired, "longer than the 1h0m0s allowed", true, tenantseal.TenantID{}},
		{"wrong audience", sign(func(c map[string]any) { c["aud"] = "billing" }),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "audience not accepted", true, tenantseal.TenantID{}},
		{"tenant and staff audience at once", w.partner.Token("bob", apiAud, map[string]any{"aud": []string{"partner-support", apiAud}, "tid": "tid-b"}),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "names both a tenant and a staff API", true, tenantseal.TenantID{}},
		{"untrusted issuer", sign(func(c map[string]any) { c["iss"] = "https://evil.example/" }),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "issuer not trusted", false, tenantseal.TenantID{}},
		{"issuer with a trailing slash", sign(func(c map[string]any) { c["iss"] = w.customers.URL() + "/" }),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "issuer not trusted", false, tenantseal.TenantID{}},
		{"forged: unknown key", w.customers.SignWith(user(func(map[string]any) {}), authntest.SignOptions{Key: forgedKey, KeyID: forgedKid}),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "unknown key", false, tenantseal.TenantID{}},
		{"forged: another key under a known kid", w.customers.SignWith(user(func(map[string]any) {}), authntest.SignOptions{Key: forgedKey, KeyID: pub.KeyID}),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "signature does not verify", false, tenantseal.TenantID{}},
		{"tampered payload", tampered, authn.ErrInvalidToken, tenantseal.EventAuthRefused, "signature does not verify", false, tenantseal.TenantID{}},
		{"alg none", noneToken, authn.ErrInvalidToken, tenantseal.EventAuthRefused, "allowed algorithm", false, tenantseal.TenantID{}},
		{"HS256 with the public key as secret", w.customers.SignWith(user(func(map[string]any) {}),
			authntest.SignOptions{Key: pubPEM, Algorithm: jose.HS256, KeyID: pub.KeyID}),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "allowed algorithm", false, tenantseal.TenantID{}},
		{"ES256 under the kid of an RS256 key", w.customers.SignWith(user(func(map[string]any) {}),
			authntest.SignOptions{Key: ecKey, Algorithm: jose.ES256, KeyID: pub.KeyID}),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "signed with ES256 by a key for RS256", false, tenantseal.TenantID{}},
		{"no kid", w.customers.SignWith(user(func(map[string]any) {}), authntest.SignOptions{KeyID: "-"}),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "no kid", false, tenantseal.TenantID{}},
		{"typ JWT from an issuer that types its access tokens", w.customers.SignWith(user(func(map[string]any) {}), authntest.SignOptions{Type: "JWT"}),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "typ is not at+jwt", false, tenantseal.TenantID{}},
		{"an ID token", idToken, authn.ErrInvalidToken, tenantseal.EventAuthRefused, "typ is not at+jwt", false, tenantseal.TenantID{}},
		{"an ID token of an issuer that does not type tokens", w.partner.SignWith(map[string]any{"iss": w.partner.URL(), "sub": "bob",
			"aud": apiAud, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "tid": "tid-b", "nonce": "n"}, authntest.SignOptions{Type: "JWT"}),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "an ID token (claim nonce)", false, tenantseal.TenantID{}},
		{"a logout token", w.partner.SignWith(map[string]any{"iss": w.partner.URL(), "sub": "bob", "aud": apiAud}, authntest.SignOptions{Type: "logout+jwt"}),
			authn.ErrInvalidToken, tenantseal.EventAuthRefused, "typ is neither JWT nor at+jwt", false, tenantseal.TenantID{}},
		{"no tenant claim", sign(func(c map[string]any) { delete(c, "org_id") }),
			authn.ErrUnknownTenant, tenantseal.EventUnknownTenant, `no tenant claim ["org_id"]`, true, tenantseal.TenantID{}},
		{"two tenants", sign(func(c map[string]any) { c["org_id"] = []string{"org_a", "org_b"} }),
			authn.ErrUnknownTenant, tenantseal.EventUnknownTenant, "names 2 tenants", false, tenantseal.TenantID{}},
		{"unregistered tenant", sign(func(c map[string]any) { c["org_id"] = "org_zzz" }),
			authn.ErrUnknownTenant, tenantseal.EventUnknownTenant, "not registered", true, tenantseal.TenantID{}},
		{"issuer X naming a tenant of issuer Y", w.partner.Token("mallory", apiAud, map[string]any{"tid": "org_a"}),
			authn.ErrIssuerMismatch, tenantseal.EventIssuerMismatch, "bound to other issuers", true, tenantA},
		{"not a JWS", "abc.def", authn.ErrInvalidToken, tenantseal.EventAuthRefused, "compact JWS", false, tenantseal.TenantID{}},
		{"too long", strings.Repeat("a", authn.MaxTokenLen+1), authn.ErrInvalidToken, tenantseal.EventAuthRefused, "longer than", false, tenantseal.TenantID{}},
		{"no token", "", authn.ErrNoToken, tenantseal.EventAuthRefused, "no bearer token", false, tenantseal.TenantID{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := authn.WithSource(testContext(t), "198.51.100.1")
			got, err := w.auth.Authenticate(ctx, tc.token)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want %v with %q", err, tc.want, tc.reason)
			}
			if p, ok := tenantseal.PrincipalFrom(got); ok {
				t.Errorf("the refused context carries a Principal %+v", p)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error %q quotes the token", err)
			}
			evs := w.events.take()
			if len(evs) != 1 {
				t.Fatalf("got events %v, want one %s", kinds(evs), tc.kind)
			}
			ev := evs[0]
			wantSubject := ""
			if tc.subject {
				wantSubject = "#" // issuer + "#" + sub
			}
			if ev.Kind != tc.kind || !strings.Contains(ev.Detail, "source 198.51.100.1") || ev.TargetTenant != tc.target ||
				(wantSubject == "") != (ev.Subject == "") {
				t.Errorf("got event %+v, want kind %s, source, target %v, subject named %v", ev, tc.kind, tc.target, tc.subject)
			}
		})
	}
}

func mustDecode(t testing.TB, s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigRefused(t *testing.T) {
	t.Parallel()
	rec := &events{}
	reg, _ := authn.NewStaticRegistry()
	ok := authn.Issuer{URL: "https://idp.example/", Audiences: []string{"api"}, Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"org"}}}
	tests := []struct {
		name string
		edit func(*authn.Config)
		want string
	}{
		{"no issuers", func(c *authn.Config) { c.Issuers = nil }, "Issuers is empty"},
		{"no recorder", func(c *authn.Config) { c.Recorder = nil }, "Recorder is required"},
		{"http issuer", func(c *authn.Config) { c.Issuers[0].URL = "http://idp.example/" }, "want https"},
		{"issuer with a fragment", func(c *authn.Config) { c.Issuers[0].URL = "https://idp.example/#x" }, "without user, query or fragment"},
		{"HS256", func(c *authn.Config) { c.Issuers[0].Algorithms = []string{"HS256"} }, `algorithm "HS256" not allowed`},
		{"none", func(c *authn.Config) { c.Issuers[0].Algorithms = []string{"none"} }, `algorithm "none" not allowed`},
		{"no audience", func(c *authn.Config) { c.Issuers[0].Audiences = nil }, "neither Audiences nor StaffAudiences"},
		{"both kinds", func(c *authn.Config) { c.Issuers[0].StaffAudiences = []string{"api"} }, "both a tenant and a staff audience"},
		{"no tenant claim", func(c *authn.Config) { c.Issuers[0].Claims.Tenant = nil }, "no Claims.Tenant"},
		{"no registry", func(c *authn.Config) { c.Registry = nil }, "Config.Registry is nil"},
		{"twice", func(c *authn.Config) { c.Issuers = append(c.Issuers, c.Issuers[0]) }, "configured twice"},
		{"skew", func(c *authn.Config) { c.Skew = time.Hour }, "Config.Skew"},
		{"lifetime", func(c *authn.Config) { c.MaxLifetime = 48 * time.Hour }, "Config.MaxLifetime"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := authn.Config{Issuers: []authn.Issuer{ok}, Registry: reg, Recorder: rec}
			tc.edit(&cfg)
			_, err := authn.New(testContext(t), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "authn: ") {
				t.Errorf("got %v, want an authn error with %q", err, tc.want)
			}
		})
	}
}
