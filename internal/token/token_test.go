package token_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/internal/token"
	"github.com/tenantseal/tenantseal/internal/uuid"
)

// The database verifies sha256(opad || sha256(ipad || m)); it must equal HMAC-SHA256 for every secret length.
func TestPadsComputeHMAC(t *testing.T) {
	msg := []byte("v1.k.00000000-0000-0000-0000-000000000001.1..")
	for _, n := range []int{32, 64, 65, 100} {
		secret := []byte(strings.Repeat("s", n))
		ipad, opad := token.Pads(secret)
		inner := sha256.Sum256(append(append([]byte{}, ipad...), msg...))
		outer := sha256.Sum256(append(append([]byte{}, opad...), inner[:]...))
		m := hmac.New(sha256.New, secret)
		m.Write(msg)
		if got, want := hex.EncodeToString(outer[:]), hex.EncodeToString(m.Sum(nil)); got != want {
			t.Errorf("secret of %d bytes: got %s, want %s", n, got, want)
		}
	}
}

func TestSign(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	tenant, _ := uuid.Parse("0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5b")
	tok, err := token.Sign("key-1", secret, token.Claims{Tenant: tenant, Subject: "alice", Expires: time.Unix(1700000000, 0), Elevated: true})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	want := []string{"v1", "key-1", "0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5b", "1700000000", "e", hex.EncodeToString([]byte("alice"))}
	if len(parts) != 7 || strings.Join(parts[:6], ".") != strings.Join(want, ".") {
		t.Fatalf("got %q, want fields %v and a signature", tok, want)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strings.Join(want, ".")))
	if got := parts[6]; got != hex.EncodeToString(m.Sum(nil)) {
		t.Errorf("got signature %s, want the HMAC of the payload", got)
	}
	for _, tc := range []struct {
		name   string
		kid    string
		secret []byte
		c      token.Claims
	}{
		{"bad kid", "Key.1", secret, token.Claims{}},
		{"short secret", "k", secret[:31], token.Claims{}},
		{"long subject", "k", secret, token.Claims{Subject: strings.Repeat("x", token.MaxSubjectLen+1)}},
	} {
		if _, err := token.Sign(tc.kid, tc.secret, tc.c); err == nil {
			t.Errorf("%s: got no error, want one", tc.name)
		}
	}
}
