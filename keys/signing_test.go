package keys_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/keys"
)

func TestSigningKeyFile(t *testing.T) {
	kek := fakeKEK(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "signing.json")
	k, err := keys.CreateSigningKeyFile(kek, path, "example.com/audit")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file: got %v (%v), want mode 0600", fi.Mode().Perm(), err)
	}
	if _, err := keys.CreateSigningKeyFile(kek, path, "example.com/audit"); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("create over an existing key: got %v, want a refusal", err)
	}
	opened, err := keys.OpenSigningKeyFile(kek, path)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("size 5\n")
	sig, err := opened.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	// Raw Ed25519: what a note verifier checks.
	if !ed25519.Verify(k.PublicKey(), msg, sig) || opened.Name() != "example.com/audit" || !opened.PublicKey().Equal(k.PublicKey()) {
		t.Errorf("the reopened key does not sign as the created one (name %q)", opened.Name())
	}
	if s := opened.String(); s != "SigningKey(example.com/audit)" {
		t.Errorf("String() = %q", s)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := keys.OpenSigningKeyFile(fakeKEK(t), path); !errors.Is(err, keys.ErrKeysetTampered) {
		t.Errorf("open with another KEK: got %v, want ErrKeysetTampered", err)
	}
	// The keyset is bound to its log's name: renamed in the file, it does not open.
	renamed := filepath.Join(dir, "renamed.json")
	if err := os.WriteFile(renamed, []byte(strings.Replace(string(raw), "example.com/audit", "example.org/audit", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.OpenSigningKeyFile(kek, renamed); !errors.Is(err, keys.ErrKeysetTampered) {
		t.Errorf("open a key renamed to another log: got %v, want ErrKeysetTampered", err)
	}
	for _, content := range []string{"", "{}", "PRIVATE+KEY+x", `{"format": "tenantseal/audit-signing-key/v1", "keyset": "AAAA"}`} {
		p := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.OpenSigningKeyFile(kek, p); err == nil {
			t.Errorf("open %q: got no error", content)
		}
	}
}
