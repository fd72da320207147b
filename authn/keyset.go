package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSLen bounds a fetched discovery document or key set.
const maxJWKSLen = 1 << 20

// minRSABits is the smallest RSA key accepted from a key set.
const minRSABits = 2048

// keySet holds one issuer's public signing keys by kid and fetches them: in the background, and on a
// token signed by a kid it does not hold, at most once per minRefetch. It implements oidc.KeySet, so
// go-oidc's verifier checks signatures with it instead of with its own remote key set, which fetches
// again on every unknown kid.
type keySet struct {
	issuer     string
	client     *http.Client
	life       context.Context // the Authenticator's: cancelled by Close
	running    *sync.WaitGroup // the fetches in progress, which Close waits for
	timeout    time.Duration
	minRefetch time.Duration
	now        func() time.Time

	fetches atomic.Int64 // HTTP requests made, discovery included

	mu       sync.Mutex
	jwksURL  string // configured or discovered
	keys     map[string]jose.JSONWebKey
	last     time.Time // start of the last fetch, whatever its outcome
	inflight *fetch
	closed   bool // set by close: no fetch starts any more
}

// close stops new fetches; the Authenticator waits for the ones in progress.
func (k *keySet) close() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
}

// fetch is one fetch in progress; done is closed when it ends.
type fetch struct {
	done chan struct{}
	err  error
}

// key returns the key kid, fetching the set again when it is unknown and the last fetch is at least
// minRefetch old. Concurrent callers share one fetch.
func (k *keySet) key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	k.mu.Lock()
	if key, ok := k.keys[kid]; ok {
		k.mu.Unlock()
		return key, nil
	}
	f := k.inflight
	if f == nil {
		if !k.last.IsZero() && k.now().Sub(k.last) < k.minRefetch {
			k.mu.Unlock()
			return jose.JSONWebKey{}, invalid("signed by an unknown key (keys fetched again at most every %v)", k.minRefetch)
		}
		f = k.startLocked()
	}
	k.mu.Unlock()
	select {
	case <-ctx.Done():
		return jose.JSONWebKey{}, invalid("gave up waiting for the issuer's keys: %v", ctx.Err())
	case <-f.done:
	}
	k.mu.Lock()
	key, ok := k.keys[kid]
	k.mu.Unlock()
	if !ok {
		return jose.JSONWebKey{}, invalid("signed by an unknown key")
	}
	return key, nil
}

// refresh starts fetching the keys now, or joins the fetch in progress; wait for it with f.wait.
func (k *keySet) refresh() *fetch {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.inflight != nil {
		return k.inflight
	}
	return k.startLocked()
}

// wait waits for f to end, or ctx.
func (f *fetch) wait(ctx context.Context, issuer string) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("authn: keys of %s: %w", issuer, ctx.Err())
	case <-f.done:
		return f.err
	}
}

// startLocked starts a fetch; k.mu is held. The fetch runs on its own goroutine under the
// Authenticator's context, so a caller that gives up does not cancel it for the others.
func (k *keySet) startLocked() *fetch {
	f := &fetch{done: make(chan struct{})}
	if k.closed {
		// No more requests to the issuer.
		f.err = fmt.Errorf("authn: keys of %s: closed", k.issuer)
		close(f.done)
		return f
	}
	k.inflight, k.last = f, k.now()
	jwksURL := k.jwksURL
	k.running.Add(1)
	go func() {
		defer k.running.Done()
		ctx, cancel := context.WithTimeout(k.life, k.timeout)
		defer cancel()
		url, keys, err := k.load(ctx, jwksURL)
		k.mu.Lock()
		if err == nil {
			k.jwksURL, k.keys = url, keys
		}
		k.inflight = nil
		k.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f
}

// load discovers the JWKS URL if it is not known yet and fetches the usable keys.
func (k *keySet) load(ctx context.Context, jwksURL string) (string, map[string]jose.JSONWebKey, error) {
	if jwksURL == "" {
		k.fetches.Add(1)
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, k.client), k.issuer)
		if err != nil {
			return "", nil, fmt.Errorf("authn: discovery of %s: %w", k.issuer, err)
		}
		var meta struct {
			JWKSURL string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil {
			return "", nil, fmt.Errorf("authn: discovery of %s: %w", k.issuer, err)
		}
		if err := checkURL(meta.JWKSURL, "jwks_uri of issuer "+k.issuer+":"); err != nil {
			return "", nil, err
		}
		jwksURL = meta.JWKSURL
	}
	k.fetches.Add(1)
	keys, err := fetchKeys(ctx, k.client, jwksURL)
	if err != nil {
		return "", nil, fmt.Errorf("authn: keys of %s: %w", k.issuer, err)
	}
	return jwksURL, keys, nil
}

// fetchKeys GETs a JWK set and keeps its public signing keys that carry a kid: keys of types go-jose
// does not know are skipped, as RFC 7517 section 5 asks, and so are private keys, RSA keys under
// 2048 bits and keys for encryption. A set without a usable key is an error: the keys held stay.
func fetchKeys(ctx context.Context, client *http.Client, url string) (map[string]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSLen+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxJWKSLen {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", url, maxJWKSLen)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("GET %s: not a JWK set: %w", url, err)
	}
	keys := map[string]jose.JSONWebKey{}
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			if errors.Is(err, jose.ErrUnsupportedKeyType) {
				continue
			}
			return nil, fmt.Errorf("GET %s: bad key: %w", url, err)
		}
		if usable(jwk) {
			keys[jwk.KeyID] = jwk
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("GET %s: no usable signing key", url)
	}
	return keys, nil
}

func usable(k jose.JSONWebKey) bool {
	if k.KeyID == "" || !k.IsPublic() || !k.Valid() || (k.Use != "" && k.Use != "sig") {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return pub.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return true
	}
	return false
}

// parsedKey carries the token authn parsed already into VerifySignature, with a place for its error.
type parsedKey struct{}

type parsed struct {
	raw string
	jws *jose.JSONWebSignature
	err error // VerifySignature's, which go-oidc passes on only as text
}

// VerifySignature implements oidc.KeySet: it verifies the token's one signature with the key its kid
// names. The algorithm was checked against the issuer's list before.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	p, ok := ctx.Value(parsedKey{}).(*parsed)
	if !ok || p.raw != raw {
		return nil, errors.New("authn: token not parsed by the authenticator") // go-oidc called directly
	}
	payload, err := k.verify(ctx, p.jws)
	p.err = err
	return payload, err
}

func (k *keySet) verify(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	h := jws.Signatures[0].Protected
	key, err := k.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm {
		return nil, invalid("signed with %s by a key for %s", h.Algorithm, key.Algorithm)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, invalid("signature does not verify")
	}
	return payload, nil
}
