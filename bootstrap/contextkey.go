package bootstrap

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/token"
)

// EnsureContextKey keeps known when the database still accepts it and otherwise installs a new key with
// [db.RotateContextKey], the keys accepted until then staying accepted. conn is the owner's, in a migrated
// database. created reports a new key.
func EnsureContextKey(ctx context.Context, conn *pgx.Conn, known *db.ContextKey) (key db.ContextKey, created bool, err error) {
	if known != nil {
		ipad, _ := token.Pads(known.Secret)
		var ok bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenantseal.context_keys
			WHERE kid = $1 AND ipad = $2 AND (not_after IS NULL OR not_after > now()))`, known.ID, ipad).Scan(&ok)
		if err != nil {
			return db.ContextKey{}, false, fmt.Errorf("bootstrap: %w", err)
		}
		if ok {
			return *known, false, nil
		}
	}
	key, err = db.RotateContextKey(ctx, conn, 0)
	return key, err == nil, err
}
