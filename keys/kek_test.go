package keys_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/testing/fakekms"

	"github.com/tenantseal/tenantseal/keys"
)

func TestLocalKEK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	uri, err := keys.InitLocalKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := keys.LocalKEKScheme + path; uri != want {
		t.Errorf("got URI %q, want %q", uri, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("KEK file: got %v (%v), want mode 0600", fi.Mode().Perm(), err)
	}
	kek, err := keys.OpenKEK(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	again, err := keys.OpenKEK(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kek.NewCanary()
	if err != nil || !again.OpensCanary(c) || kek.ID != again.ID {
		t.Errorf("the same file opened twice: canary %v (%v), ids %s and %s; want one KEK", again.OpensCanary(c), err, kek.ID, again.ID)
	}
	if _, err := keys.InitLocalKEK(path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("init over an existing KEK: got %v, want a refusal", err)
	}
	if again, _ := keys.OpenKEK(t.Context(), uri); !again.OpensCanary(c) {
		t.Error("the refused init changed the KEK file")
	}
}

func TestOpenKEKFails(t *testing.T) {
	notKeyset := filepath.Join(t.TempDir(), "not-a-keyset.json")
	if err := os.WriteFile(notKeyset, []byte(`{"hello": "world"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, uri string
		hidden    string // a part of the URI the error must not show
	}{
		{"no URI", "", ""},
		{"missing file", keys.LocalKEKScheme + "/nonexistent/kek.json", ""},
		{"not a keyset", keys.LocalKEKScheme + notKeyset, ""},
		{"unregistered KMS", "aws-kms://arn:aws:kms:eu-west-1:123:key/secret-name", "secret-name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keys.OpenKEK(t.Context(), tc.uri)
			if !errors.Is(err, keys.ErrKEK) {
				t.Fatalf("got %v, want ErrKEK", err)
			}
			if tc.hidden != "" && strings.Contains(err.Error(), tc.hidden) {
				t.Errorf("error %q shows %q", err, tc.hidden)
			}
			if n := strings.Count(err.Error(), "tenantseal: "); n != 1 || !strings.HasPrefix(err.Error(), "tenantseal: ") {
				t.Errorf("error %q: want one prefix, in front", err)
			}
		})
	}
}

// The KEK id comes from the key: one file under three spellings of its path has one id; another key in
// the same place has another.
func TestKEKIDComesFromTheKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek.json")
	if _, err := keys.InitLocalKEK(path); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	var ids []string
	for _, uri := range []string{keys.LocalKEKScheme + path, keys.LocalKEKScheme + "kek.json", keys.LocalKEKScheme + "./kek.json", keys.LocalKEKScheme + link} {
		k, err := keys.OpenKEK(t.Context(), uri)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
	}
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Errorf("got ids %v, want one id for one key", ids)
			break
		}
	}
	other := filepath.Join(t.TempDir(), "kek.json")
	if _, err := keys.InitLocalKEK(other); err != nil {
		t.Fatal(err)
	}
	if k, err := keys.OpenKEK(t.Context(), keys.LocalKEKScheme+other); err != nil || k.ID == ids[0] {
		t.Errorf("another key: got id %s (%v), want another id than %s", k.ID, err, ids[0])
	}
}

// A caller's own KMS clients come before the registry, and spellings of one KMS URI share an id.
func TestOpenKEKWithOwnClients(t *testing.T) {
	uri, err := fakekms.NewKeyURI()
	if err != nil {
		t.Fatal(err)
	}
	client, err := fakekms.NewClient(uri)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.OpenKEK(t.Context(), uri); !errors.Is(err, keys.ErrKEK) {
		t.Fatalf("unregistered: got %v, want ErrKEK", err)
	}
	k, err := keys.OpenKEKWith(t.Context(), uri, client)
	if err != nil {
		t.Fatal(err)
	}
	again, err := keys.OpenKEKWith(t.Context(), "  "+uri+"\n", client)
	if err != nil {
		t.Fatal(err)
	}
	c, err := k.NewCanary()
	if err != nil || !again.OpensCanary(c) || k.ID != again.ID {
		t.Errorf("two spellings of one KMS key: ids %s and %s, canary %v (%v); want one KEK", k.ID, again.ID, again.OpensCanary(c), err)
	}
}
