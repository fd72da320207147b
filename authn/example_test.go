package authn_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/authn/authntest"
)

func ExampleParseClaims() {
	payload := []byte(`{"iss":"https://sso.example.com/realms/customers","sub":"f3c1","aud":"invoicing",
		"iat":1700000000,"exp":1700000300,"organization":{"acme":{"id":"7d1e"}},
		"realm_access":{"roles":["clerk","approver"]}}`)
	c, err := authn.ParseClaims(payload, authn.ClaimMapping{
		Tenant: authn.ClaimPath{"organization"},
		Roles:  authn.ClaimPath{"realm_access", "roles"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Tenant, c.Roles)
	// Output: acme [clerk approver]
}

func ExampleNewStaticRegistry() {
	acme := tenantseal.TenantIDFromUUID([16]byte{1})
	reg, err := authn.NewStaticRegistry(authn.Binding{Tenant: acme, Claim: "org_acme", Issuers: []string{"https://acme.eu.auth0.com/"}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	id, err := reg.Tenant(ctx, "https://acme.eu.auth0.com/", "org_acme")
	fmt.Println(id == acme, err)
	_, err = reg.Tenant(ctx, "https://login.example.net/", "org_acme")
	fmt.Println(errors.Is(err, authn.ErrIssuerMismatch))
	// Output:
	// true <nil>
	// true
}

// discard records nothing; give a real service its audit.Writer.
type discard struct{}

func (discard) Record(context.Context, tenantseal.Event) {}

func ExampleAuthenticator_Middleware() {
	ctx := context.Background()
	idp, err := authntest.NewServer("127.0.0.1:0", authntest.Options{Issuers: []string{"customers"}})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	iss := idp.Issuer("customers")

	acme := tenantseal.TenantIDFromUUID([16]byte{0xac})
	reg, _ := authn.NewStaticRegistry(authn.Binding{Tenant: acme, Claim: "org_acme", Issuers: []string{iss.URL()}})
	a, err := authn.New(ctx, authn.Config{
		Issuers: []authn.Issuer{{URL: iss.URL(), Audiences: []string{"invoicing"}, TypedTokens: true,
			Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"org_id"}}}},
		Registry: reg,
		Recorder: discard{},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /v1/whoami", a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, _ := tenantseal.TenantFrom(r.Context())
		fmt.Fprint(w, tenant == acme)
	})))
	get := func(token string) {
		req := httptest.NewRequest("GET", "/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Body.String()[:min(rec.Body.Len(), 4)])
	}
	get(iss.Token("alice", "invoicing", map[string]any{"org_id": "org_acme"}))
	get(iss.Token("alice", "billing", map[string]any{"org_id": "org_acme"}))
	// Output:
	// 200 true
	// 401 {"er
}

func ExampleSealer() {
	key, err := authn.GenerateEnvelopeKey("jobs-1")
	if err != nil {
		log.Fatal(err)
	}
	sealer, err := authn.NewSealer(authn.SealerConfig{Key: key, Recorder: discard{}})
	if err != nil {
		log.Fatal(err)
	}
	acme := tenantseal.TenantIDFromUUID([16]byte{0xac})
	request := tenantseal.WithPrincipal(context.Background(), tenantseal.Principal{Tenant: acme, Subject: "alice"})
	job := []byte(`{"invoice":"42"}`)
	envelope, err := sealer.Seal(request, job) // enqueue job and envelope together
	if err != nil {
		log.Fatal(err)
	}

	// In the worker, with a context of its own:
	ctx, err := sealer.Open(context.Background(), envelope, job)
	if err != nil {
		log.Fatal(err)
	}
	tenant, _ := tenantseal.TenantFrom(ctx)
	fmt.Println(tenant == acme)
	_, err = sealer.Open(context.Background(), envelope, []byte(`{"invoice":"43"}`))
	fmt.Println(err)
	// Output:
	// true
	// authn: job envelope refused: sealed for another job
}
