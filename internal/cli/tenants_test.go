package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestTenants(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)

	acme := mustTenant(t, d.OwnerDSN, "acme")
	globex := mustTenant(t, d.OwnerDSN, "Globex Corporation")
	if acme == globex {
		t.Fatalf("got the same id %s twice", acme)
	}
	// create refuses control characters; a row written by other means is listed quoted.
	var tabbed tenantseal.TenantID
	if err := mustConn(t, d.OwnerDSN).QueryRow(testContext(t), "INSERT INTO tenantseal.tenants (name) VALUES ($1) RETURNING id", "tab\there").Scan(&tabbed); err != nil {
		t.Fatal(err)
	}

	r := mustRun(t, "tenants", "list", "--secrets", secrets)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want a header and 3 tenants:\n%s", len(lines), r.stdout)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "ID NAME STATUS KEYSETS REGION RETENTION CREATED_AT" {
		t.Errorf("got header %q, want ID NAME STATUS KEYSETS REGION RETENTION CREATED_AT", lines[0])
	}
	for i, want := range []struct{ id, name string }{{acme.String(), "acme"}, {globex.String(), "Globex Corporation"}, {tabbed.String(), `"tab\there"`}} {
		l := lines[i+1]
		if !strings.HasPrefix(l, want.id+" ") || !strings.Contains(l, " "+want.name+" ") || !strings.Contains(l, " active ") || !strings.Contains(l, " none ") {
			t.Errorf("got line %q, want id %s, name %q, status active", l, want.id, want.name)
		}
	}
}

func TestTenantsCreateRefusesBadNames(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	kek := newLocalKEK(t)
	for _, tc := range []struct{ name, why string }{
		{strings.Repeat("x", 201), "201 bytes"},
		{"bad\xffutf-8", "not valid UTF-8"},
		{"new\nline", "holds a control character"},
	} {
		for _, keys := range []string{"--no-keys", "--kek=" + kek} {
			r := run(t, "tenants", "create", "--dsn", d.OwnerDSN, "--name", tc.name, keys)
			wantFailure(t, r, 2, "tenants create: --name: "+tc.why+": want 1 to 200 bytes of UTF-8 without control characters")
		}
	}
	if r := mustRun(t, "tenants", "list", "--dsn", d.OwnerDSN); strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("after the refusals: got\n%s\nwant the header only", r.stdout)
	}
}

func TestTenantsStatus(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	acme := mustTenant(t, d.OwnerDSN, "acme").String()
	other := mustTenant(t, d.OwnerDSN, "other").String()
	missing := "00000000-0000-4000-8000-000000000001"
	status := func(id string) string {
		t.Helper()
		for _, l := range strings.Split(mustRun(t, "tenants", "list", "--secrets", secrets).stdout, "\n") {
			if f := strings.Fields(l); len(f) == 7 && f[0] == id {
				return f[2]
			}
		}
		t.Fatalf("tenant %s is not listed", id)
		return ""
	}

	steps := []struct {
		args []string
		code int
		want string // on stdout for exit 0, else on stderr
		then string // acme's status afterwards
	}{
		{[]string{"suspend", acme}, 0, "tenant " + acme + " is suspended", "suspended"},
		{[]string{"suspend", acme}, 0, "is suspended", "suspended"},
		{[]string{"resume", acme}, 0, "tenant " + acme + " is active", "active"},
		{[]string{"suspend", missing}, 1, "tenants suspend: no tenant " + missing, "active"},
		{[]string{"delete", acme}, 2, "--confirm with the tenant id again is required", "active"},
		{[]string{"delete", acme, "--confirm", other}, 2, "nothing was deleted", "active"},
		{[]string{"delete", acme, "--confirm", acme}, 0, "tenant " + acme + " is deleted", "deleted"},
		{[]string{"delete", acme, "--confirm", acme}, 0, "is deleted", "deleted"},
		{[]string{"resume", acme}, 1, "tenants resume: tenant " + acme + " is deleted, which is final", "deleted"},
		{[]string{"suspend", acme}, 1, "tenants suspend: tenant " + acme + " is deleted, which is final", "deleted"},
	}
	for _, st := range steps {
		tenantsStep(t, secrets, st.args, st.code, st.want)
		if got := status(acme); got != st.then {
			t.Errorf("after tenants %s: got status %s, want %s", strings.Join(st.args, " "), got, st.then)
		}
	}
	if got := status(other); got != "active" {
		t.Errorf("the other tenant: got status %s, want active", got)
	}
}

