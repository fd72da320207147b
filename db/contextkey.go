package db

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/token"
)

// Beginner starts transactions; *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Querier runs queries; *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// StoredContextKey is a context key as the database holds it: its id and how long it is accepted. The
// database never holds the secret, so neither does this.
type StoredContextKey struct {
	ID        string
	CreatedAt time.Time
	// NotAfter is when tokens signed with the key start being refused; zero: accepted until a later
	// rotation retires it.
	NotAfter time.Time
}

// RotateContextKey generates a new context key and installs it, in one transaction, through owner, a
// connection as the owner role (no other role can write tenantseal.context_keys). Every key accepted
// until then stops being accepted after overlap; with overlap 0 they stay accepted until a later
// rotation retires them (what the first installation, by bootstrap, wants).
//
// It returns the new key: its secret goes into the application's Config.SigningKey, and exists nowhere
// else, since the database stores only the HMAC pads derived from it. Restart every application instance
// with it within overlap: after it the database refuses the retired keys' tokens ([ErrInvalidContext]).
func RotateContextKey(ctx context.Context, owner Beginner, overlap time.Duration) (ContextKey, error) {
	if overlap < 0 {
		return ContextKey{}, fmt.Errorf("db: rotate context key: negative overlap %v", overlap)
	}
	secret := make([]byte, 32)
	suffix := make([]byte, 3)
	if _, err := rand.Read(secret); err != nil {
		return ContextKey{}, fmt.Errorf("db: rotate context key: %w", err)
	}
	if _, err := rand.Read(suffix); err != nil {
		return ContextKey{}, fmt.Errorf("db: rotate context key: %w", err)
	}
	ipad, opad := token.Pads(secret)
	key := ContextKey{Secret: secret}
	err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error {
		if overlap > 0 {
			if _, err := tx.Exec(ctx, `UPDATE tenantseal.context_keys SET not_after = now() + make_interval(secs => $1)
				WHERE not_after IS NULL OR not_after > now() + make_interval(secs => $1)`, overlap.Seconds()); err != nil {
				return err
			}
		}
		// The id names the time of the database, which also decides when the overlap ends.
		return tx.QueryRow(ctx, `INSERT INTO tenantseal.context_keys (kid, ipad, opad)
			VALUES ('k' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD"t"HH24MISS') || '-' || $1, $2, $3) RETURNING kid`,
			hex.EncodeToString(suffix), ipad, opad).Scan(&key.ID)
	})
	if err != nil {
		return ContextKey{}, fmt.Errorf("db: rotate context key: %w", err)
	}
	return key, nil
}

// ContextKeys returns the keys the database accepts now, the one accepted longest first (the newest,
// without an end, last). Connect as the owner role: no other role can read tenantseal.context_keys.
func ContextKeys(ctx context.Context, owner Querier) ([]StoredContextKey, error) {
	rows, err := owner.Query(ctx, `SELECT kid, created_at, not_after FROM tenantseal.context_keys
		WHERE not_after IS NULL OR not_after > now() ORDER BY not_after NULLS LAST, created_at, kid`)
	if err != nil {
		return nil, fmt.Errorf("db: list context keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoredContextKey, error) {
		var k StoredContextKey
		var notAfter *time.Time
		if err := r.Scan(&k.ID, &k.CreatedAt, &notAfter); err != nil {
			return k, err
		}
		if notAfter != nil {
			k.NotAfter = *notAfter
		}
		return k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("db: list context keys: %w", err)
	}
	return keys, nil
}
