package tenantseal

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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

// TenantID identifies a tenant by its key: the tenant's id as the application's registry has it, of
// type uuid, bigint, integer or text, in that type's canonical text form (a uuid in lower case, an
// integer in decimal without leading zeros). It carries any of them with no loss, and encodes to the
// column type it is bound to: a uuid, bigint, integer or text parameter gets the key in that type.
//
// The zero TenantID names no tenant. TenantIDs compare with ==.
type TenantID struct {
	key    string
	handle [16]byte
}

// MaxTenantKeyLen is the longest tenant key, in bytes.
const MaxTenantKeyLen = 200

// ParseTenantID reads a tenant key: a UUID (any case, kept in lower case), an integer, or any other
// text of 1 to [MaxTenantKeyLen] bytes of UTF-8 without control characters. Which of them a
// deployment's tenants are is the database's to say (tenantseal.settings.tenant_key_type): a key of
// another type names no tenant there.
func ParseTenantID(s string) (TenantID, error) {
	switch {
	case s == "":
		return TenantID{}, errors.New("tenantseal: empty tenant id")
	case len(s) > MaxTenantKeyLen:
		return TenantID{}, fmt.Errorf("tenantseal: tenant id longer than %d bytes", MaxTenantKeyLen)
	case !utf8.ValidString(s):
		return TenantID{}, errors.New("tenantseal: tenant id is not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		return TenantID{}, errors.New("tenantseal: tenant id contains a control character")
	}
	if u, err := uuid.Parse(s); err == nil {
		return TenantIDFromUUID(u), nil
	}
	return newTenantID(s), nil
}

// TenantIDFromUUID returns the TenantID of a uuid tenant key; the zero uuid gives the zero TenantID,
// which names no tenant.
func TenantIDFromUUID(u [16]byte) TenantID {
	if u == [16]byte{} {
		return TenantID{}
	}
	return TenantID{key: uuid.Format(u), handle: u}
}

// TenantIDFromInt returns the TenantID of an integer (bigint or integer) tenant key.
func TenantIDFromInt(n int64) TenantID { return newTenantID(strconv.FormatInt(n, 10)) }

func newTenantID(key string) TenantID { return TenantID{key: key, handle: tenantHandle(key)} }

// tenantHandle is tenantseal.tenant_handle(key) of migration 21: the key itself when it is a uuid in
// canonical form, else a version-8 UUID of the first 16 bytes of SHA-256("tenantseal-tenant:" + key).
func tenantHandle(key string) [16]byte {
	if u, err := uuid.Parse(key); err == nil && uuid.Format(u) == key {
		return u
	}
	sum := sha256.Sum256([]byte("tenantseal-tenant:" + key))
	var h [16]byte
	copy(h[:], sum[:16])
	h[6] = h[6]&0x0f | 0x80
	h[8] = h[8]&0x3f | 0x80
	return h
}

// String returns the key, in its canonical text form.
func (id TenantID) String() string { return id.key }

// Equal reports whether id and other name the same tenant, as == does.
func (id TenantID) Equal(other TenantID) bool { return id == other }

// IsZero reports whether id names no tenant.
func (id TenantID) IsZero() bool { return id.key == "" }

// Handle is the uuid that stands for the tenant in tenantseal's own tables (tenantseal.tenants.id, the
// keysets, the audit log) and in the signed tenant context: the key itself for a uuid key, a hash of
// the key otherwise (tenantseal.tenant_handle in SQL).
func (id TenantID) Handle() [16]byte { return id.handle }

// Int64 returns an integer key as an int64, and false for a key that is no integer.
func (id TenantID) Int64() (int64, bool) {
	n, err := strconv.ParseInt(id.key, 10, 64)
	return n, err == nil && strconv.FormatInt(n, 10) == id.key
}

// UUIDValue lets pgx encode a TenantID as a uuid parameter: its [TenantID.Handle], which is the key
// itself for a uuid key (the zero TenantID: the zero uuid, which names no tenant).
func (id TenantID) UUIDValue() (pgtype.UUID, error) {
	return pgtype.UUID{Bytes: id.handle, Valid: true}, nil
}

// TextValue lets pgx encode a TenantID as a text parameter: its key.
func (id TenantID) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: id.key, Valid: !id.IsZero()}, nil
}

// Int64Value lets pgx encode a TenantID as a bigint or integer parameter. A key that is no integer
// is an error, never a silent other value.
func (id TenantID) Int64Value() (pgtype.Int8, error) {
	if id.IsZero() {
		return pgtype.Int8{}, nil
	}
	n, ok := id.Int64()
	if !ok {
		return pgtype.Int8{}, fmt.Errorf("tenantseal: tenant id %q is not an integer", id.key)
	}
	return pgtype.Int8{Int64: n, Valid: true}, nil
}

// ScanUUID lets pgx scan a uuid tenant column into a TenantID. A NULL is an error: no row belongs to
// no tenant. So is the handle of a tenant whose key is not a uuid (tenantseal's own tables hold
// handles): it does not say the key, which tenantseal.tenants.key does.
func (id *TenantID) ScanUUID(v pgtype.UUID) error {
	if !v.Valid {
		return errors.New("tenantseal: cannot scan NULL into TenantID")
	}
	if isKeyHandle(v.Bytes) {
		return errors.New("tenantseal: cannot scan a tenant handle into TenantID: it stands for a key that is not a uuid; read tenantseal.tenants.key")
	}
	*id = TenantIDFromUUID(v.Bytes)
	return nil
}

// isKeyHandle reports whether u has the form of the handle of a key that is not a uuid (version 8,
// variant 10). A uuid tenant key of that version is refused by nothing else: such keys scan as text.
func isKeyHandle(u [16]byte) bool { return u[6]>>4 == 8 && u[8]>>6 == 2 }

// ScanText lets pgx scan a text tenant column (or tenantseal.tenants.key) into a TenantID.
func (id *TenantID) ScanText(v pgtype.Text) error {
	if !v.Valid {
		return errors.New("tenantseal: cannot scan NULL into TenantID")
	}
	t, err := ParseTenantID(v.String)
	if err != nil {
		return err
	}
	*id = t
	return nil
}

// ScanInt64 lets pgx scan a bigint or integer tenant column into a TenantID.
func (id *TenantID) ScanInt64(v pgtype.Int8) error {
	if !v.Valid {
		return errors.New("tenantseal: cannot scan NULL into TenantID")
	}
	*id = TenantIDFromInt(v.Int64)
	return nil
}

// MarshalText returns the key.
func (id TenantID) MarshalText() ([]byte, error) { return []byte(id.key), nil }

// UnmarshalText reads a key as [ParseTenantID] does.
func (id *TenantID) UnmarshalText(b []byte) error {
	t, err := ParseTenantID(string(b))
	if err != nil {
		return err
	}
	*id = t
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
