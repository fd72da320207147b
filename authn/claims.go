package authn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds on what a token may carry. A token beyond them is refused, never cut.
const (
	MaxTokenLen    = 16 << 10 // bytes of a compact JWS
	MaxClaimLen    = 256      // bytes of sub, jti, acr, the tenant claim's value
	MaxRoles       = 100
	MaxRoleLen     = 128
	maxAudiences   = 32
	maxAMR         = 16
	maxAMRLen      = 64
	maxNumericDate = 253402300799 // 9999-12-31T23:59:59Z
)

// ClaimPath names a claim in a token's payload: the first element a top-level claim, each next one a
// member of the object before it. A claim name with dots or slashes, such as the namespaced
// "https://example.com/roles" that Auth0 asks for, is one element:
//
//	authn.ClaimPath{"org_id"}                    // Auth0 Organizations
//	authn.ClaimPath{"organization"}              // Keycloak organizations
//	authn.ClaimPath{"tid"}                       // Entra ID
//	authn.ClaimPath{"realm_access", "roles"}     // Keycloak realm roles
//	authn.ClaimPath{"https://example.com/roles"} // an Auth0 custom claim
type ClaimPath []string

// String renders the path for messages, as a JSON array.
func (p ClaimPath) String() string {
	b, _ := json.Marshal([]string(p)) // strings always marshal
	return string(b)
}

// ClaimMapping says where an issuer's access tokens name the tenant and the roles.
type ClaimMapping struct {
	// Tenant is the claim that names the tenant. Its value is a string, an array of exactly one string,
	// or an object of exactly one member whose name is taken (Keycloak's organization claim in either
	// of its forms). Empty for staff tokens, which name no tenant.
	Tenant ClaimPath
	// Roles is the claim that lists the roles: an array of strings, or one string of roles separated
	// by spaces. Absent means no roles.
	Roles ClaimPath
}

// Claims are the claims of an access token that authn reads. [ParseClaims] fills them from a payload;
// what they are worth depends on the signature, which ParseClaims does not check.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expiry    time.Time
	NotBefore time.Time // zero if absent
	IssuedAt  time.Time
	AuthTime  time.Time // zero if absent
	TokenID   string    // jti, "" if absent
	AMR       []string
	ACR       string
	Tenant    string // the tenant claim's value, "" when the mapping names no tenant claim
	Roles     []string
}

