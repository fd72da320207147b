package authn

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"go.opentelemetry.io/otel/metric"

	"github.com/tenantseal/tenantseal"
)

// Authenticator verifies access tokens of the configured issuers and turns them into Principals.
// It is safe for concurrent use. Close it to stop fetching keys in the background.
type Authenticator struct {
	cfg      Config
	issuers  map[string]*issuer
	algs     []jose.SignatureAlgorithm // every issuer's, for the first parse
	bursts   *bursts
	refusals metric.Int64Counter
	ledger   TokenLedger
	cancel   context.CancelFunc
	stopped  sync.WaitGroup
	fetching sync.WaitGroup // fetches of keys in progress
	closeOne sync.Once
}

// issuer is an Issuer with its keys and go-oidc verifier.
type issuer struct {
	Issuer
	keys     *keySet
	verifier *oidc.IDTokenVerifier
}

// New returns an Authenticator for cfg. It fetches every issuer's keys once, waiting at most until
// ctx is done; an issuer that does not answer is logged and tried again in the background, and its
// tokens are refused until it does. ctx's values, not its cancellation, carry over to the fetches.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	refusals, err := newRefusalCounter(c.MeterProvider)
	if err != nil {
		return nil, err
	}
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &Authenticator{cfg: c, issuers: map[string]*issuer{}, cancel: cancel,
		bursts: newBursts(c.Bursts, c.Now), refusals: refusals, ledger: c.StepUp.Ledger}
	if a.ledger == nil {
		a.ledger = newReplayCache(c.StepUp.ReplayCacheSize, c.Now)
	}
	for _, iss := range c.Issuers {
		ks := &keySet{issuer: iss.URL, jwksURL: iss.JWKSURL, client: c.HTTPClient, life: life, running: &a.fetching,
			timeout: c.FetchTimeout, minRefetch: c.MinRefetchInterval, now: c.Now}
		// go-oidc checks the algorithm, the one signature (through ks) and the issuer; authn checks
		// audience and times itself, with the configured clock, skew and lifetime.
		v := oidc.NewVerifier(iss.URL, ks, &oidc.Config{SupportedSigningAlgs: iss.Algorithms,
			SkipClientIDCheck: true, SkipExpiryCheck: true})
		a.issuers[iss.URL] = &issuer{Issuer: iss, keys: ks, verifier: v}
		for _, alg := range iss.Algorithms {
			if !slices.Contains(a.algs, jose.SignatureAlgorithm(alg)) {
				a.algs = append(a.algs, jose.SignatureAlgorithm(alg))
			}
		}
	}
	if err := a.Refresh(ctx); err != nil {
		c.Logger.WarnContext(ctx, "tenantseal authn: keys not fetched at start; retrying in the background", "error", err)
	}
	a.stopped.Add(1)
	go a.refreshLoop(life)
	return a, nil
}

// Close stops the background refresh. Tokens are still verified with the keys held.
func (a *Authenticator) Close() {
	a.closeOne.Do(func() {
		a.cancel()
		a.stopped.Wait()
		// A fetch starts under its key set's lock, and only while the set is open: once every set is
		// closed, no fetch starts any more, and the ones started are waited for.
		for _, iss := range a.issuers {
			iss.keys.close()
		}
		a.fetching.Wait()
	})
}

// Refresh fetches every issuer's keys now, all at once, and returns the errors of those that failed.
func (a *Authenticator) Refresh(ctx context.Context) error {
	fetches := map[string]*fetch{}
	for url, iss := range a.issuers {
		fetches[url] = iss.keys.refresh()
	}
	var errs []error
	for url, f := range fetches {
		if err := f.wait(ctx, url); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Authenticator) refreshLoop(ctx context.Context) {
	defer a.stopped.Done()
	t := time.NewTicker(a.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.Refresh(ctx); err != nil && ctx.Err() == nil {
				a.cfg.Logger.WarnContext(ctx, "tenantseal authn: key refresh failed; the keys held stay", "error", err)
			}
		}
	}
}

// JWKSFetches returns how many HTTP requests for discovery documents and keys each issuer's key set
// has made.
func (a *Authenticator) JWKSFetches() map[string]int64 {
	out := map[string]int64{}
	for url, iss := range a.issuers {
		out[url] = iss.keys.fetches.Load()
	}
	return out
}

