package authn

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
)

// Middleware authenticates every request of a tenant API with its bearer token (RFC 6750) and serves
// it with the token's Principal in its context. It refuses, with a WWW-Authenticate challenge and a
// JSON body {"error", "error_description"}, and records: a request without a token (401), with
// credentials in the query string or in more than one header (400 invalid_request), with a token
// [Authenticator.Authenticate] refuses (401 invalid_token), with a staff token (403
// insufficient_scope), and one whose Config.TenantHeaders or Config.TenantParams name another tenant
// than the token's (403, recorded as tenantseal.EventTenantMismatch). Its signature is that of net/http
// and chi middleware: mux.Handle("/v1/", a.Middleware(api)), r.Use(a.Middleware).
func (a *Authenticator) Middleware(next http.Handler) http.Handler { return a.middleware(next, false) }

// StaffMiddleware is [Authenticator.Middleware] for staff routes: it accepts only staff tokens, whose
// Principal names no tenant, so that nothing is read until [Authenticator.StepUp] elevates into one.
func (a *Authenticator) StaffMiddleware(next http.Handler) http.Handler {
	return a.middleware(next, true)
}

func (a *Authenticator) middleware(next http.Handler, staff bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := WithSource(r.Context(), a.cfg.Source(r))
		raw, err := bearerToken(r)
		if err != nil {
			a.refuse(ctx, err)
		} else {
			ctx, err = a.Authenticate(ctx, raw)
		}
		if err == nil {
			err = a.checkAPI(ctx, staff)
		}
		if err == nil && !staff {
			err = a.checkRequestTenant(ctx, r)
		}
		if err != nil {
			a.WriteError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bearerToken returns the token of the request's one Authorization: Bearer header.
func bearerToken(r *http.Request) (string, error) {
	if r.URL.Query().Has("access_token") {
		// RFC 6750 2.3 allows it; it ends up in logs and caches, so it is refused here.
		return "", &TokenError{Err: ErrMalformedRequest, Reason: "token in the query string; send it in the Authorization header"}
	}
	hs := r.Header.Values("Authorization")
	switch {
	case len(hs) == 0:
		return "", ErrNoToken
	case len(hs) > 1:
		return "", &TokenError{Err: ErrMalformedRequest, Reason: "more than one Authorization header"}
	}
	scheme, tok, _ := strings.Cut(hs[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &TokenError{Err: ErrNoToken, Reason: "authorization scheme is not Bearer"}
	}
	if !isToken68(tok) {
		return "", &TokenError{Err: ErrMalformedRequest, Reason: "bearer credentials are not one token68"}
	}
	return tok, nil
}

// isToken68 reports whether s is an RFC 7235 token68, as RFC 6750's b64token.
func isToken68(s string) bool {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/':
		default:
			return false
		}
	}
	return true
}

// checkAPI refuses a staff token at a tenant API and a tenant user's token at a staff API.
func (a *Authenticator) checkAPI(ctx context.Context, staff bool) error {
	v, _ := verifiedFrom(ctx)
	if v.staff == staff {
		return nil
	}
	err := &TokenError{Err: ErrWrongAPI, Reason: "a tenant user's token at a staff API"}
	if v.staff {
		err.Reason = "a staff token at a tenant API: staff read tenants' data only elevated, through step-up"
	}
	a.refuse(ctx, err)
	return err
}

// checkRequestTenant checks the tenant headers and query parameters of r.
func (a *Authenticator) checkRequestTenant(ctx context.Context, r *http.Request) error {
	for _, h := range a.cfg.TenantHeaders {
		for _, s := range r.Header.Values(h) {
			if err := a.CheckTenant(ctx, "header "+strconv.Quote(h), s); err != nil {
				return err
			}
		}
	}
	q := r.URL.Query()
	for _, p := range a.cfg.TenantParams {
		for _, s := range q[p] {
			if err := a.CheckTenant(ctx, "query parameter "+strconv.Quote(p), s); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckTenant compares a tenant that the client supplied, in a path segment or a body field, with the
// token's: supplied may be the tenant's id or the value of its issuer's tenant claim. It returns nil when
// they agree or supplied is empty, and otherwise records tenantseal.EventTenantMismatch and returns a [*MismatchError]
// (errors.Is(err, tenantseal.ErrTenantMismatch)). where names the place for the record, e.g.
// `body field "tenant_id"`. The middleware checks headers and query parameters itself. The tenant of
// an elevated staff context is the one elevated into. A context without a verified Principal fails
// with tenantseal.ErrNoTenant.
func (a *Authenticator) CheckTenant(ctx context.Context, where, supplied string) error {
	p, ok := tenantseal.PrincipalFrom(ctx)
	v, verifiedOK := verifiedFrom(ctx)
	if !ok || !verifiedOK || p.Tenant.IsZero() {
		return tenantseal.ErrNoTenant
	}
	supplied = strings.TrimSpace(supplied)
	if supplied == "" || (supplied == v.claim && !v.staff) {
		return nil
	}
	id, err := tenantseal.ParseTenantID(supplied)
	if err == nil && id == p.Tenant {
		return nil
	}
	ev := tenantseal.Event{Kind: tenantseal.EventTenantMismatch, Operation: "authenticate",
		Detail: "tenant in " + where + " differs from the token's; source " + sourceFrom(ctx)}
	// The tenant the value names: by the token issuer's claim value (another organization's "org_b"),
	// else the value as a tenant id.
	if t, rerr := a.cfg.Registry.Tenant(ctx, p.Auth.Issuer, supplied); (rerr == nil || errors.Is(rerr, ErrIssuerMismatch)) && !t.IsZero() {
		ev.TargetTenant = t
	} else if err == nil {
		ev.TargetTenant = id
	}
	a.record(ctx, ev)
	return &MismatchError{Where: where, Principal: p.Tenant}
}

// WriteError writes the response for an error of this package: the status, a WWW-Authenticate
// challenge as RFC 6750 and RFC 9470 define them, and a JSON body {"error", "error_description"}. Use
// it for the errors of [Authenticator.CheckTenant] and [Authenticator.Elevate] in handlers. The
// description is the error's message, which never quotes a token.
func (a *Authenticator) WriteError(w http.ResponseWriter, err error) {
	status, code := http.StatusServiceUnavailable, "temporarily_unavailable"
	params := []string{}
	var su *StepUpError
	switch {
	case errors.As(err, &su):
		status, code = http.StatusUnauthorized, "insufficient_user_authentication"
		if len(su.ACRValues) > 0 {
			params = append(params, "acr_values", strings.Join(su.ACRValues, " "))
		}
		params = append(params, "max_age", strconv.Itoa(su.MaxAge))
	case errors.Is(err, ErrNoToken):
		status, code = http.StatusUnauthorized, ""
	case errors.Is(err, ErrMalformedRequest):
		status, code = http.StatusBadRequest, "invalid_request"
	case errors.Is(err, ErrWrongAPI), errors.Is(err, tenantseal.ErrTenantMismatch), errors.Is(err, db.ErrElevation),
		errors.Is(err, tenantseal.ErrNoTenant):
		status, code = http.StatusForbidden, "insufficient_scope"
	case errors.Is(err, ErrInvalidToken), errors.Is(err, ErrExpired), errors.Is(err, ErrUnknownTenant),
		errors.Is(err, ErrIssuerMismatch):
		status, code = http.StatusUnauthorized, "invalid_token"
	}
	desc := err.Error()
	if status != http.StatusServiceUnavailable {
		w.Header().Set("WWW-Authenticate", a.challenge(code, desc, params))
	}
	writeJSONError(w, status, code, desc)
}

// writeJSONError writes {"error": code, "error_description": desc}, without error when code is "".
func writeJSONError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body := map[string]string{"error_description": desc}
	if code != "" {
		body["error"] = code
	}
	json.NewEncoder(w).Encode(body) // a failed write of an error response has nowhere to go
}

// challenge renders a Bearer challenge: realm, error and its description (none without a code, as
// RFC 6750 3.1 asks for a request without credentials), then params as name/value pairs.
func (a *Authenticator) challenge(code, desc string, params []string) string {
	var parts []string
	if a.cfg.Realm != "" {
		parts = append(parts, `realm="`+quotable(a.cfg.Realm)+`"`)
	}
	if code != "" {
		parts = append(parts, `error="`+code+`"`, `error_description="`+quotable(desc)+`"`)
		for i := 0; i+1 < len(params); i += 2 {
			parts = append(parts, params[i]+`="`+quotable(params[i+1])+`"`)
		}
	}
	if len(parts) == 0 {
		return "Bearer"
	}
	return "Bearer " + strings.Join(parts, ", ")
}

// quotable keeps the characters RFC 6750 allows in error_description (%x20-21 / %x23-5B / %x5D-7E)
// and replaces the others, quotes and backslashes among them: nothing can break out of the header.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s)
}
