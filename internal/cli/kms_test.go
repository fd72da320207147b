package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/internal/cli"
	"github.com/tenantseal/tenantseal/internal/kmstest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/kms"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// runShipped runs args as the shipped binary does: with keys/kms's clients.
func runShipped(t testing.TB, args ...string) result {
	t.Helper()
	return runWith(t, cli.Options{KMS: kms.Clients}, args...)
}

func mustRunShipped(t testing.TB, args ...string) result {
	t.Helper()
	return mustRunWith(t, cli.Options{KMS: kms.Clients}, args...)
}

// keysStatus is `keys status --format json`.
type keysStatus struct {
	Schema  string
	Tenants []struct {
		ID, Name string
		KEK      struct {
			ID  string
			Own bool
			URI string
		}
		Keysets []struct {
			Purpose string
			Keys    []struct {
				ID     uint32
				Status string
			}
		}
	}
}

// The shipped build moves a database from a local KEK to a key in AWS KMS (the emulator, on loopback,
// reached with nothing but the AWS SDK's environment), gives one tenant a KMS key of its own, and a
// customer disabling that key makes that tenant's data alone unreadable. Not parallel: it sets the
// AWS environment.
func TestKEKsInAWSKMS(t *testing.T) {
	emu := kmstest.Start(t)
	emu.Setenv(t)
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	b := e.tenant(t, "b")
	local := e.keyring(t, e.kek)
	aRow := e.insertCustomer(t, local, a, "a@x", "a notes")
	bRow := e.insertCustomer(t, local, b, "b@x", "b notes")
	shared := emu.NewKey(t)
	arn := strings.TrimPrefix(shared, "aws-kms://")

	// Without the KMS extensions (a build that registers none), the URI names nothing.
	wantFailure(t, run(t, "keys", "rotate-kek", "--new", shared, "--secrets", e.secrets), 1, "no KMS client registered for aws-kms://…")

	r := mustRunShipped(t, "keys", "rotate-kek", "--new", shared, "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "re-wrapped 4 keysets", "updated TENANTSEAL_KEK_URI")
	if strings.Contains(r.stdout+r.stderr, arn) {
		t.Errorf("output names the key's ARN:\n%s%s", r.stdout, r.stderr)
	}
	if got := readSecretsFile(t, e.secrets)["TENANTSEAL_KEK_URI"]; got != shared {
		t.Fatalf("secrets file: got TENANTSEAL_KEK_URI=%s, want the KMS key", got)
	}
	sharedKEK, err := keys.OpenKEKWith(testContext(t), shared, kms.Clients(testContext(t))...)
	if err != nil {
		t.Fatal(err)
	}
	if r := mustRunShipped(t, "keys", "check", "--secrets", e.secrets); r.stdout != "KEK ok ("+sharedKEK.ID+")\n" {
		t.Errorf("check: got %q, want KEK ok (%s)", r.stdout, sharedKEK.ID)
	}
	if got, _, err := e.notes(t, e.keyring(t, sharedKEK), a, aRow); err != nil || got != "a notes" {
		t.Fatalf("under the KMS KEK: got %q (%v), want the row unchanged", got, err)
	}

	// Tenant a brings its own key.
	own := emu.NewKey(t)
	r = mustRunShipped(t, "keys", "rotate-kek", "--tenant", a.String(), "--new", own, "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "tenant "+a.String()+": keysets wrapped by its own KEK")
	ownKEK, err := keys.OpenKEKWith(testContext(t), own, kms.Clients(testContext(t))...)
	if err != nil {
		t.Fatal(err)
	}
	// keys check checks the tenant's own KEK as well as the shared one.
	if r := mustRunShipped(t, "keys", "check", "--secrets", e.secrets); r.stdout != "KEK ok ("+sharedKEK.ID+")\ntenant "+a.String()+": its own KEK ok ("+ownKEK.ID+")\n" {
		t.Errorf("check with a tenant's own KEK: got %q", r.stdout)
	}
	var st keysStatus
	r = mustRun(t, "keys", "status", "--format", "json", "--secrets", e.secrets) // no KEK, no KMS needed
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Schema != "tenantseal/keys-status/v1" || len(st.Tenants) != 2 {
		t.Fatalf("keys status: got %+v (%v) from %s", st, err, r.stdout)
	}
	for _, tn := range st.Tenants {
		wantOwn := tn.ID == a.String()
		if tn.KEK.Own != wantOwn || (wantOwn && tn.KEK.URI != own) || (!wantOwn && tn.KEK.ID != sharedKEK.ID) || len(tn.Keysets) != 2 ||
			len(tn.Keysets[0].Keys) != 1 || tn.Keysets[0].Keys[0].Status != "primary" {
			t.Errorf("status of %s: got %+v, want own KEK %v", tn.Name, tn, wantOwn)
		}
	}
	// Its keys rotate and re-encrypt under its own KEK.
	mustRunShipped(t, "keys", "rotate", "--tenant", a.String(), "--secrets", e.secrets)
	r = mustRunShipped(t, "keys", "reencrypt", "--tenant", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "examined 1, rewritten 1")
	app := func() *keys.Keyring {
		kr, err := keys.NewKeyring(keys.Config{KEK: sharedKEK, Loader: loaderOf(e), OpenKEK: openWithShippedKMS})
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	if got, _, err := e.notes(t, app(), a, aRow); err != nil || got != "a notes" {
		t.Fatalf("a under its own KEK: got %q (%v)", got, err)
	}

	// Its customer disables the key: a's data is unreadable, b's is not.
	emu.DisableKey(t, own)
	if _, _, err := e.notes(t, app(), a, aRow); err == nil {
		t.Error("a after its key was disabled: read, want a refusal")
	}
	if got, _, err := e.notes(t, app(), b, bRow); err != nil || got != "b notes" {
		t.Errorf("b after a's key was disabled: got %q (%v), want it untouched", got, err)
	}
	wantFailure(t, runShipped(t, "keys", "rotate", "--tenant", a.String(), "--secrets", e.secrets), 1, "keys rotate: tenant "+a.String())
	r = runShipped(t, "keys", "check", "--secrets", e.secrets)
	wantFailure(t, r, 1, "the own KEKs of 1 tenants do not open")
	wantContains(t, "stdout", r.stdout, "KEK ok ("+sharedKEK.ID+")", "tenant "+a.String()+": its own KEK "+own+" does not open")
	mustRunShipped(t, "keys", "rotate", "--tenant", b.String(), "--secrets", e.secrets)
	mustRun(t, "keys", "status", "--secrets", e.secrets)
}

// loaderOf loads keysets through e's app pool.
func loaderOf(e *keysEnv) keys.Loader { return pgstore.Loader(e.pool) }

// openWithShippedKMS opens tenants' own KEKs as the shipped build does.
func openWithShippedKMS(ctx context.Context, uri string) (*keys.KEK, error) {
	return keys.OpenKEKWith(ctx, uri, kms.Clients(ctx)...)
}