// verified is what the Authenticator put into a context next to the Principal: the proof, for
// AuthorizeElevation and CheckTenant, that the Principal came from a verified token. Only this
// package can set it.
type verified struct {
	principal tenantseal.Principal
	staff     bool
	claim     string // the tenant claim's value
}

type verifiedKey struct{}

func verifiedFrom(ctx context.Context) (*verified, bool) {
	v, ok := ctx.Value(verifiedKey{}).(*verified)
	return v, ok
}

// Authenticate verifies token and returns a copy of ctx carrying its Principal
// (tenantseal.PrincipalFrom). The signature is checked with the issuer's key for the token's kid,
// with an algorithm the issuer is configured for; iss must be a configured issuer exactly; aud must
// hold one of its audiences; exp, nbf and iat must hold at the configured clock within Config.Skew, and
// exp - iat must not exceed Config.MaxLifetime. A tenant user's token must name, in the issuer's tenant
// claim, a tenant that the registry binds to that issuer; a staff token names none. The Principal's
// Subject is the issuer URL, "#" and sub; its Roles come from the issuer's roles claim.
//
// A refusal is a [*TokenError] (or ErrNoToken, ErrUnavailable) and is recorded, with the source of
// [WithSource]; ctx is then returned as it was. The [Authenticator.Middleware] calls Authenticate;
// call it yourself for tokens that do not come over HTTP.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (context.Context, error) {
	v, err := a.verify(ctx, token)
	if err != nil {
		a.refuse(ctx, err)
		return ctx, err
	}
	return withVerified(ctx, v), nil
}

// withVerified returns ctx with v's Principal and v itself. The Principal gets slices of its own, so
// that code changing the Principal's roles in place cannot change what v says was verified.
func withVerified(ctx context.Context, v *verified) context.Context {
	return context.WithValue(tenantseal.WithPrincipal(ctx, clonePrincipal(v.principal)), verifiedKey{}, v)
}

func clonePrincipal(p tenantseal.Principal) tenantseal.Principal {
	p.Roles, p.Auth.AMR = slices.Clone(p.Roles), slices.Clone(p.Auth.AMR)
	return p
}

func (a *Authenticator) verify(ctx context.Context, raw string) (*verified, error) {
	if raw == "" {
		return nil, ErrNoToken
	}
	if len(raw) > MaxTokenLen {
		return nil, invalid("longer than %d bytes", MaxTokenLen)
	}
	jws, err := jose.ParseSignedCompact(raw, a.algs)
	if err != nil {
		return nil, invalid("not a compact JWS signed with an allowed algorithm")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("not signed exactly once")
	}
	var peek struct {
		Issuer any `json:"iss"`
	}
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &peek) != nil {
		return nil, invalid("payload is not a JSON object")
	}
	name, _ := peek.Issuer.(string)
	iss, ok := a.issuers[name]
	if !ok {
		return nil, invalid("issuer not trusted")
	}
	if err := iss.checkHeader(jws.Signatures[0].Protected); err != nil {
		return nil, err
	}
	p := &parsed{raw: raw, jws: jws}
	tok, err := iss.verifier.Verify(context.WithValue(ctx, parsedKey{}, p), raw)
	if err != nil {
		if p.err != nil {
			return nil, p.err
		}
		return nil, invalid("refused by the OIDC verifier")
	}
	var payload json.RawMessage
	if err := tok.Claims(&payload); err != nil {
		return nil, invalid("payload is not a JSON object")
	}
	// From here the claims are the issuer's own: a refusal names the subject.
	c, err := ParseClaims(payload, iss.Claims)
	if err != nil {
		return nil, err
	}
	v, err := a.principal(ctx, iss, c)
	if te := (*TokenError)(nil); errors.As(err, &te) {
		te.subject = c.Issuer + "#" + c.Subject
	}
	return v, err
}

// checkHeader checks what the JOSE header says before any key is looked up.
func (iss *issuer) checkHeader(h jose.Header) error {
	if !slices.Contains(iss.Algorithms, h.Algorithm) {
		return invalid("algorithm %s not allowed for this issuer", h.Algorithm)
	}
	if h.KeyID == "" {
		return invalid("no kid in the header")
	}
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	_, hasTyp := h.ExtraHeaders[jose.HeaderType]
	atJWT := strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
	switch {
	case iss.TypedTokens && !atJWT:
		return invalid("typ is not at+jwt: not an access token")
	case hasTyp && !atJWT && !strings.EqualFold(typ, "JWT"):
		return invalid("typ is neither JWT nor at+jwt")
	}
	return nil
}

