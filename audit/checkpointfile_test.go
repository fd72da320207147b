package audit_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/tenantseal/tenantseal/audit"
)

func TestKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "signing.key")
	vkey, err := audit.CreateKeyFile(path, "example.com/audit")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: got %v, %v; want mode 0600", st.Mode(), err)
	}
	if _, err := audit.CreateKeyFile(path, "example.com/audit"); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("create over an existing key: got %v, want a refusal", err)
	}
	s, err := audit.OpenKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.VerifierKey() != vkey || s.Name() != "example.com/audit" {
		t.Errorf("got verifier key %q (name %q), want %q", s.VerifierKey(), s.Name(), vkey)
	}
	raw, _ := os.ReadFile(path)
	secret := strings.TrimSpace(string(raw))
	if strings.Contains(s.String(), secret[len("PRIVATE+KEY+"):]) || !strings.Contains(s.String(), vkey) {
		t.Errorf("String() = %q: want the verifier key and no private key", s.String())
	}
	v, err := audit.ParseVerifierKey([]byte(" " + vkey + "\n"))
	if err != nil || v.Name() != "example.com/audit" {
		t.Errorf("parse the verifier key: got %v, %v", v, err)
	}

	if _, err := audit.CreateKeyFile(filepath.Join(dir, "bad"), "has space"); err == nil {
		t.Error("a log name with a space: got no error, want a refusal (the origin line must be one token)")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.OpenKeyFile(path); err == nil || !strings.Contains(err.Error(), "want 0600") {
		t.Errorf("a key file readable by others: got %v, want a refusal", err)
	}
	tests := []struct{ name, content string }{
		{"empty", ""},
		{"a verifier key", vkey},
		{"garbage", "PRIVATE+KEY+x+00000000+AAAA"},
		{"hash of another name", strings.Replace(secret, "example.com/audit", "example.org/audit", 1)},
	}
	for _, tc := range tests {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := audit.OpenKeyFile(p)
		if err == nil || !strings.Contains(err.Error(), "not an Ed25519 note private key") {
			t.Errorf("%s: got %v, want a clear refusal", tc.name, err)
		}
		if err != nil && strings.Contains(err.Error(), secret[len("PRIVATE+KEY+"):]) {
			t.Errorf("%s: the message holds the key", tc.name)
		}
	}
	for _, bad := range []string{"", "example.com/audit", "a+b+c", vkey + "x"} {
		if _, err := audit.ParseVerifierKey([]byte(bad)); err == nil {
			t.Errorf("ParseVerifierKey(%q): got no error", bad)
		}
	}
}

func TestNewSignerRefusesAMismatchedKey(t *testing.T) {
	t.Parallel()
	pub, _, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	_, err := audit.NewSigner("example.com/audit", pub, func(msg []byte) ([]byte, error) { return ed25519.Sign(other, msg), nil })
	if err == nil || !strings.Contains(err.Error(), "do not verify") {
		t.Errorf("got %v, want a refusal of a sign function that does not match the public key", err)
	}
	if _, err := audit.NewSigner("example.com/audit", pub[:5], nil); err == nil {
		t.Error("a short public key: got no error")
	}
	if _, err := audit.NewSigner("example.com/audit", pub, func([]byte) ([]byte, error) { return nil, errors.New("kms down") }); err == nil || !strings.Contains(err.Error(), "kms down") {
		t.Errorf("a failing sign function: got %v, want its error", err)
	}
}

func TestDirNeverReplacesACheckpoint(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := mustSigner(t, "example.com/audit")
	d := audit.Dir(filepath.Join(t.TempDir(), "checkpoints"))
	if b, err := d.Latest(ctx); b != nil || err != nil {
		t.Fatalf("latest of a new directory: got %q, %v; want none", b, err)
	}
	if _, err := d.Checkpoints(ctx); err == nil {
		t.Error("checkpoints of a directory that does not exist: got no error, want one (a mistyped path is not an empty log)")
	}
	a := audit.Checkpoint{Origin: s.Name(), Size: 5}
	b := audit.Checkpoint{Origin: s.Name(), Size: 5, Root: [32]byte{1}}
	for _, c := range []audit.Checkpoint{a, a} { // the same bytes again are fine
		if err := d.Publish(ctx, c, mustForge(t, s, c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Publish(ctx, b, mustForge(t, s, b)); err == nil || !strings.Contains(err.Error(), "refusing to replace") {
		t.Errorf("publish another checkpoint of size 5: got %v, want a refusal", err)
	}
	small := audit.Checkpoint{Origin: s.Name(), Size: 3}
	if err := d.Publish(ctx, small, mustForge(t, s, small)); err != nil {
		t.Fatal(err)
	}
	latest, err := d.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := audit.OpenCheckpoint("latest", latest, s.Verifier()); err != nil || c != a {
		t.Errorf("latest after publishing 5 then 3: got %+v, %v; want the checkpoint of 5", c, err)
	}
	signed, err := d.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range signed {
		names = append(names, sc.Name)
	}
	if got, want := strings.Join(names, " "), "00000000000000000003.checkpoint 00000000000000000005.checkpoint latest"; got != want {
		t.Errorf("files: got %s, want %s", got, want)
	}
}

func TestOpenCheckpointRefusesMalformedNotes(t *testing.T) {
	t.Parallel()
	s := mustSigner(t, "example.com/audit")
	sign := func(text string) []byte {
		b, err := note.Sign(&note.Note{Text: text}, s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		note []byte
		want string
	}{
		{"two lines", sign("example.com/audit\n5\n"), "not a checkpoint"},
		{"negative size", sign("example.com/audit\n-5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), "not a decimal count"},
		{"leading zero", sign("example.com/audit\n05\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), "not a decimal count"},
		{"huge size", sign("example.com/audit\n99999999999999999999999\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), "not a decimal count"},
		{"short root", sign("example.com/audit\n5\nAAAA\n"), "root line"},
		{"root not base64", sign("example.com/audit\n5\n!!!\n"), "root line"},
		{"unsigned", []byte("example.com/audit\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), "malformed"},
		{"binary", []byte{0, 1, 2, 0xff}, "malformed"},
	}
	for _, tc := range tests {
		_, err := audit.OpenCheckpoint("f", tc.note, s.Verifier())
		var ce *audit.CheckpointError
		if !errors.As(err, &ce) || ce.Name != "f" || !strings.Contains(ce.Reason, tc.want) {
			t.Errorf("%s: got %v, want a CheckpointError naming %q", tc.name, err, tc.want)
		}
	}
	// Extension lines after the root are part of the convention.
	c, err := audit.OpenCheckpoint("f", sign("example.com/audit\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nwitness extra\n"), s.Verifier())
	if err != nil || c.Size != 5 {
		t.Errorf("with an extension line: got %+v, %v; want size 5", c, err)
	}
}

func FuzzOpenCheckpoint(f *testing.F) {
	s := mustSigner(f, "example.com/audit")
	f.Add(mustForge(f, s, audit.Checkpoint{Origin: "example.com/audit", Size: 7}))
	f.Add([]byte("example.com/audit\n5\nAAAA\n\n— example.com/audit AAAA\n"))
	v := s.Verifier()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := audit.OpenCheckpoint("f", b, v)
		var ce *audit.CheckpointError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("got %T %v, want a *CheckpointError", err, err)
		}
		if err == nil && (c.Origin != "example.com/audit" || c.Size < 0) {
			t.Fatalf("accepted %+v", c)
		}
	})
}
