package invoicing_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/tenants"
)

// Support staff read a tenant's data only elevated, with step-up, read-only, every read recorded with
// its reason; without step-up they read nothing.
func TestStaffElevation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.userToken("alice", "org_acme", nil)
	aCust, aInv := e.seed(t, alice, "ada")
	e.seed(t, e.userToken("bob", "org_globex", nil), "bea")
	acme := "/admin/tenants/" + e.acme.String()
	const reason = staffReason

	// Each elevated request spends its token: a fresh step-up login per request.
	var requestIDs []string
	for _, path := range []string{"/v1/customers", "/v1/customers/" + aCust, "/v1/invoices/" + aInv} {
		r := e.mustDo(t, 200, "GET", acme+path, e.staffToken(nil), nil, "X-Elevation-Reason", reason)
		requestIDs = append(requestIDs, r.header.Get("X-Request-ID"))
		if !strings.Contains(string(r.body), "ada@example.com") {
			t.Errorf("GET %s elevated: got %s, want acme's decrypted data", path, r.body)
		}
	}
	if ids := e.mustDo(t, 200, "GET", acme+"/v1/invoices", e.staffToken(nil), nil, "X-Elevation-Reason", reason).ids(t); !cmp.Equal(ids, []string{aInv}) {
		t.Errorf("elevated into acme: got invoices %v, want only acme's %s", ids, aInv)
	}

	// Read-only: a write through the same routes is refused by the database.
	if r := e.do(t, "POST", acme+"/v1/customers", e.staffToken(nil), map[string]any{"display_name": "x", "email": "x@x"},
		"X-Elevation-Reason", reason); r.status != http.StatusForbidden {
		t.Errorf("elevated write: got %d %s, want 403", r.status, r.body)
	}
	if ids := e.mustDo(t, 200, "GET", "/v1/customers", alice, nil).ids(t); !cmp.Equal(ids, []string{aCust}) {
		t.Errorf("acme's customers after the elevated write: got %v, want only %s", ids, aCust)
	}

	staffRefusals := []struct {
		name      string
		token     string
		header    []string
		status    int
		challenge string
	}{
		{"without MFA", e.staffToken(map[string]any{"amr": []string{"pwd"}}), []string{"X-Elevation-Reason", reason}, 401,
			`error="insufficient_user_authentication", error_description="authn: step-up authentication required: no multi-factor authentication in amr or acr", max_age="600"`},
		{"logged in an hour ago", e.staffToken(map[string]any{"auth_time": e.clock.Now().Add(-time.Hour).Unix()}), []string{"X-Elevation-Reason", reason}, 401,
			`error="insufficient_user_authentication"`},
		{"a token used before", replayed(t, e, acme), []string{"X-Elevation-Reason", reason}, 401, `granted an elevation already`},
		{"without a reason", e.staffToken(nil), nil, 400, ""},
		{"a tenant user with the support role", e.userToken("alice", "org_acme", map[string]any{"roles": []string{"support"}}),
			[]string{"X-Elevation-Reason", reason}, 403, `error="insufficient_scope"`},
	}
	for _, tc := range staffRefusals {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "GET", acme+"/v1/customers", tc.token, nil, tc.header...)
			if r.status != tc.status || !strings.Contains(r.header.Get("WWW-Authenticate"), tc.challenge) {
				t.Errorf("got %d %q, want %d with %q", r.status, r.header.Get("WWW-Authenticate"), tc.status, tc.challenge)
			}
			if strings.Contains(string(r.body), "ada") {
				t.Errorf("the refusal %s shows acme's data", r.body)
			}
		})
	}
	if r := e.do(t, "GET", "/v1/customers", e.staffToken(nil), nil); r.status != http.StatusForbidden {
		t.Errorf("a staff token at the tenant API: got %d, want 403", r.status)
	}

	// Every elevated read is in the audit log: for each request, statements recorded with the reason,
	// the staff subject and acme.
	byRequest := map[string]int{}
	for _, en := range e.events(t, tenantseal.EventElevation) {
		if str(en.TenantID) != e.acme.String() || !strings.HasSuffix(str(en.Subject), "/staff#sam") ||
			!strings.Contains(str(en.Detail), `reason "`+reason+`"`) {
			t.Errorf("elevation event of %s by %s, %q: want acme, sam and the reason", str(en.TenantID), str(en.Subject), str(en.Detail))
		}
		byRequest[str(en.RequestID)]++
	}
	for _, id := range requestIDs {
		if byRequest[id] == 0 {
			t.Errorf("request %s: no elevation event, want its reads recorded", id)
		}
	}
	refused := e.events(t, tenantseal.EventStepUpRefused)
	var problems []string
	for _, en := range refused {
		problems = append(problems, str(en.Detail))
	}
	if len(refused) != 3 || !slices.ContainsFunc(problems, func(d string) bool { return strings.Contains(d, "no multi-factor") }) {
		t.Errorf("got step-up refusals %q, want 3: no MFA, old login, replay", problems)
	}
}

