package authntest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultLifetime is the lifetime of the tokens of [Issuer.Claims].
const DefaultLifetime = 5 * time.Minute

// Issuer is one OpenID provider. Its methods are safe for concurrent use.
type Issuer struct {
	url string
	// Now is the issuer's clock for iat, exp and auth_time. Set it before use; default time.Now.
	Now func() time.Time

	mu   sync.Mutex
	keys []signingKey // published; the last one signs

	jwksFetches, discoveryFetches atomic.Int64
}

type signingKey struct {
	kid  string
	priv crypto.Signer
}

// NewIssuer returns an issuer whose identifier is url, with one RS256 signing key. Serve its
// [Issuer.Handler] at url.
func NewIssuer(url string) (*Issuer, error) {
	i := &Issuer{url: url, Now: time.Now}
	if _, err := i.Rotate(); err != nil {
		return nil, err
	}
	return i, nil
}

// URL returns the issuer identifier, the iss of its tokens.
func (i *Issuer) URL() string { return i.url }

// NewKey returns a fresh RSA key and a random kid, for forging tokens (SignOptions.Key).
func NewKey() (crypto.Signer, string, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, "", fmt.Errorf("authntest: %w", err)
	}
	return priv, randomHex(8), nil
}

// Rotate adds a new signing key, which signs from now on, and returns its kid. The old keys stay
// published until [Issuer.Retire].
func (i *Issuer) Rotate() (string, error) {
	priv, kid, err := NewKey()
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append(i.keys, signingKey{kid: kid, priv: priv})
	return kid, nil
}

// Retire unpublishes every key but the one that signs.
func (i *Issuer) Retire() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = i.keys[len(i.keys)-1:]
}

// JWKSFetches returns how many times the JWKS has been fetched.
func (i *Issuer) JWKSFetches() int64 { return i.jwksFetches.Load() }

// Claims returns the claims of an access token for sub and aud: iss, sub, aud, iat now, exp
// DefaultLifetime later, and a random jti. Add to them, or delete from them, then [Issuer.Sign].
func (i *Issuer) Claims(sub, aud string) map[string]any {
	now := i.Now()
	return map[string]any{"iss": i.url, "sub": sub, "aud": aud, "iat": now.Unix(),
		"exp": now.Add(DefaultLifetime).Unix(), "jti": randomHex(16)}
}

// Token returns a signed access token of [Issuer.Claims] with extra added: extra wins, and a nil
// value in it deletes the claim.
func (i *Issuer) Token(sub, aud string, extra map[string]any) string {
	c := i.Claims(sub, aud)
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return i.Sign(c)
}

// SignOptions change how [Issuer.SignWith] signs.
type SignOptions struct {
	// Type is the typ header. Default "at+jwt"; "-" for none.
	Type string
	// KeyID overrides the kid header; "-" for none.
	KeyID string
	// Key signs instead of the issuer's current key (a forgery): an *rsa.PrivateKey or
	// *ecdsa.PrivateKey with Algorithm, or a []byte secret with an HS algorithm.
	Key any
	// Algorithm goes with Key. Default RS256.
	Algorithm jose.SignatureAlgorithm
}

// Sign signs claims with the current key, typ at+jwt.
func (i *Issuer) Sign(claims map[string]any) string { return i.SignWith(claims, SignOptions{}) }

// SignWith signs claims as o says. It panics on a key go-jose cannot sign with: a test's mistake.
func (i *Issuer) SignWith(claims map[string]any, o SignOptions) string {
	i.mu.Lock()
	cur := i.keys[len(i.keys)-1]
	i.mu.Unlock()
	key, kid, alg := any(cur.priv), cur.kid, jose.RS256
	if o.Key != nil {
		key, alg = o.Key, o.Algorithm
		if alg == "" {
			alg = jose.RS256
		}
	}
	if o.KeyID != "" {
		kid = o.KeyID
	}
	opts := &jose.SignerOptions{}
	if kid != "-" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	switch o.Type {
	case "":
		opts = opts.WithType("at+jwt")
	case "-":
	default:
		opts = opts.WithType(jose.ContentType(o.Type))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		panic("authntest: " + err.Error())
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic("authntest: " + err.Error())
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic("authntest: " + err.Error())
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic("authntest: " + err.Error())
	}
	return s
}

// JWKS returns the published public keys.
func (i *Issuer) JWKS() jose.JSONWebKeySet {
	i.mu.Lock()
	defer i.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, k := range i.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig"})
	}
	return set
}

// Handler serves the discovery document at <path>/.well-known/openid-configuration and the JWKS at
// <path>/jwks, path being that of the issuer URL.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	base := strings.TrimSuffix(pathOf(i.url), "/")
	mux.HandleFunc("GET "+base+"/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		i.discoveryFetches.Add(1)
		writeJSON(w, map[string]any{"issuer": i.url, "jwks_uri": strings.TrimSuffix(i.url, "/") + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"}, "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}})
	})
	mux.HandleFunc("GET "+base+"/jwks", func(w http.ResponseWriter, r *http.Request) {
		i.jwksFetches.Add(1)
		writeJSON(w, i.JWKS())
	})
	return mux
}

// DevTokenHandler mints tokens for curl (development only): each form field of a POST becomes a
// string claim, a field named "x[]" an array claim x, auth_time=now the current time, expires_in the
// lifetime in seconds (default 300); sub and aud are required. It answers with the bare token.
func (i *Issuer) DevTokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("sub") == "" || r.PostForm.Get("aud") == "" {
			http.Error(w, "authntest: POST a form with at least sub and aud", http.StatusBadRequest)
			return
		}
		c := i.Claims(r.PostForm.Get("sub"), r.PostForm.Get("aud"))
		now := i.Now()
		for k, vs := range r.PostForm {
			switch {
			case k == "sub" || k == "aud":
			case k == "expires_in":
				var secs int64
				if _, err := fmt.Sscan(vs[0], &secs); err != nil || secs <= 0 {
					http.Error(w, "authntest: expires_in must be a positive number of seconds", http.StatusBadRequest)
					return
				}
				c["exp"] = now.Unix() + secs
			case k == "auth_time" && vs[0] == "now":
				c["auth_time"] = now.Unix()
			case strings.HasSuffix(k, "[]"):
				c[strings.TrimSuffix(k, "[]")] = vs
			default:
				c[k] = vs[0]
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, i.Sign(c))
	})
}

func pathOf(url string) string {
	rest := url[strings.Index(url, "://")+3:]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i:]
	}
	return ""
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
