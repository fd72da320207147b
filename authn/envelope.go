package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/token"
)

// Defaults and bounds of [SealerConfig].
const (
	DefaultEnvelopeTTL      = time.Hour
	MaxEnvelopeTTL          = 7 * 24 * time.Hour
	DefaultEnvelopeAudience = "tenantseal-jobs"
	envelopeIssuer          = "tenantseal/authn"
	envelopeType            = "tenantseal-job+jwt"
)

// EnvelopeKey is a secret that signs principal envelopes (HMAC-SHA256). String never prints the
// secret, and nothing else of this package reveals it.
type EnvelopeKey struct {
	id     string
	secret []byte
}

// NewEnvelopeKey returns a key named id ([a-z0-9-]{1,32}) with a copy of secret (at least 32 bytes).
func NewEnvelopeKey(id string, secret []byte) (EnvelopeKey, error) {
	if !token.ValidKeyID(id) {
		return EnvelopeKey{}, errors.New("authn: envelope key id must match [a-z0-9-]{1,32}")
	}
	if len(secret) < 32 {
		return EnvelopeKey{}, errors.New("authn: envelope key secret is shorter than 32 bytes")
	}
	return EnvelopeKey{id: id, secret: append([]byte(nil), secret...)}, nil
}

// GenerateEnvelopeKey returns a new random key named id.
func GenerateEnvelopeKey(id string) (EnvelopeKey, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return EnvelopeKey{}, fmt.Errorf("authn: generate envelope key: %w", err)
	}
	return NewEnvelopeKey(id, secret)
}

// ParseEnvelopeKey parses the "<id>:<hex secret>" form, as db.ParseContextKey does for context keys.
func ParseEnvelopeKey(s string) (EnvelopeKey, error) {
	ck, err := db.ParseContextKey(s)
	if err != nil {
		return EnvelopeKey{}, errors.New("authn: envelope key must have the form <id>:<hex secret of at least 32 bytes>")
	}
	return NewEnvelopeKey(ck.ID, ck.Secret)
}

// ID names the key.
func (k EnvelopeKey) ID() string { return k.id }

// String names the key without revealing the secret.
func (k EnvelopeKey) String() string { return "EnvelopeKey(" + k.id + ")" }

// GoString hides the secret from %#v too.
func (k EnvelopeKey) GoString() string { return k.String() }

// SealerConfig configures a [Sealer].
type SealerConfig struct {
	// Key signs new envelopes. Required.
	Key EnvelopeKey
	// Previous keys still open envelopes sealed before a rotation; none signs.
	Previous []EnvelopeKey
	// Audience names the queue: an envelope sealed for one is refused by a Sealer of another. Default
	// DefaultEnvelopeAudience.
	Audience string
	// TTL bounds how long after sealing an envelope opens. Default DefaultEnvelopeTTL; at most
	// MaxEnvelopeTTL.
	TTL time.Duration
	// Skew is the clock difference tolerated between the sealing and the opening process. Default
	// DefaultSkew; at most MaxSkew.
	Skew time.Duration
	// Recorder receives every refused envelope. Required.
	Recorder tenantseal.Recorder
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Sealer seals the Principal of a context into an envelope that travels with a job through a queue,
// and opens it when the job is dequeued: the job then runs as the tenant and subject that enqueued it,
// and as nobody else. An envelope is a JWS (HS256, typ "tenantseal-job+jwt") signed with the Sealer's
// key, expiring after TTL, and bound to the job's payload by its SHA-256: it opens for that payload
// only. It carries the tenant, the subject and the roles, never an elevation or the login's
// authentication facts, so a job can never elevate. Opening does not spend it: a job retried by its
// queue opens again until the envelope expires.
type Sealer struct {
	cfg  SealerConfig
	keys map[string][]byte // id -> secret, the current key and the previous ones
}

// envelopeClaims are the private claims of an envelope.
type envelopeClaims struct {
	Tenant string   `json:"tenant"`
	Roles  []string `json:"roles,omitempty"`
	Job    string   `json:"job"` // base64url SHA-256 of the job's payload
}

// NewSealer returns a Sealer for cfg.
func NewSealer(cfg SealerConfig) (*Sealer, error) {
	if cfg.Key.id == "" {
		return nil, errors.New("authn: SealerConfig.Key is required")
	}
	if cfg.Recorder == nil {
		return nil, errors.New("authn: SealerConfig.Recorder is required: every refusal is recorded")
	}
	setDefault(&cfg.Audience, DefaultEnvelopeAudience)
	setDefault(&cfg.TTL, DefaultEnvelopeTTL)
	setDefault(&cfg.Skew, DefaultSkew)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.TTL < time.Second || cfg.TTL > MaxEnvelopeTTL:
		return nil, fmt.Errorf("authn: SealerConfig.TTL %v outside [1s, %v]", cfg.TTL, MaxEnvelopeTTL)
	case cfg.Skew < 0 || cfg.Skew > MaxSkew:
		return nil, fmt.Errorf("authn: SealerConfig.Skew %v outside [0, %v]", cfg.Skew, MaxSkew)
	}
	s := &Sealer{cfg: cfg, keys: map[string][]byte{}}
	for _, k := range append([]EnvelopeKey{cfg.Key}, cfg.Previous...) {
		if _, dup := s.keys[k.id]; dup || k.id == "" {
			return nil, fmt.Errorf("authn: envelope key %q missing or given twice", k.id)
		}
		s.keys[k.id] = k.secret
	}
	return s, nil
}

