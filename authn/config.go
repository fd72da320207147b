package authn

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/tenantseal/tenantseal"

	"go.opentelemetry.io/otel/metric"
)

// Defaults and bounds of [Config].
const (
	DefaultSkew               = 30 * time.Second
	MaxSkew                   = 5 * time.Minute
	DefaultMaxLifetime        = time.Hour
	MaxMaxLifetime            = 24 * time.Hour
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultMinRefetchInterval = 30 * time.Second
	DefaultFetchTimeout       = 5 * time.Second
	DefaultStepUpMaxAge       = 10 * time.Minute
	DefaultReplayCacheSize    = 100_000
)

// DefaultAlgorithms are the signature algorithms an [Issuer] accepts unless it names its own.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// allowedAlgorithms are the asymmetric JWS algorithms an issuer may name. "none" and the HMAC family
// are never among them: a JWKS holds public keys, and a public key is no shared secret.
var allowedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Issuer is one identity provider whose access tokens an [Authenticator] accepts.
type Issuer struct {
	// URL is the issuer identifier, compared byte for byte with each token's iss (a trailing slash
	// counts): "https://acme.eu.auth0.com/", "https://sso.example.com/realms/customers",
	// "https://login.microsoftonline.com/<tenant id>/v2.0". https, or http on a loopback address for
	// tests. Required; unique within a Config.
	URL string
	// JWKSURL is where the issuer publishes its signing keys. Empty: taken from the issuer's discovery
	// document (URL + "/.well-known/openid-configuration"), whose issuer must equal URL.
	JWKSURL string
	// Audiences are the audiences of tenant users' tokens: a token whose aud holds one of them acts for
	// the tenant its tenant claim names.
	Audiences []string
	// StaffAudiences are the audiences of staff tokens: they name no tenant, reach only staff routes,
	// and only they can elevate, with step-up (see [StepUp]). An issuer of staff only has no Audiences.
	// No audience may be in both lists; a token whose aud holds one of each is refused.
	StaffAudiences []string
	// Algorithms the issuer signs with; a token with any other alg is refused before its key is looked
	// up. Default [DefaultAlgorithms]. Only asymmetric algorithms are allowed.
	Algorithms []string
	// Claims says where the issuer's tokens name the tenant and the roles. Claims.Tenant is required
	// when Audiences is set.
	Claims ClaimMapping
	// TypedTokens says the issuer marks its access tokens with the JOSE header typ "at+jwt" (RFC 9068):
	// tokens without it, ID tokens among them, are then refused. Without it, a typ other than "JWT" or
	// "at+jwt" is refused. Either way a payload that is an ID token's (nonce, at_hash, c_hash) is.
	TypedTokens bool
}

// StepUp is the policy for elevation that [Authenticator.AuthorizeElevation] enforces.
type StepUp struct {
	// AMR lists the amr values (RFC 8176) any one of which makes a login multi-factor. Default ["mfa"].
	AMR []string
	// ACR lists acr values that count as multi-factor as well. Default none.
	ACR []string
	// MaxAge bounds the age of the token's auth_time, checked when the elevation is granted and again
	// at every elevated statement. Default DefaultStepUpMaxAge.
	MaxAge time.Duration
	// Ledger remembers the tokens that granted an elevation, so that each token grants one. Default an
	// in-process cache of ReplayCacheSize ids: with more than one process, or across restarts, give
	// every process the same [DBLedger].
	Ledger TokenLedger
	// ReplayCacheSize bounds the token ids the default Ledger remembers until their tokens expire. When
	// it is full of live ids, elevations are refused. Default DefaultReplayCacheSize.
	ReplayCacheSize int
}