func TestTenantsBind(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	acme := mustTenant(t, d.OwnerDSN, "acme").String()
	globex := mustTenant(t, d.OwnerDSN, "globex").String()
	const idp, sso = "https://idp.example.com/", "https://sso.globex.example/"
	steps := []struct {
		args []string
		code int
		want string // on stdout for exit 0, else on stderr
	}{
		{[]string{"bind", acme, "--issuer", idp, "--claim", "org_acme"}, 0, "tenant " + acme + " is bound to issuer " + idp + " by claim value org_acme"},
		{[]string{"bind", acme, "--issuer", idp, "--claim", "org_acme"}, 0, "is bound"},
		{[]string{"bind", globex, "--issuer", idp, "--claim", "org_acme"}, 1, "the issuer names another tenant by that claim value: issuer " + idp + " names tenant " + acme},
		{[]string{"bind", globex, "--issuer", sso, "--claim", "org_acme"}, 0, "is bound"},
		{[]string{"bind", globex, "--issuer", idp}, 2, "--issuer URL and --claim VALUE are required"},
		{[]string{"bind", globex, "--issuer", idp, "--claim", "a\tb"}, 2, "tenants bind: the claim value holds a control character"},
		{[]string{"bind", "--issuer", idp, "--claim", "x"}, 2, "needs exactly one tenant id"},
		{[]string{"bind", "00000000-0000-4000-8000-000000000001", "--issuer", idp, "--claim", "x"}, 1, "no tenant 00000000-0000-4000-8000-000000000001"},
		{[]string{"unbind", "--issuer", sso, "--claim", "org_acme"}, 0, "issuer " + sso + " names no tenant by claim value org_acme"},
		{[]string{"unbind", "--issuer", sso, "--claim", "org_acme"}, 1, "no such binding"},
		{[]string{"unbind", acme, "--issuer", sso, "--claim", "org_acme"}, 2, "unexpected argument"},
		{[]string{"list", "--issuer", sso}, 2, "--issuer goes with bind, unbind only"},
	}
	for _, st := range steps {
		tenantsStep(t, secrets, st.args, st.code, st.want)
	}
	// One refused lookup as the app role shows in the count.
	mustExec(t, d.AppDSN, "SELECT tenantseal.tenant_binding($1, 'org_nobody')", idp)
	r := mustRun(t, "tenants", "bindings", "--secrets", secrets)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "TENANT STATUS ISSUER CLAIM CREATED_AT" ||
		!strings.HasPrefix(lines[1], acme+"  active  "+idp+"  org_acme  ") || lines[2] != "1 lookups found no active tenant bound" {
		t.Errorf("bindings: got\n%s\nwant a header, acme's binding and one refused lookup", r.stdout)
	}
	var doc struct {
		Schema   string
		Refused  int64 `json:"refused_lookups"`
		Bindings []struct{ Tenant, Status, Issuer, Claim string }
	}
	r = mustRun(t, "tenants", "bindings", globex, "--format", "json", "--secrets", secrets)
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Schema != "tenantseal/tenant-bindings/v1" || doc.Refused != 1 || len(doc.Bindings) != 0 {
		t.Errorf("globex's bindings as JSON: got %+v (%v) from %s, want none", doc, err, r.stdout)
	}
	// Bindings are the owner's: the app role is refused.
	wantFailure(t, run(t, "tenants", "bindings", "--dsn", d.AppDSN), 1)
}

// tenantsStep runs `tenants args...` with the secrets file and requires exit code: 0 with want on
// stdout, or a failure with want on stderr.
func tenantsStep(t *testing.T, secrets string, args []string, code int, want string) {
	t.Helper()
	r := run(t, append(append([]string{"tenants"}, args...), "--secrets", secrets)...)
	if code != 0 {
		wantFailure(t, r, code, want)
		return
	}
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("tenants %s: got %v, want exit 0 and %q", strings.Join(args, " "), r, want)
	}
}
