package invoicing_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
)

// seed creates a customer and an invoice of the tenant of token and returns their ids.
func (e *env) seed(t testing.TB, token, name string) (customer, invoice string) {
	t.Helper()
	c := e.mustDo(t, http.StatusCreated, "POST", "/v1/customers", token,
		map[string]any{"display_name": name, "email": name + "@example.com", "phone": "+1 555 0100", "notes": "secret of " + name}).json(t)
	inv := e.mustDo(t, http.StatusCreated, "POST", "/v1/invoices", token,
		map[string]any{"customer_id": c["id"], "amount_minor": 4200, "currency": "EUR", "memo": "memo of " + name}).json(t)
	return c["id"].(string), inv["id"].(string)
}

// Two tenants' users cannot see each other's data through any endpoint, whichever issuer speaks for
// them.
func TestTenantsApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.userToken("alice", "org_acme", nil)
	bob := e.userToken("bob", "org_globex", nil)
	carol := e.globexSSO.Token("carol", apiAud, map[string]any{"tid": "globex"}) // globex's own identity provider
	aCust, aInv := e.seed(t, alice, "ada")
	bCust, bInv := e.seed(t, bob, "bea")

	got := e.mustDo(t, 200, "GET", "/v1/customers/"+aCust, alice, nil).json(t)
	if got["email"] != "ada@example.com" || got["notes"] != "secret of ada" {
		t.Errorf("own customer: got %v, want decrypted email and notes", got)
	}
	for _, tok := range []string{bob, carol} {
		if ids := e.mustDo(t, 200, "GET", "/v1/customers", tok, nil).ids(t); !cmp.Equal(ids, []string{bCust}) {
			t.Errorf("globex's customers: got %v, want only %s", ids, bCust)
		}
		if ids := e.mustDo(t, 200, "GET", "/v1/invoices", tok, nil).ids(t); !cmp.Equal(ids, []string{bInv}) {
			t.Errorf("globex's invoices: got %v, want only %s", ids, bInv)
		}
	}
	// Every way of naming acme's rows from globex finds nothing.
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/customers/" + aCust, nil},
		{"GET", "/v1/customers/search?email=" + url.QueryEscape("ADA@example.com"), nil},
		{"GET", "/v1/invoices/" + aInv, nil},
		{"POST", "/v1/invoices/" + aInv + "/issue", nil},
		{"POST", "/v1/invoices", map[string]any{"customer_id": aCust, "amount_minor": 1, "currency": "EUR"}},
	} {
		for name, tok := range map[string]string{"bob": bob, "carol": carol} {
			if r := e.do(t, tc.method, tc.path, tok, tc.body); r.status != http.StatusNotFound {
				t.Errorf("%s %s %s: got %d %s, want 404", name, tc.method, tc.path, r.status, r.body)
			} else if strings.Contains(string(r.body), "ada") {
				t.Errorf("%s %s %s: the answer %s names acme's data", name, tc.method, tc.path, r.body)
			}
		}
	}
	if ids := e.mustDo(t, 200, "GET", "/v1/invoices", alice, nil).ids(t); !cmp.Equal(ids, []string{aInv}) {
		t.Errorf("acme's invoices after globex's attempts: got %v, want only %s", ids, aInv)
	}
}

// A tenant named by the client that differs from the token's is refused and recorded.
func TestClientTenantRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.userToken("alice", "org_acme", nil)
	e.seed(t, alice, "ada")
	globex := e.globex.String()
	for _, tc := range []struct {
		name, method, path string
		body               any
		header             []string
	}{
		{"?tenant=", "GET", "/v1/customers?tenant=" + globex, nil, nil},
		{"?tenant_id= by the IdP's name", "GET", "/v1/invoices?tenant_id=org_globex", nil, nil},
		{"X-Tenant-ID header", "GET", "/v1/customers", nil, []string{"X-Tenant-ID", globex}},
		{"body field", "POST", "/v1/customers", map[string]any{"tenant_id": globex, "display_name": "x", "email": "x@x"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, alice, tc.body, tc.header...)
			if r.status != http.StatusForbidden || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Fatalf("got %d %s (%q), want 403 insufficient_scope", r.status, r.body, r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if ids := e.mustDo(t, 200, "GET", "/v1/customers", alice, nil).ids(t); len(ids) != 1 {
		t.Errorf("got %d customers, want the 1 seeded: the refused POST wrote nothing", len(ids))
	}
	mismatches := e.events(t, tenantseal.EventTenantMismatch)
	if len(mismatches) != 4 {
		t.Fatalf("got %d tenant_mismatch events, want 4", len(mismatches))
	}
	for _, en := range mismatches {
		if str(en.TenantID) != e.acme.String() || !strings.HasSuffix(str(en.Subject), "#alice") {
			t.Errorf("event %+v: want acme's alice as the actor", en)
		}
	}
	var targeted []string
	for _, en := range mismatches {
		targeted = append(targeted, str(en.TargetTenant))
	}
	// Every one names globex: by its id, or by the name the identity provider gives it, which the
	// registry resolves.
	if n := len(slices.DeleteFunc(targeted, func(s string) bool { return s != globex })); n != 4 {
		t.Errorf("got %d events naming globex as the target, want 4 (by id, and by the IdP's name through the registry)", n)
	}
}
