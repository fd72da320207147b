package cli_test

import (
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestTenants(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)

	acme := mustTenant(t, d.OwnerDSN, "acme")
	globex := mustTenant(t, d.OwnerDSN, "Globex Corporation")
	tabbed := mustTenant(t, d.OwnerDSN, "tab\there")
	if acme == globex {
		t.Fatalf("got the same id %s twice", acme)
	}

	r := mustRun(t, "tenants", "list", "--secrets", secrets)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want a header and 3 tenants:\n%s", len(lines), r.stdout)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "ID NAME STATUS CREATED_AT" {
		t.Errorf("got header %q, want ID NAME STATUS CREATED_AT", lines[0])
	}
	for i, want := range []struct{ id, name string }{{acme.String(), "acme"}, {globex.String(), "Globex Corporation"}, {tabbed.String(), `"tab\there"`}} {
		l := lines[i+1]
		if !strings.HasPrefix(l, want.id+" ") || !strings.Contains(l, " "+want.name+" ") || !strings.Contains(l, " active ") {
			t.Errorf("got line %q, want id %s, name %q, status active", l, want.id, want.name)
		}
	}
}

func TestTenantsCreateRejectsLongName(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	kek := newLocalKEK(t)
	for _, keys := range []string{"--no-keys", "--kek=" + kek} {
		r := run(t, "tenants", "create", "--dsn", d.OwnerDSN, "--name", strings.Repeat("x", 201), keys)
		wantFailure(t, r, 1, "create tenant", "23514")
	}
}