// ParseClaims reads the claims of a JWT payload through m. It checks form only: that the payload is
// one JSON object within MaxTokenLen, that iss, sub, exp and iat are present, that every claim it reads
// has the type and size it must, that the tenant claim names exactly one tenant and that the payload
// is no ID token (nonce, at_hash, c_hash, or Keycloak's typ "ID"). It fails with a [*TokenError] whose
// Err is [ErrInvalidToken], or [ErrUnknownTenant] for a tenant claim that names no single tenant; a
// missing tenant claim leaves Claims.Tenant empty. It never checks a signature or a time:
// [Authenticator] does.
func ParseClaims(payload []byte, m ClaimMapping) (*Claims, error) {
	if len(payload) > MaxTokenLen {
		return nil, invalid("payload of %d bytes exceeds %d", len(payload), MaxTokenLen)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, invalid("payload is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("payload holds more than one JSON value")
	}
	for _, k := range []string{"nonce", "at_hash", "c_hash"} {
		if _, ok := raw[k]; ok {
			return nil, invalid("an ID token (claim %s), not an access token", k)
		}
	}
	if typ, ok := raw["typ"].(string); ok && strings.EqualFold(typ, "ID") {
		return nil, invalid("an ID token (typ ID), not an access token")
	}
	c := &Claims{}
	var err error
	r := claimReader{raw: raw}
	c.Issuer = r.str("iss", true, 2048)
	c.Subject = r.str("sub", true, MaxClaimLen)
	c.TokenID = r.str("jti", false, MaxClaimLen)
	c.ACR = r.str("acr", false, MaxClaimLen)
	c.Audience = r.strs("aud", maxAudiences, MaxClaimLen, true)
	c.AMR = r.strs("amr", maxAMR, maxAMRLen, false)
	c.Expiry = r.date("exp", true)
	c.IssuedAt = r.date("iat", true)
	c.NotBefore = r.date("nbf", false)
	c.AuthTime = r.date("auth_time", false)
	if r.err != nil {
		return nil, r.err
	}
	if len(c.Audience) == 0 {
		return nil, invalid("claim aud is empty")
	}
	if len(m.Tenant) > 0 {
		if c.Tenant, err = tenantClaim(raw, m.Tenant); err != nil {
			return nil, err
		}
	}
	if len(m.Roles) > 0 {
		if c.Roles, err = rolesClaim(raw, m.Roles); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// claimReader reads standard claims, keeping the first error.
type claimReader struct {
	raw map[string]any
	err error
}

func (r *claimReader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = invalid(format, a...)
	}
}

func (r *claimReader) str(name string, required bool, max int) string {
	v, ok := r.raw[name]
	if !ok {
		if required {
			r.fail("claim %s is missing", name)
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail("claim %s is not a string", name)
		return ""
	}
	if problem := checkText(s, max); problem != "" {
		r.fail("claim %s %s", name, problem)
		return ""
	}
	return s
}

// strs reads an array of strings, or with single a lone string as well (aud may be either).
func (r *claimReader) strs(name string, maxN, maxLen int, single bool) []string {
	v, ok := r.raw[name]
	if !ok {
		return nil
	}
	if s, isStr := v.(string); isStr && single {
		v = []any{s}
	}
	out, problem := stringList(v, maxN, maxLen)
	if problem != "" {
		r.fail("claim %s %s", name, problem)
	}
	return out
}

func (r *claimReader) date(name string, required bool) time.Time {
	v, ok := r.raw[name]
	if !ok {
		if required {
			r.fail("claim %s is missing", name)
		}
		return time.Time{}
	}
	n, ok := v.(json.Number)
	if !ok {
		r.fail("claim %s is not a number", name)
		return time.Time{}
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		r.fail("claim %s is not a date between 1970 and 9999", name)
		return time.Time{}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// lookup follows path through nested objects.
func lookup(raw map[string]any, path ClaimPath) (any, bool) {
	var v any = raw
	for _, name := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[name]; !ok {
			return nil, false
		}
	}
	return v, true
}

// tenantClaim returns the one tenant the claim at path names.
func tenantClaim(raw map[string]any, path ClaimPath) (string, error) {
	v, ok := lookup(raw, path)
	if !ok {
		return "", nil // a staff token names none; for a tenant user's the Authenticator refuses
	}
	var names []string
	switch t := v.(type) {
	case string:
		names = []string{t}
	case []any:
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return "", &TokenError{Err: ErrUnknownTenant, Reason: "tenant claim " + path.String() + " holds a non-string"}
			}
			names = append(names, s)
		}
	case map[string]any:
		for k := range t {
			names = append(names, k)
		}
	default:
		return "", &TokenError{Err: ErrUnknownTenant, Reason: "tenant claim " + path.String() + " is not a string, array or object"}
	}
	if len(names) != 1 {
		return "", &TokenError{Err: ErrUnknownTenant,
			Reason: fmt.Sprintf("tenant claim %s names %d tenants, want one", path, len(names))}
	}
	if problem := checkText(names[0], MaxClaimLen); problem != "" {
		return "", &TokenError{Err: ErrUnknownTenant, Reason: "tenant claim " + path.String() + " " + problem}
	}
	return names[0], nil
}

// rolesClaim returns the roles the claim at path lists.
func rolesClaim(raw map[string]any, path ClaimPath) ([]string, error) {
	v, ok := lookup(raw, path)
	if !ok {
		return nil, nil
	}
	if s, isStr := v.(string); isStr {
		fields := strings.Fields(s)
		v = make([]any, len(fields))
		for i, f := range fields {
			v.([]any)[i] = f
		}
	}
	roles, problem := stringList(v, MaxRoles, MaxRoleLen)
	if problem != "" {
		return nil, invalid("roles claim %s %s", path, problem)
	}
	return roles, nil
}

// stringList checks that v is an array of at most maxN strings, each valid text of at most maxLen bytes.
func stringList(v any, maxN, maxLen int) ([]string, string) {
	arr, ok := v.([]any)
	if !ok {
		return nil, "is not an array of strings"
	}
	if len(arr) > maxN {
		return nil, fmt.Sprintf("has %d entries, more than %d", len(arr), maxN)
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, "is not an array of strings"
		}
		if problem := checkText(s, maxLen); problem != "" {
			return nil, "has an entry that " + problem
		}
		out = append(out, s)
	}
	return out, ""
}

// checkText says what is wrong with s as a claim value, or "".
func checkText(s string, max int) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > max:
		return fmt.Sprintf("is longer than %d bytes", max)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "holds a control character"
	}
	return ""
}
