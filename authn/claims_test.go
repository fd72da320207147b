package authn_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/authn"
)

func TestParseClaims(t *testing.T) {
	t.Parallel()
	const std = `"iss":"https://idp.example/","sub":"u1","aud":"api","iat":1700000000,"exp":1700000300.5`
	keycloak := authn.ClaimMapping{Tenant: authn.ClaimPath{"organization"}, Roles: authn.ClaimPath{"realm_access", "roles"}}
	auth0 := authn.ClaimMapping{Tenant: authn.ClaimPath{"org_id"}, Roles: authn.ClaimPath{"https://example.com/roles"}}
	base := authn.Claims{Issuer: "https://idp.example/", Subject: "u1", Audience: []string{"api"},
		IssuedAt: time.Unix(1700000000, 0).UTC(), Expiry: time.Unix(1700000300, 5e8).UTC()}
	with := func(edit func(*authn.Claims)) *authn.Claims { c := base; edit(&c); return &c }
	tests := []struct {
		name    string
		payload string
		m       authn.ClaimMapping
		want    *authn.Claims
		wantErr error
		reason  string
	}{
		{"standard claims only", `{` + std + `}`, authn.ClaimMapping{}, &base, nil, ""},
		{"Auth0 organization and namespaced roles", `{` + std + `,"org_id":"org_1","https://example.com/roles":["a","b"]}`, auth0,
			with(func(c *authn.Claims) { c.Tenant, c.Roles = "org_1", []string{"a", "b"} }), nil, ""},
		{"Keycloak organization as a list", `{` + std + `,"organization":["acme"],"realm_access":{"roles":["support"]}}`, keycloak,
			with(func(c *authn.Claims) { c.Tenant, c.Roles = "acme", []string{"support"} }), nil, ""},
		{"Keycloak organization as an object", `{` + std + `,"organization":{"acme":{"id":"42"}}}`, keycloak,
			with(func(c *authn.Claims) { c.Tenant = "acme" }), nil, ""},
		{"roles as a space-separated string", `{` + std + `,"org_id":"o","https://example.com/roles":"a  b"}`, auth0,
			with(func(c *authn.Claims) { c.Tenant, c.Roles = "o", []string{"a", "b"} }), nil, ""},
		{"step-up facts", `{` + std + `,"jti":"t1","amr":["pwd","otp"],"acr":"gold","auth_time":1699999990,"nbf":1700000001,"aud":["api","x"]}`,
			authn.ClaimMapping{}, with(func(c *authn.Claims) {
				c.TokenID, c.AMR, c.ACR = "t1", []string{"pwd", "otp"}, "gold"
				c.AuthTime, c.NotBefore, c.Audience = time.Unix(1699999990, 0).UTC(), time.Unix(1700000001, 0).UTC(), []string{"api", "x"}
			}), nil, ""},
		{"a missing tenant claim is left to the caller", `{` + std + `}`, auth0, &base, nil, ""},

		{"not an object", `[1]`, auth0, nil, authn.ErrInvalidToken, "not a JSON object"},
		{"two values", `{` + std + `} {}`, auth0, nil, authn.ErrInvalidToken, "more than one JSON value"},
		{"trailing brace", `{` + std + `}}`, auth0, nil, authn.ErrInvalidToken, "more than one JSON value"},
		{"no sub", `{"iss":"i","aud":"a","iat":1,"exp":2}`, auth0, nil, authn.ErrInvalidToken, "claim sub is missing"},
		{"numeric sub", `{"iss":"i","sub":7,"aud":"a","iat":1,"exp":2}`, auth0, nil, authn.ErrInvalidToken, "claim sub is not a string"},
		{"no exp", `{"iss":"i","sub":"s","aud":"a","iat":1}`, auth0, nil, authn.ErrInvalidToken, "claim exp is missing"},
		{"exp as a string", `{"iss":"i","sub":"s","aud":"a","iat":1,"exp":"2"}`, auth0, nil, authn.ErrInvalidToken, "claim exp is not a number"},
		{"negative iat", `{"iss":"i","sub":"s","aud":"a","iat":-1,"exp":2}`, auth0, nil, authn.ErrInvalidToken, "claim iat is not a date"},
		{"exp after 9999", `{"iss":"i","sub":"s","aud":"a","iat":1,"exp":1e300}`, auth0, nil, authn.ErrInvalidToken, "claim exp is not a date"},
		{"empty aud", `{"iss":"i","sub":"s","aud":[],"iat":1,"exp":2}`, auth0, nil, authn.ErrInvalidToken, "claim aud is empty"},
		{"aud of numbers", `{"iss":"i","sub":"s","aud":[1],"iat":1,"exp":2}`, auth0, nil, authn.ErrInvalidToken, "claim aud is not an array of strings"},
		{"amr as a string", `{` + std + `,"amr":"mfa"}`, auth0, nil, authn.ErrInvalidToken, "claim amr is not an array of strings"},
		{"control character in sub", `{"iss":"i","sub":"a\u0000b","aud":"a","iat":1,"exp":2}`, auth0, nil, authn.ErrInvalidToken, "claim sub holds a control character"},
		{"long sub", `{"iss":"i","sub":"` + strings.Repeat("x", 300) + `","aud":"a","iat":1,"exp":2}`, auth0, nil, authn.ErrInvalidToken, "longer than 256 bytes"},
		{"nonce: an ID token", `{` + std + `,"nonce":"n"}`, auth0, nil, authn.ErrInvalidToken, "an ID token (claim nonce)"},
		{"at_hash: an ID token", `{` + std + `,"at_hash":"h"}`, auth0, nil, authn.ErrInvalidToken, "an ID token (claim at_hash)"},
		{"Keycloak typ ID", `{` + std + `,"typ":"ID"}`, keycloak, nil, authn.ErrInvalidToken, "typ ID"},
		{"two organizations", `{` + std + `,"organization":["a","b"]}`, keycloak, nil, authn.ErrUnknownTenant, "names 2 tenants"},
		{"no organization", `{` + std + `,"organization":[]}`, keycloak, nil, authn.ErrUnknownTenant, "names 0 tenants"},
		{"numeric tenant", `{` + std + `,"org_id":12}`, auth0, nil, authn.ErrUnknownTenant, "not a string, array or object"},
		{"empty tenant", `{` + std + `,"org_id":""}`, auth0, nil, authn.ErrUnknownTenant, "is empty"},
		{"tenant list with a number", `{` + std + `,"org_id":[1]}`, auth0, nil, authn.ErrUnknownTenant, "holds a non-string"},
		{"roles object", `{` + std + `,"org_id":"o","https://example.com/roles":{"a":1}}`, auth0, nil, authn.ErrInvalidToken, "is not an array of strings"},
		{"roles path through a string", `{` + std + `,"organization":"o","realm_access":"x"}`, keycloak,
			with(func(c *authn.Claims) { c.Tenant = "o" }), nil, ""},
		{"too many roles", `{` + std + `,"org_id":"o","https://example.com/roles":"` + strings.Repeat("r ", authn.MaxRoles+1) + `"}`, auth0,
			nil, authn.ErrInvalidToken, "more than 100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := authn.ParseClaims([]byte(tc.payload), tc.m)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("got %v, want %v with %q", err, tc.wantErr, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpEmptyAsNil); diff != "" {
				t.Errorf("claims differ (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseClaims feeds arbitrary payloads through the claim mapping. It must never panic, and what it
// accepts must keep every bound: one tenant of valid text, at most MaxRoles roles of valid text, the
// required claims present.
func FuzzParseClaims(f *testing.F) {
	for _, s := range []string{
		`{"iss":"i","sub":"s","aud":"a","iat":1,"exp":2,"org":"o","roles":["a"]}`,
		`{"iss":"i","sub":"s","aud":["a","b"],"iat":1.5,"exp":2e3,"org":["o"],"r":{"roles":"a b"}}`,
		`{"iss":"i","sub":"s","aud":"a","iat":1,"exp":2,"org":{"acme":{"id":1}},"amr":["mfa"],"auth_time":1}`,
		`{"iss":"i","sub":"s","aud":"a","iat":1,"exp":2,"nonce":"x"}`,
		`{"org":[[]]}`, `null`, `{}`, `{"exp":1e999}`,
	} {
		f.Add([]byte(s), "org", "roles")
	}
	f.Fuzz(func(t *testing.T, payload []byte, tenant, roles string) {
		m := authn.ClaimMapping{Tenant: authn.ClaimPath{tenant}, Roles: strings.Split(roles, "/")}
		c, err := authn.ParseClaims(payload, m)
		if err != nil {
			if !errors.Is(err, authn.ErrInvalidToken) && !errors.Is(err, authn.ErrUnknownTenant) {
				t.Fatalf("error %v is neither ErrInvalidToken nor ErrUnknownTenant", err)
			}
			return
		}
		if c.Issuer == "" || c.Subject == "" || len(c.Audience) == 0 {
			t.Fatalf("accepted claims without iss, sub or aud: %+v", c)
		}
		for _, s := range append([]string{c.Tenant, c.TokenID, c.ACR, c.Subject}, append(c.Roles, c.AMR...)...) {
			if len(s) > authn.MaxClaimLen || !utf8.ValidString(s) {
				t.Fatalf("accepted a value out of bounds: %q", s)
			}
		}
		if len(c.Roles) > authn.MaxRoles {
			t.Fatalf("accepted %d roles", len(c.Roles))
		}
		for _, r := range c.Roles {
			if r == "" || len(r) > authn.MaxRoleLen {
				t.Fatalf("accepted role %q", r)
			}
		}
	})
}
