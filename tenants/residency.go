package tenants

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
)

// Sentinel errors of regions and retention policies; use errors.Is.
var (
	// ErrInvalidRegion means a region [ValidateRegion] refuses; nothing was sent to the database.
	ErrInvalidRegion = errors.New("tenants: invalid region")
	// ErrNoSuchPolicy means no retention policy has the name.
	ErrNoSuchPolicy = errors.New("tenants: no such retention policy")
)

// MaxRegionLen is the longest region, in bytes.
const MaxRegionLen = 32

var regionPattern = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// ValidateRegion fails with [ErrInvalidRegion] unless region is a short identifier as cloud providers
// name their regions: lower-case letters and digits, groups joined by single hyphens, starting with a
// letter, at most [MaxRegionLen] bytes (eu, eu-west-1, us-east-2, europe-west3). The database checks
// the same. The message names the rule, never the value.
func ValidateRegion(region string) error {
	if len(region) > MaxRegionLen || !regionPattern.MatchString(region) {
		return fmt.Errorf("%w: want lower-case letters and digits in groups joined by hyphens, starting with a letter, at most %d bytes (eu, eu-west-1)", ErrInvalidRegion, MaxRegionLen)
	}
	return nil
}

// SetRegion records region as where the tenant id's data is to live; "" clears it. It is a record,
// shown by [List] and [Get] and exported as evidence: tenantseal moves and routes nothing by it.
// A deleted tenant's region is refused with [ErrDeleted]; setting the region it has changes nothing
// and records nothing.
func SetRegion(ctx context.Context, db DB, id tenantseal.TenantID, region string, opts ...Option) error {
	if region != "" {
		if err := ValidateRegion(region); err != nil {
			return err
		}
	}
	old, err := setColumn(ctx, db, id, "region", region, true)
	if err != nil {
		return err
	}
	if old != region {
		apply(opts).record(ctx, id, "set-region", fmt.Sprintf("region %s, was %s", orNone(region), orNone(old)))
	}
	return nil
}

// SetRetentionPolicy makes policy, a retention policy of tenantseal.retention_policies (package
// retention creates them), the tenant id's policy; "" leaves the tenant without one, so that the
// retention job deletes nothing of it. A deleted tenant may be given one: its shred_after then says
// when its keysets are shredded. It fails with [ErrNoSuchPolicy] for an unknown policy.
func SetRetentionPolicy(ctx context.Context, db DB, id tenantseal.TenantID, policy string, opts ...Option) error {
	old, err := setColumn(ctx, db, id, "retention_policy", policy, false)
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23503" {
		return fmt.Errorf("%w: %q (see 'tenantseal retention policy list')", ErrNoSuchPolicy, policy)
	}
	if err != nil {
		return err
	}
	if old != policy {
		apply(opts).record(ctx, id, "set-retention", fmt.Sprintf("retention policy %s, was %s", orNone(policy), orNone(old)))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// setColumn sets column (region or retention_policy of tenantseal.tenant_governance: never from input)
// of the tenant id to value, NULL for "", and returns the value it had. keepDeleted refuses the change for a deleted tenant.
func setColumn(ctx context.Context, db DB, id tenantseal.TenantID, column, value string, keepDeleted bool) (string, error) {
	var old string
	var status Status
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT coalesce((SELECT g."+column+" FROM tenantseal.tenant_governance g WHERE g.tenant_id = t.id), ''), status FROM tenantseal.tenants t WHERE id = $1 FOR UPDATE",
			id).Scan(&old, &status); err != nil {
			return err
		}
		if old == value || (keepDeleted && status == StatusDeleted) {
			return nil
		}
		_, err := tx.Exec(ctx, "INSERT INTO tenantseal.tenant_governance AS g (tenant_id, "+column+") VALUES ($1, nullif($2, '')) "+
			"ON CONFLICT (tenant_id) DO UPDATE SET "+column+" = excluded."+column, id, value)
		return err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("%w: %s", ErrNotFound, id)
	case err != nil:
		return "", fmt.Errorf("tenants: set %s of %s: %w", column, id, err)
	case keepDeleted && status == StatusDeleted && old != value:
		return "", fmt.Errorf("%w: %s: cannot set its %s", ErrDeleted, id, column)
	}
	return old, nil
}
