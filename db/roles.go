package db

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// RowQuerier runs a query that returns one row; *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it.
type RowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DatabaseRolePrefix returns the role prefix of the database that owner is connected to, as the
// migrations tell it: the database's tenantseal.role_prefix setting, else the owner's name without
// "_owner". Connect as the owner role: only it may call tenantseal.role_name. Give the result to
// Config.RolePrefix.
func DatabaseRolePrefix(ctx context.Context, owner RowQuerier) (string, error) {
	var ownerRole string
	if err := owner.QueryRow(ctx, "SELECT tenantseal.role_name('owner')").Scan(&ownerRole); err != nil {
		return "", fmt.Errorf("db: read the role prefix: %w", err)
	}
	return strings.TrimSuffix(ownerRole, "_owner"), nil
}

// CheckRolePrefix fails unless the owner role that prefix names (<prefix>_owner) exists. [Open] refuses
// to serve as a member of that role: for a prefix that names no role, that check would hold vacuously.
// Any role may run it.
func CheckRolePrefix(ctx context.Context, q RowQuerier, prefix string) error {
	owner := Roles(prefix).Owner
	var ok bool
	if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", owner).Scan(&ok); err != nil {
		return fmt.Errorf("db: check role prefix %q: %w", prefix, err)
	}
	if !ok {
		return fmt.Errorf("db: no role %s: the role prefix %q names no deployment", owner, prefix)
	}
	return nil
}