// Seal returns an envelope of the Principal in ctx for the job whose payload is job. It fails with
// tenantseal.ErrNoTenant when ctx has no Principal with a tenant (a staff Principal, before it is
// elevated into one), and refuses an elevated context: a job never runs elevated.
func (s *Sealer) Seal(ctx context.Context, job []byte) (string, error) {
	p, ok := tenantseal.PrincipalFrom(ctx)
	if !ok || p.Tenant.IsZero() {
		return "", tenantseal.ErrNoTenant
	}
	if _, _, elevated := db.ElevationFrom(ctx); elevated {
		return "", errors.New("authn: cannot seal an elevated context: a job never runs elevated")
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: s.cfg.Key.secret},
		(&jose.SignerOptions{}).WithType(envelopeType).WithHeader("kid", s.cfg.Key.id))
	if err != nil {
		return "", fmt.Errorf("authn: seal: %w", err)
	}
	now := s.cfg.Now()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("authn: seal: %w", err)
	}
	std := jwt.Claims{Issuer: envelopeIssuer, Subject: p.Subject, Audience: jwt.Audience{s.cfg.Audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(s.cfg.TTL)), ID: hex.EncodeToString(id)}
	env, err := jwt.Signed(signer).Claims(std).Claims(envelopeClaims{Tenant: p.Tenant.String(), Roles: p.Roles, Job: jobHash(job)}).Serialize()
	if err != nil {
		return "", fmt.Errorf("authn: seal: %w", err)
	}
	return env, nil
}

// Open verifies envelope for the job whose payload is job and returns a copy of ctx carrying the
// Principal it sealed (tenant, subject, roles; no authentication facts, so no elevation). A malformed,
// tampered, expired envelope, one signed by an unknown key, sealed for another queue or for another
// payload is refused with a [*TokenError] wrapping [ErrEnvelope] and recorded as
// tenantseal.EventEnvelopeRefused; ctx is then returned as it was.
func (s *Sealer) Open(ctx context.Context, envelope string, job []byte) (context.Context, error) {
	p, err := s.open(envelope, job)
	if err != nil {
		ev := tenantseal.Event{Kind: tenantseal.EventEnvelopeRefused, Operation: "open envelope", Detail: err.Error()}
		if te := (*TokenError)(nil); errors.As(err, &te) {
			ev.TargetTenant = te.Tenant
		}
		s.cfg.Recorder.Record(ctx, ev)
		return ctx, err
	}
	return tenantseal.WithPrincipal(ctx, p), nil
}

func (s *Sealer) open(envelope string, job []byte) (tenantseal.Principal, error) {
	refused := func(format string, a ...any) error {
		return &TokenError{Err: ErrEnvelope, Reason: fmt.Sprintf(format, a...)}
	}
	if len(envelope) > MaxTokenLen {
		return tenantseal.Principal{}, refused("longer than %d bytes", MaxTokenLen)
	}
	tok, err := jwt.ParseSigned(envelope, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil || len(tok.Headers) != 1 {
		return tenantseal.Principal{}, refused("not a compact JWS signed with HS256")
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != envelopeType {
		return tenantseal.Principal{}, refused("typ is not %s", envelopeType)
	}
	secret, ok := s.keys[h.KeyID]
	if !ok {
		return tenantseal.Principal{}, refused("signed by an unknown key")
	}
	var std jwt.Claims
	var priv envelopeClaims
	if err := tok.Claims(secret, &std, &priv); err != nil {
		return tenantseal.Principal{}, refused("signature does not verify")
	}
	// Signed by us from here on: a refusal may name the tenant.
	tenant, err := tenantseal.ParseTenantID(priv.Tenant)
	if err != nil || tenant.IsZero() {
		return tenantseal.Principal{}, refused("no tenant")
	}
	fail := func(reason string) error { return &TokenError{Err: ErrEnvelope, Reason: reason, Tenant: tenant} }
	now := s.cfg.Now()
	switch {
	case std.Expiry == nil || std.IssuedAt == nil:
		return tenantseal.Principal{}, fail("no exp or iat")
	case std.Expiry.Time().Sub(std.IssuedAt.Time()) > MaxEnvelopeTTL:
		return tenantseal.Principal{}, fail("valid for longer than allowed")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: envelopeIssuer, AnyAudience: jwt.Audience{s.cfg.Audience}, Time: now}, s.cfg.Skew); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return tenantseal.Principal{}, fail("expired")
		case errors.Is(err, jwt.ErrInvalidAudience):
			return tenantseal.Principal{}, fail("sealed for another queue")
		}
		return tenantseal.Principal{}, fail("claims do not hold")
	}
	if !hmac.Equal([]byte(priv.Job), []byte(jobHash(job))) {
		return tenantseal.Principal{}, fail("sealed for another job")
	}
	if checkText(std.Subject, MaxClaimLen) != "" || len(priv.Roles) > MaxRoles {
		return tenantseal.Principal{}, fail("bad subject or roles")
	}
	return tenantseal.Principal{Tenant: tenant, Subject: std.Subject, Roles: priv.Roles}, nil
}

func jobHash(job []byte) string {
	sum := sha256.Sum256(job)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
