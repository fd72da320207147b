package rekey

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// DB is what rekey needs of the app's connection pool; *db.Pool satisfies it. Every statement, and
// every transaction of Tx, must run under the tenant context of the Principal in ctx, so that row-level
// security keeps a run to that tenant's rows.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	// Tx runs fn in one transaction, committed when fn returns nil and rolled back otherwise.
	Tx(ctx context.Context, fn func(pgx.Tx) error) error
}

// wrap says what failed with one prefix in front: rekey's before a bare cause (a Postgres error, a
// cancelled context), none before an error of the DB that carries one already (db's, a sentinel's),
// which then names what failed after its text.
func wrap(what string, err error) error {
	if hasPrefix.MatchString(err.Error()) {
		return fmt.Errorf("%w (rekey: %s)", err, what)
	}
	return fmt.Errorf("rekey: %s: %w", what, err)
}

var hasPrefix = regexp.MustCompile(`^[a-z][a-z0-9/]*: `)
