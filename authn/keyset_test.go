package authn_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/authn/authntest"
)

// Forged tokens under ever new kids make the service fetch the issuer's keys at most once per
// MinRefetchInterval, however many arrive and however concurrently.
func TestUnknownKidRefetchBounded(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	forged, _, err := authntest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	flood := func() {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				kid := "forged-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
				tok := w.customers.SignWith(w.customers.Claims("mallory", apiAud), authntest.SignOptions{Key: forged, KeyID: kid})
				if _, err := w.auth.Authenticate(testContext(t), tok); !errors.Is(err, authn.ErrInvalidToken) {
					t.Errorf("forged token: got %v, want ErrInvalidToken", err)
				}
			})
		}
		wg.Wait()
	}
	start := w.customers.JWKSFetches()
	flood()
	if got := w.customers.JWKSFetches() - start; got > 1 {
		t.Errorf("%d forged tokens: got %d JWKS fetches, want at most 1", n, got)
	}
	w.clock.Add(authn.DefaultMinRefetchInterval)
	start = w.customers.JWKSFetches()
	flood()
	if got := w.customers.JWKSFetches() - start; got > 1 {
		t.Errorf("%d forged tokens one interval later: got %d JWKS fetches, want at most 1", n, got)
	}
	if got, want := len(w.events.take()), 2*n; got != want {
		t.Errorf("got %d events, want %d: every forged token recorded", got, want)
	}
	// The other issuers' keys were not fetched for the customers issuer's forgeries.
	if got := w.partner.JWKSFetches(); got != 1 {
		t.Errorf("partner issuer: got %d JWKS fetches, want the 1 at start", got)
	}
}

// A key rotation at the identity provider: tokens under the new kid verify once the keys are fetched
// again, tokens under the old one until it is retired.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := testContext(t)
	old := w.userToken(nil)
	if _, err := w.auth.Authenticate(ctx, old); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	if _, err := w.customers.Rotate(); err != nil {
		t.Fatal(err)
	}
	fresh := w.userToken(nil)
	if _, err := w.auth.Authenticate(ctx, fresh); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("new kid within MinRefetchInterval of the last fetch: got %v, want ErrInvalidToken", err)
	}
	w.clock.Add(authn.DefaultMinRefetchInterval)
	for name, tok := range map[string]string{"new kid": fresh, "old kid, still published": old} {
		if _, err := w.auth.Authenticate(ctx, tok); err != nil {
			t.Errorf("%s after the refetch: %v", name, err)
		}
	}
	w.customers.Retire()
	if err := w.auth.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.auth.Authenticate(ctx, old); !errors.Is(err, authn.ErrInvalidToken) {
		t.Errorf("retired kid: got %v, want ErrInvalidToken", err)
	}
	if _, err := w.auth.Authenticate(ctx, fresh); err != nil {
		t.Errorf("current kid after retirement: %v", err)
	}
}

// startedRequests counts the requests an HTTP client starts (RoundTrip entered), before any reaches a
// server: what Close promises is that none starts after it returns. (The issuer's own count may still
// grow then, by a request that started before Close and reached the server after it.)
type startedRequests struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (s *startedRequests) RoundTrip(r *http.Request) (*http.Response, error) {
	s.n.Add(1)
	return s.next.RoundTrip(r)
}

func TestBackgroundRefresh(t *testing.T) {
	t.Parallel()
	started := &startedRequests{next: http.DefaultTransport}
	w := newWorld(t, func(c *authn.Config) {
		c.RefreshInterval = 10 * time.Millisecond
		c.HTTPClient = &http.Client{Transport: started, Timeout: 10 * time.Second}
	})
	start := w.customers.JWKSFetches()
	deadline := time.Now().Add(20 * time.Second)
	for w.customers.JWKSFetches() < start+2 {
		if time.Now().After(deadline) {
			t.Fatalf("got %d background fetches, want 2", w.customers.JWKSFetches()-start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.auth.Close()
	stopped := started.n.Load()
	time.Sleep(50 * time.Millisecond)
	if got := started.n.Load(); got != stopped {
		t.Errorf("after Close: %d more requests started, want none", got-stopped)
	}
}

// Only public signing keys with a kid and of adequate size are taken from a key set.
func TestKeySetFilters(t *testing.T) {
	t.Parallel()
	iss, err := authntest.NewIssuer("http://127.0.0.1/fake") // signs; its JWKS is served below
	if err != nil {
		t.Fatal(err)
	}
	good := iss.JWKS().Keys[0]
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	enc, encKid, _ := authntest.NewKey()
	priv, privKid, _ := authntest.NewKey()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{good,
		{Key: &weak.PublicKey, KeyID: "weak", Use: "sig"},
		{Key: enc.Public(), KeyID: encKid, Use: "enc"},
		{Key: priv, KeyID: privKid, Use: "sig"},
	}}
	raw, _ := json.Marshal(set)
	// An unknown key type is skipped, not fatal (RFC 7517 section 5).
	raw = []byte(strings.Replace(string(raw), `{"keys":[`, `{"keys":[{"kty":"OKP","crv":"X448","x":"AA","kid":"x448"},`, 1))
	var fetches atomic.Int64
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(raw)
	}))
	t.Cleanup(jwks.Close)
	a, err := authn.New(testContext(t), authn.Config{
		Issuers:  []authn.Issuer{{URL: iss.URL(), JWKSURL: jwks.URL, StaffAudiences: []string{staffAud}}},
		Recorder: &events{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	claims := iss.Claims("sam", staffAud)
	tests := []struct {
		name string
		key  any
		kid  string
		ok   bool
	}{
		{"published signing key", nil, "", true},
		{"1024-bit RSA", weak, "weak", false},
		{"key for encryption", enc, encKid, false},
		{"private key published by mistake", priv, privKid, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := iss.SignWith(claims, authntest.SignOptions{Key: tc.key, KeyID: tc.kid})
			_, err := a.Authenticate(testContext(t), tok)
			if (err == nil) != tc.ok {
				t.Errorf("got %v, want accepted %v", err, tc.ok)
			}
		})
	}
	if got := fetches.Load(); got != 1 {
		t.Errorf("got %d fetches of the configured JWKS URL, want 1 (no discovery, refetch rate-limited)", got)
	}
}

// An issuer that does not answer at start is no reason not to start: its tokens are refused until it
// does.
func TestIssuerDownAtStart(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	a, err := authn.New(testContext(t), authn.Config{
		Issuers:  []authn.Issuer{{URL: url + "/staff", StaffAudiences: []string{staffAud}}},
		Recorder: &events{},
	})
	if err != nil {
		t.Fatalf("New with an issuer down: %v", err)
	}
	if err := a.Refresh(testContext(t)); err == nil || !strings.HasPrefix(err.Error(), "authn: discovery of ") {
		t.Errorf("Refresh: got %v, want an authn discovery error", err)
	}
	a.Close()
	if err := a.Refresh(testContext(t)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Refresh after Close: got %v, want a refusal without a request", err)
	}
}