// Config configures an [Authenticator].
type Config struct {
	// Issuers are the identity providers trusted, each with its own keys and claims. Required.
	Issuers []Issuer
	// Registry maps each issuer's tenant claim to a tenant. Required when an issuer has Audiences.
	Registry Registry
	// Recorder receives every refusal: of tokens, of a client-supplied tenant, of an elevation. Required:
	// give it the audit.Writer that db.Config.Recorder has.
	Recorder tenantseal.Recorder
	// StepUp is the policy for elevation.
	StepUp StepUp
	// Bursts raises an alert when one source is refused often.
	Bursts BurstConfig
	// Skew is the clock difference tolerated on exp, nbf, iat and auth_time. Default DefaultSkew; at
	// most MaxSkew.
	Skew time.Duration
	// MaxLifetime bounds exp - iat: a longer-lived token is refused, whatever its exp. Default
	// DefaultMaxLifetime; at most MaxMaxLifetime.
	MaxLifetime time.Duration
	// RefreshInterval is how often each issuer's keys are fetched in the background. Default
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	// MinRefetchInterval bounds how often a token signed by an unknown key makes an issuer's keys be
	// fetched again: at most once per interval and issuer, so forged tokens cannot make the service
	// flood the identity provider. Default DefaultMinRefetchInterval.
	MinRefetchInterval time.Duration
	// FetchTimeout bounds one fetch of discovery or keys. Default DefaultFetchTimeout.
	FetchTimeout time.Duration
	// HTTPClient fetches discovery documents and keys. Default a client with FetchTimeout.
	HTTPClient *http.Client
	// Realm is the realm of WWW-Authenticate challenges; none when empty.
	Realm string
	// TenantHeaders and TenantParams are the request headers and query parameters in which a client
	// may name a tenant; the middleware refuses a request where one names another tenant than the
	// token's. Default ["X-Tenant-ID"] and ["tenant", "tenant_id"]; an empty non-nil slice checks none.
	TenantHeaders, TenantParams []string
	// Source names the client of a request for the audit log and burst alerts. Default the host of
	// RemoteAddr; behind a proxy, a function reading the header the proxy sets.
	Source func(*http.Request) string
	// Logger receives failures to fetch keys. Default slog.Default(). Nothing of a token is logged.
	Logger *slog.Logger
	// MeterProvider provides tenantseal.authn.refusals, which counts the refusals by kind ([AttrKind]).
	// Default otel.GetMeterProvider(), which records nothing until the application installs one.
	MeterProvider metric.MeterProvider
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// withDefaults returns a copy of c with defaults set, or what is wrong with it.
func (c Config) withDefaults() (Config, error) {
	if len(c.Issuers) == 0 {
		return c, errors.New("authn: Config.Issuers is empty")
	}
	if c.Recorder == nil {
		return c, errors.New("authn: Config.Recorder is required: every refusal is recorded")
	}
	seen := map[string]bool{}
	issuers := make([]Issuer, len(c.Issuers))
	for i, iss := range c.Issuers {
		if seen[iss.URL] {
			return c, fmt.Errorf("authn: issuer %s configured twice", iss.URL)
		}
		seen[iss.URL] = true
		var err error
		if issuers[i], err = iss.withDefaults(); err != nil {
			return c, err
		}
		if len(iss.Audiences) > 0 && c.Registry == nil {
			return c, fmt.Errorf("authn: issuer %s has tenant audiences but Config.Registry is nil", iss.URL)
		}
	}
	c.Issuers = issuers
	setDefault(&c.Skew, DefaultSkew)
	setDefault(&c.MaxLifetime, DefaultMaxLifetime)
	setDefault(&c.RefreshInterval, DefaultRefreshInterval)
	setDefault(&c.MinRefetchInterval, DefaultMinRefetchInterval)
	setDefault(&c.FetchTimeout, DefaultFetchTimeout)
	setDefault(&c.StepUp.MaxAge, DefaultStepUpMaxAge)
	setDefault(&c.StepUp.ReplayCacheSize, DefaultReplayCacheSize)
	switch {
	case c.Skew < 0 || c.Skew > MaxSkew:
		return c, fmt.Errorf("authn: Config.Skew %v outside [0, %v]", c.Skew, MaxSkew)
	case c.MaxLifetime < 0 || c.MaxLifetime > MaxMaxLifetime:
		return c, fmt.Errorf("authn: Config.MaxLifetime %v outside (0, %v]", c.MaxLifetime, MaxMaxLifetime)
	case c.RefreshInterval < 0 || c.MinRefetchInterval < 0 || c.FetchTimeout < 0 || c.StepUp.MaxAge < 0:
		return c, errors.New("authn: Config intervals must not be negative")
	}
	if c.StepUp.AMR == nil {
		c.StepUp.AMR = []string{"mfa"}
	}
	if c.TenantHeaders == nil {
		c.TenantHeaders = []string{"X-Tenant-ID"}
	}
	if c.TenantParams == nil {
		c.TenantParams = []string{"tenant", "tenant_id"}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.FetchTimeout}
	}
	if c.Source == nil {
		c.Source = remoteHost
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Bursts = c.Bursts.withDefaults(c.Logger)
	return c, nil
}

func (iss Issuer) withDefaults() (Issuer, error) {
	if err := checkURL(iss.URL, "issuer"); err != nil {
		return iss, err
	}
	if iss.JWKSURL != "" {
		if err := checkURL(iss.JWKSURL, "JWKS URL of issuer "+iss.URL+":"); err != nil {
			return iss, err
		}
	}
	if len(iss.Audiences)+len(iss.StaffAudiences) == 0 {
		return iss, fmt.Errorf("authn: issuer %s has neither Audiences nor StaffAudiences", iss.URL)
	}
	for _, a := range append(slices.Clone(iss.Audiences), iss.StaffAudiences...) {
		if a == "" {
			return iss, fmt.Errorf("authn: issuer %s has an empty audience", iss.URL)
		}
		if slices.Contains(iss.Audiences, a) && slices.Contains(iss.StaffAudiences, a) {
			return iss, fmt.Errorf("authn: issuer %s: audience %q is both a tenant and a staff audience", iss.URL, a)
		}
	}
	if len(iss.Audiences) > 0 && len(iss.Claims.Tenant) == 0 {
		return iss, fmt.Errorf("authn: issuer %s has tenant audiences but no Claims.Tenant", iss.URL)
	}
	if len(iss.Algorithms) == 0 {
		iss.Algorithms = DefaultAlgorithms
	}
	for _, alg := range iss.Algorithms {
		if !slices.Contains(allowedAlgorithms, alg) {
			return iss, fmt.Errorf("authn: issuer %s: algorithm %q not allowed: want one of %v", iss.URL, alg, allowedAlgorithms)
		}
	}
	return iss, nil
}

// checkURL requires an absolute https URL without query or fragment, or http on a loopback host.
func checkURL(s, what string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("authn: %s %q is not an absolute URL without user, query or fragment", what, s)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("authn: %s %q: want https (http only on a loopback address)", what, s)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// remoteHost is the default Config.Source: the host of RemoteAddr.
func remoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
