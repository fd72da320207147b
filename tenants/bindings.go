package tenants

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
)

// Bounds of a binding, as tenantseal.tenant_bindings checks them.
const (
	MaxIssuerLen = 2000 // bytes of an issuer URL
	MaxClaimLen  = 256  // bytes of a tenant claim's value, as authn.MaxClaimLen
)

var (
	// ErrInvalidBinding means an issuer or claim value that [Bind] refuses; nothing was sent to the
	// database. Use errors.Is.
	ErrInvalidBinding = errors.New("tenants: invalid binding")
	// ErrBound means the issuer names another tenant by the claim value already: unbind it first. Use
	// errors.Is.
	ErrBound = errors.New("tenants: the issuer names another tenant by that claim value")
	// ErrNotBound means [Unbind] found no such binding. Use errors.Is.
	ErrNotBound = errors.New("tenants: no such binding")
)

// Binding is a row of tenantseal.tenant_bindings: the issuer's tokens whose tenant claim has the value
// Claim act for Tenant.
type Binding struct {
	Tenant    tenantseal.TenantID
	Issuer    string
	Claim     string
	CreatedAt time.Time
	// Status is the tenant's, as when it was read: a token is accepted for an active tenant only.
	Status Status
}

// CheckBinding refuses, with [ErrInvalidBinding], an issuer or claim value that [Bind] refuses: empty,
// too long, not UTF-8 or holding a control character. It sends nothing to the database.
func CheckBinding(issuer, claim string) error {
	for _, f := range []struct {
		what, v string
		max     int
	}{{"issuer", issuer, MaxIssuerLen}, {"claim value", claim, MaxClaimLen}} {
		switch {
		case f.v == "" || len(f.v) > f.max:
			return fmt.Errorf("%w: the %s has %d bytes: want 1 to %d", ErrInvalidBinding, f.what, len(f.v), f.max)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("%w: the %s is not valid UTF-8", ErrInvalidBinding, f.what)
		case strings.ContainsFunc(f.v, unicode.IsControl):
			return fmt.Errorf("%w: the %s holds a control character", ErrInvalidBinding, f.what)
		}
	}
	return nil
}

// Bind lets tokens of issuer whose tenant claim has the value claim act for the tenant id: what an
// authn database registry (authn.NewDBRegistry) answers, within its cache's lifetime. issuer is the
// issuer URL as tokens carry it in iss, byte for byte. A claim value may be bound for several issuers,
// to one tenant or to different ones, and a tenant may have several bindings; one issuer names one
// tenant by one value ([ErrBound] otherwise). Binding what is bound already changes nothing. A deleted
// tenant is refused with [ErrDeleted]; a suspended one may be bound, and its tokens are refused until
// it is resumed. With [Recording], a new binding is recorded as a tenantseal.EventTenantChange.
func Bind(ctx context.Context, db DB, id tenantseal.TenantID, issuer, claim string, opts ...Option) error {
	if err := CheckBinding(issuer, claim); err != nil {
		return err
	}
	var status Status
	var other *tenantseal.TenantID
	added := false
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT status FROM tenantseal.tenants WHERE id = $1 FOR SHARE", id).Scan(&status); err != nil {
			return err
		}
		if status == StatusDeleted {
			return nil
		}
		tag, err := tx.Exec(ctx, "INSERT INTO tenantseal.tenant_bindings (issuer, claim, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", issuer, claim, id)
		if err != nil {
			return err
		}
		if added = tag.RowsAffected() == 1; added {
			return nil
		}
		return tx.QueryRow(ctx, `SELECT t.key FROM tenantseal.tenant_bindings b JOIN tenantseal.tenants t ON t.id = b.tenant_id
			WHERE b.issuer = $1 AND b.claim = $2 AND b.tenant_id <> $3`, issuer, claim, id).Scan(&other)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows) && !added && status == "":
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	case errors.Is(err, pgx.ErrNoRows):
		return nil // bound to id already
	case err != nil:
		return fmt.Errorf("tenants: bind %s: %w", id, err)
	case status == StatusDeleted:
		return fmt.Errorf("%w: %s: cannot bind it", ErrDeleted, id)
	case other != nil:
		return fmt.Errorf("%w: issuer %s names tenant %s by %q", ErrBound, issuer, *other, claim)
	}
	apply(opts).record(ctx, id, "bind", fmt.Sprintf("bound to issuer %s by claim value %q", issuer, claim))
	return nil
}

// Unbind ends the binding of claim for issuer, whichever tenant it names: from then on such tokens
// name no tenant, once the registries' caches forget it. It fails with [ErrNotBound] when there is no
// such binding. With [Recording], it is recorded as a tenantseal.EventTenantChange of the tenant it
// named.
func Unbind(ctx context.Context, db DB, issuer, claim string, opts ...Option) error {
	var id tenantseal.TenantID
	err := db.QueryRow(ctx, `DELETE FROM tenantseal.tenant_bindings b USING tenantseal.tenants t
		WHERE b.issuer = $1 AND b.claim = $2 AND t.id = b.tenant_id RETURNING t.key`, issuer, claim).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: issuer %s, claim value %q", ErrNotBound, issuer, claim)
	case err != nil:
		return fmt.Errorf("tenants: unbind: %w", err)
	}
	apply(opts).record(ctx, id, "unbind", fmt.Sprintf("unbound from issuer %s and claim value %q", issuer, claim))
	return nil
}

// Bindings returns every binding, by issuer and claim value; with a tenant given, only that tenant's.
func Bindings(ctx context.Context, db DB, of ...tenantseal.TenantID) ([]Binding, error) {
	q := `SELECT t.key, b.issuer, b.claim, b.created_at, t.status FROM tenantseal.tenant_bindings b
		JOIN tenantseal.tenants t ON t.id = b.tenant_id WHERE cardinality($1::uuid[]) = 0 OR b.tenant_id = ANY ($1::uuid[]) ORDER BY b.issuer, b.claim`
	handles := make([][16]byte, len(of))
	for i, id := range of {
		handles[i] = id.Handle()
	}
	rows, err := db.Query(ctx, q, handles)
	if err != nil {
		return nil, fmt.Errorf("tenants: bindings: %w", err)
	}
	bs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Binding, error) {
		var b Binding
		err := r.Scan(&b.Tenant, &b.Issuer, &b.Claim, &b.CreatedAt, &b.Status)
		b.CreatedAt = b.CreatedAt.UTC()
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("tenants: bindings: %w", err)
	}
	return bs, nil
}

// RefusedLookups returns how many lookups of a binding (tenantseal.tenant_binding, which the app role
// calls at login) found no active tenant bound: a value bound to no tenant, bound for other issuers
// only, or of a suspended or deleted tenant. A count that grows without failed logins in the audit log
// to match is someone with the app role's SQL guessing values.
func RefusedLookups(ctx context.Context, db DB) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM tenantseal.binding_refusals").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("tenants: refused lookups: %w", err)
	}
	return n, nil
}
