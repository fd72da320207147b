package tenantseal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tenantseal/tenantseal/internal/uuid"
)

var (
	// ErrNoTenant means the context carries no Principal with a tenant; nothing was sent. Use errors.Is.
	ErrNoTenant = errors.New("tenantseal: no tenant in context")
	// ErrTenantMismatch means an explicit tenant (a struct's tenant field, a row's tenant, an argument of
	// an admin call) differs from the Principal's. Nothing was read or written; the attempt is recorded.
	// Use errors.Is.
	ErrTenantMismatch = errors.New("tenantseal: tenant differs from the principal's")
)

// TenantID identifies a tenant. It encodes to and from a PostgreSQL uuid.
type TenantID [16]byte

// ParseTenantID parses the canonical 8-4-4-4-12 UUID form.
func ParseTenantID(s string) (TenantID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return TenantID{}, fmt.Errorf("tenantseal: tenant id %q: %w", s, err)
	}
	return TenantID(u), nil
}

// String returns the canonical lower-case UUID form.
func (id TenantID) String() string { return uuid.Format(id) }

// IsZero reports whether id is the zero UUID, which never names a tenant.
func (id TenantID) IsZero() bool { return id == TenantID{} }

// UUIDValue lets pgx encode a TenantID as a uuid parameter.
func (id TenantID) UUIDValue() (pgtype.UUID, error) { return pgtype.UUID{Bytes: id, Valid: true}, nil }

// ScanUUID lets pgx scan a uuid column into a TenantID. A NULL is an error: no row belongs to no tenant.
func (id *TenantID) ScanUUID(v pgtype.UUID) error {
	if !v.Valid {
		return errors.New("tenantseal: cannot scan NULL into TenantID")
	}
	*id = v.Bytes
	return nil
}

// Principal is the authenticated caller on whose behalf statements run. The application's
// authentication code builds it from verified credentials and stores it with [WithPrincipal]; tenantseal
// never takes a tenant id from anywhere else.
type Principal struct {
	// Tenant is the tenant the caller belongs to. It must not be zero.
	Tenant TenantID
	// Subject names the caller (a user id, a service name); it is signed into the tenant context and
	// recorded by audit. At most 256 bytes.
	Subject string
	// Roles are the caller's application roles. Elevation requires the pool's ElevationRole among them.
	Roles []string
	// Auth is what the credentials said about how and when the caller authenticated, as the
	// authentication layer (package authn) verified it; zero when the application built the Principal
	// from credentials of its own. Step-up for elevation decides on it.
	Auth Authentication
}

// Authentication is what a verified access token said about its holder's login. None of it is secret,
// and none of it is the token: a Principal never carries a credential.
type Authentication struct {
	Issuer   string    // the token's iss, exactly
	Audience string    // the configured audience the token was accepted for
	TokenID  string    // the token's jti: an elevation is granted once per token
	Expires  time.Time // the token's exp
	AuthTime time.Time // the token's auth_time: when the user last logged in actively; zero if not stated
	AMR      []string  // authentication methods (RFC 8176), e.g. "pwd", "otp", "mfa"
	ACR      string    // the authentication context class reference, if any
}

// HasRole reports whether p has role r.
func (p Principal) HasRole(r string) bool { return slices.Contains(p.Roles, r) }

type principalKey struct{}

// WithPrincipal returns a copy of ctx that carries p. Call it in authentication middleware, once the
// caller's credentials have been verified.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the Principal in ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TenantFrom returns the tenant of the Principal in ctx, or [ErrNoTenant].
func TenantFrom(ctx context.Context) (TenantID, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Tenant.IsZero() {
		return TenantID{}, ErrNoTenant
	}
	return p.Tenant, nil
}