const staffReason = "ticket 4711: invoice totals look wrong"

// replayed returns a staff token that has granted an elevation already.
func replayed(t testing.TB, e *env, acme string) string {
	tok := e.staffToken(nil)
	e.mustDo(t, 200, "GET", acme+"/v1/customers", tok, nil, "X-Elevation-Reason", staffReason)
	return tok
}

// A staff token elevates once for the whole service: replayed at a second instance of it, on the same
// database, it is refused there, and the refusal is in the audit log.
func TestStaffTokenElevatesOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := e.second(t)
	e.seed(t, e.userToken("alice", "org_acme", nil), "ada")
	acme := "/admin/tenants/" + e.acme.String() + "/v1/customers"
	tok := e.staffToken(nil)
	e.mustDo(t, 200, "GET", acme, tok, nil, "X-Elevation-Reason", staffReason)
	r := other.do(t, "GET", acme, tok, nil, "X-Elevation-Reason", "ticket 4712")
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), "granted an elevation already") ||
		strings.Contains(string(r.body), "ada") {
		t.Errorf("the token replayed at the second instance: got %d %q %s, want 401 naming the replay", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
	// A fresh login elevates there.
	other.mustDo(t, 200, "GET", acme, e.staffToken(nil), nil, "X-Elevation-Reason", staffReason)
	refused := other.events(t, tenantseal.EventStepUpRefused)
	if len(refused) != 1 || str(refused[0].TargetTenant) != e.acme.String() || !strings.HasSuffix(str(refused[0].Subject), "/staff#sam") ||
		!strings.Contains(str(refused[0].Detail), "granted an elevation already") || !strings.Contains(str(refused[0].Detail), "ticket 4712") {
		t.Errorf("got step-up refusals %+v, want the replay, of sam, aimed at acme, with its reason", refused)
	}
}

// A tenant suspended by the owner is refused at login once the service's registry cache expires
// (its TTL, by the service's clock); a resumed one is accepted again after the negative TTL.
func TestSuspendedTenantRefusedAtLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := func() string { return e.userToken("alice", "org_acme", nil) }
	e.mustDo(t, 200, "GET", "/v1/customers", alice(), nil)
	owner := pgtest.Conn(t, e.d.OwnerDSN)
	if err := tenants.Suspend(e.ctx, owner, e.acme); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(authn.DefaultRegistryTTL)
	r := e.do(t, "GET", "/v1/customers", alice(), nil)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), "the tenant is suspended") {
		t.Errorf("suspended: got %d %q, want 401 saying the tenant is suspended", r.status, r.header.Get("WWW-Authenticate"))
	}
	if ev := e.events(t, tenantseal.EventUnknownTenant); len(ev) != 1 || str(ev[0].TargetTenant) != e.acme.String() {
		t.Errorf("got unknown-tenant events %+v, want one aimed at acme", ev)
	}
	e.mustDo(t, 200, "GET", "/v1/customers", e.userToken("bob", "org_globex", nil), nil) // globex is not
	if err := tenants.Resume(e.ctx, owner, e.acme); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(authn.DefaultRegistryNegativeTTL)
	e.mustDo(t, 200, "GET", "/v1/customers", alice(), nil)
}
