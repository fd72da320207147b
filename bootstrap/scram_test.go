package bootstrap

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// The verifier's keys against the exchange of RFC 7677, section 3 (user "user", password "pencil"):
// the server signature it gives is HMAC(ServerKey, AuthMessage), and its client proof XORed with
// HMAC(StoredKey, AuthMessage) is a ClientKey whose SHA-256 is StoredKey.
func TestSCRAMVerifierMatchesRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := scramVerifierWith("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	head, keys, ok := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$"), "$")
	if !ok || head != "4096:W22ZaJ0SNY7soEsUEjb6gQ==" {
		t.Fatalf("verifier %q: want SCRAM-SHA-256$4096:<salt>$<stored>:<server>", v)
	}
	sk, svk, _ := strings.Cut(keys, ":")
	stored, _ := base64.StdEncoding.DecodeString(sk)
	server, _ := base64.StdEncoding.DecodeString(svk)
	const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	authMessage := "n=user,r=rOprNGfwEbeRWgbNEkqO,r=" + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=" + nonce
	mac := func(key []byte) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(authMessage))
		return h.Sum(nil)
	}
	if got := base64.StdEncoding.EncodeToString(mac(server)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s, want RFC 7677's", got)
	}
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	sig := mac(stored)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	if sum := sha256.Sum256(clientKey); !hmac.Equal(sum[:], stored) {
		t.Error("StoredKey does not match RFC 7677's client proof")
	}
}

func TestSCRAMVerifierRefusesWhatSASLprepWouldChange(t *testing.T) {
	for _, p := range []string{"", "p w", "pässword", "tab\there"} {
		if _, err := scramVerifier(p); err == nil {
			t.Errorf("scramVerifier(%q) accepted", p)
		}
	}
	a, _ := scramVerifier("same")
	b, _ := scramVerifier("same")
	if a == b || strings.Contains(a, "same") {
		t.Errorf("two verifiers of one password: %q, %q: want different salts and no password", a, b)
	}
}