// principal checks the times and audience of verified claims and maps them to a Principal.
func (a *Authenticator) principal(ctx context.Context, iss *issuer, c *Claims) (*verified, error) {
	now, skew := a.cfg.Now(), a.cfg.Skew
	switch {
	case !now.Before(c.Expiry.Add(skew)):
		return nil, expired("expired at %s", c.Expiry.Format(time.RFC3339))
	case !c.NotBefore.IsZero() && now.Add(skew).Before(c.NotBefore):
		return nil, expired("not valid before %s", c.NotBefore.Format(time.RFC3339))
	case now.Add(skew).Before(c.IssuedAt):
		return nil, expired("issued in the future, at %s", c.IssuedAt.Format(time.RFC3339))
	case !c.IssuedAt.Before(c.Expiry):
		return nil, invalid("exp is not after iat")
	case c.Expiry.Sub(c.IssuedAt) > a.cfg.MaxLifetime:
		return nil, expired("valid for %v, longer than the %v allowed", c.Expiry.Sub(c.IssuedAt), a.cfg.MaxLifetime)
	case !c.AuthTime.IsZero() && now.Add(skew).Before(c.AuthTime):
		return nil, invalid("auth_time in the future")
	}
	audience, staff, err := iss.audience(c.Audience)
	if err != nil {
		return nil, err
	}
	v := &verified{staff: staff, principal: tenantseal.Principal{
		Subject: c.Issuer + "#" + c.Subject,
		Roles:   c.Roles,
		Auth: tenantseal.Authentication{Issuer: c.Issuer, Audience: audience, TokenID: c.TokenID,
			Expires: c.Expiry, AuthTime: c.AuthTime, AMR: c.AMR, ACR: c.ACR},
	}}
	if len(v.principal.Subject) > MaxClaimLen {
		return nil, invalid("issuer and sub together longer than %d bytes", MaxClaimLen)
	}
	if staff {
		return v, nil
	}
	if c.Tenant == "" {
		return nil, &TokenError{Err: ErrUnknownTenant, Reason: "no tenant claim " + iss.Claims.Tenant.String()}
	}
	tenant, err := a.cfg.Registry.Tenant(ctx, iss.URL, c.Tenant)
	var inactive *InactiveTenantError
	errors.As(err, &inactive)
	switch {
	case errors.Is(err, ErrIssuerMismatch):
		return nil, &TokenError{Err: ErrIssuerMismatch, Reason: "the tenant named is bound to other issuers", Tenant: tenant}
	case inactive != nil:
		return nil, &TokenError{Err: ErrUnknownTenant, Reason: "the tenant is " + inactive.Status, Tenant: inactive.Tenant}
	case errors.Is(err, ErrUnknownTenant):
		return nil, &TokenError{Err: ErrUnknownTenant, Reason: "the tenant claim's value is not registered"}
	case err != nil:
		a.cfg.Logger.ErrorContext(ctx, "tenantseal authn: tenant registry failed", "issuer", iss.URL, "error", err)
		return nil, &TokenError{Err: ErrUnavailable, Reason: "the tenant registry failed"}
	case tenant.IsZero():
		return nil, &TokenError{Err: ErrUnknownTenant, Reason: "the registry returned no tenant"}
	}
	v.principal.Tenant, v.claim = tenant, c.Tenant
	return v, nil
}

// audience returns the configured audience that aud holds and whether it is a staff audience.
func (iss *issuer) audience(aud []string) (string, bool, error) {
	tenant := firstIn(iss.Audiences, aud)
	staff := firstIn(iss.StaffAudiences, aud)
	switch {
	case tenant != "" && staff != "":
		return "", false, invalid("audience names both a tenant and a staff API")
	case tenant != "":
		return tenant, false, nil
	case staff != "":
		return staff, true, nil
	}
	return "", false, invalid("audience not accepted")
}

func firstIn(configured, aud []string) string {
	for _, a := range configured {
		if slices.Contains(aud, a) {
			return a
		}
	}
	return ""
}
