package cli_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestContextKeyRotate(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	original := mustRead(t, secrets)
	mustWrite(t, secrets, original+"# a comment of the operator\nMY_SETTING=kept\n")
	tenant := mustTenant(t, d.OwnerDSN, "acme")
	prefix := prefixOf(d.Roles)
	old := d.ContextKey

	// The owner DSN comes from the secrets file.
	r := mustRun(t, "context-key", "rotate", "--secrets", secrets, "--overlap", "10m")
	env := readSecretsFile(t, secrets)
	key, err := db.ParseContextKey(env["TENANTSEAL_CONTEXT_KEY"])
	if err != nil {
		t.Fatalf("secrets file after rotate: %v", err)
	}
	if key.ID == old.ID {
		t.Fatalf("got the old key id %s after rotate", key.ID)
	}
	wantContains(t, "stdout", r.stdout, "new context key: "+key.ID, old.ID, "accepted until", "restart every app instance", "TS401")
	if strings.Contains(r.stdout, strings.SplitN(env["TENANTSEAL_CONTEXT_KEY"], ":", 2)[1]) {
		t.Errorf("stdout reveals the new secret")
	}
	got := mustRead(t, secrets)
	for _, keep := range []string{"TENANTSEAL_OWNER_DSN=" + d.OwnerDSN + "\n", "TENANTSEAL_APP_DSN=" + d.AppDSN + "\n", "# a comment of the operator\n", "MY_SETTING=kept\n"} {
		if !strings.Contains(got, keep) {
			t.Errorf("got file\n%s\nwant it to keep %q", got, keep)
		}
	}

	count := func(p *db.Pool) error {
		var n int
		return p.QueryRow(as(testContext(t), tenant), "SELECT count(*) FROM tenantseal.tenants").Scan(&n)
	}
	newPool := mustPool(t, d.AppDSN, prefix, key)
	oldPool := mustPool(t, d.AppDSN, prefix, old)
	if err := count(newPool); err != nil {
		t.Errorf("new key: got %v, want it accepted", err)
	}
	if err := count(oldPool); err != nil {
		t.Errorf("old key within the overlap: got %v, want it accepted", err)
	}

	// Rotate again with a short overlap: once it has passed, the database refuses the retired keys.
	r = mustRun(t, "context-key", "rotate", "--secrets", secrets, "--overlap", "1s")
	third, err := db.ParseContextKey(readSecretsFile(t, secrets)["TENANTSEAL_CONTEXT_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := count(mustPool(t, d.AppDSN, prefix, third)); err != nil {
		t.Errorf("newest key: got %v, want it accepted", err)
	}
	for name, p := range map[string]*db.Pool{"first": oldPool, "second": newPool} {
		if err := count(p); !errors.Is(err, db.ErrInvalidContext) {
			t.Errorf("%s key after the overlap: got %v, want db.ErrInvalidContext (TS401)", name, err)
		}
	}
}

func TestContextKeyRotatePrint(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	before := mustRead(t, secrets)
	r := mustRun(t, "context-key", "rotate", "--dsn", d.OwnerDSN, "--secrets", secrets, "--print")
	env := parseEnv(t, r.stdout)
	key, err := db.ParseContextKey(env["TENANTSEAL_CONTEXT_KEY"])
	if err != nil || len(env) != 1 {
		t.Fatalf("got stdout %q, want one TENANTSEAL_CONTEXT_KEY line: %v", r.stdout, err)
	}
	wantContains(t, "stderr", r.stderr, "new context key: "+key.ID)
	if got := mustRead(t, secrets); got != before {
		t.Errorf("--print changed the secrets file")
	}
}
