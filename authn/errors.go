package authn

import (
	"errors"
	"fmt"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
)

// Sentinel errors; use errors.Is. A refused token is reported as a [*TokenError] wrapping one of the
// first six, whose message says what failed and never quotes the token.
var (
	// ErrNoToken means the request carried no bearer token (HTTP 401 without an error code).
	ErrNoToken = errors.New("authn: no bearer token")
	// ErrMalformedRequest means credentials sent other than as one Authorization: Bearer header, such
	// as in the query string (HTTP 400 invalid_request).
	ErrMalformedRequest = errors.New("authn: malformed authorization request")
	// ErrInvalidToken means a token that is malformed, badly signed, signed by an unknown key or with an
	// algorithm not allowed, of an issuer, audience or type not accepted (HTTP 401 invalid_token).
	ErrInvalidToken = errors.New("authn: invalid token")
	// ErrExpired means a token expired, not valid yet, or valid for longer than Config.MaxLifetime
	// (HTTP 401 invalid_token).
	ErrExpired = errors.New("authn: token expired or not valid now")
	// ErrUnknownTenant means a verified token whose tenant claim is missing or names no tenant the
	// registry knows (HTTP 401 invalid_token).
	ErrUnknownTenant = errors.New("authn: token names no known tenant")
	// ErrIssuerMismatch means a verified token naming a tenant that its issuer may not speak for
	// (HTTP 401 invalid_token).
	ErrIssuerMismatch = errors.New("authn: issuer may not speak for the tenant")
	// ErrWrongAPI means a valid token of the other kind: a staff token at a tenant API, or a tenant
	// user's at a staff API (HTTP 403 insufficient_scope).
	ErrWrongAPI = errors.New("authn: token not valid for this API")
	// ErrStepUpRequired means an elevation refused for want of step-up (HTTP 401
	// insufficient_user_authentication, RFC 9470); reported as a [*StepUpError], for which
	// errors.Is(err, db.ErrElevation) holds as well.
	ErrStepUpRequired = errors.New("authn: step-up authentication required")
	// ErrUnavailable means a token that could not be checked now because the registry failed: the
	// request is refused (HTTP 503), never let through, and not recorded as an attempt.
	ErrUnavailable = errors.New("authn: cannot check the token now")
	// ErrEnvelope means a job's principal envelope that is malformed, tampered with, expired or sealed
	// for another job.
	ErrEnvelope = errors.New("authn: job envelope refused")
)

// TokenError reports why a token was refused.
type TokenError struct {
	Err    error  // ErrInvalidToken, ErrExpired, ErrUnknownTenant, ErrIssuerMismatch, ErrWrongAPI, ...
	Reason string // what failed, e.g. "signature does not verify"; never the token or a secret
	// Tenant is the tenant the token named, when the registry knew it (ErrIssuerMismatch).
	Tenant tenantseal.TenantID

	subject string // set once the signature verified: the refusal is recorded under it
}

func (e *TokenError) Error() string { return e.Err.Error() + ": " + e.Reason }

// Unwrap returns Err.
func (e *TokenError) Unwrap() error { return e.Err }

func invalid(format string, a ...any) *TokenError {
	return &TokenError{Err: ErrInvalidToken, Reason: fmt.Sprintf(format, a...)}
}

func expired(format string, a ...any) *TokenError {
	return &TokenError{Err: ErrExpired, Reason: fmt.Sprintf(format, a...)}
}

// MismatchError reports a tenant supplied by the client (header, path, query or body) that differs
// from the token's. errors.Is(err, tenantseal.ErrTenantMismatch) holds.
type MismatchError struct {
	Where     string              // e.g. `query parameter "tenant"`
	Principal tenantseal.TenantID // the token's tenant
}

func (e *MismatchError) Error() string {
	return "authn: tenant in " + e.Where + " differs from the token's"
}

// Is makes errors.Is(err, tenantseal.ErrTenantMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == tenantseal.ErrTenantMismatch }

// StepUpError reports an elevation refused for want of step-up. errors.Is holds for
// [ErrStepUpRequired] and for db.ErrElevation, so that db.Pool.Elevate returns it as it is.
type StepUpError struct {
	Problem string // e.g. "no multi-factor authentication in amr or acr"
	// ACRValues and MaxAge are what a new login must satisfy, for the RFC 9470 challenge.
	ACRValues []string
	MaxAge    int // seconds
}

func (e *StepUpError) Error() string { return ErrStepUpRequired.Error() + ": " + e.Problem }

// Is makes errors.Is true for ErrStepUpRequired and db.ErrElevation.
func (e *StepUpError) Is(target error) bool {
	return target == ErrStepUpRequired || target == db.ErrElevation
}
