package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
)

// KeySettings are the database's bounds on key caches (tenantseal.key_settings).
type KeySettings struct {
	// MaxCacheTTL bounds how long any process keeps a tenant's opened keysets (keys.Wrapped.CacheBound).
	MaxCacheTTL time.Duration
	// WriteGrace bounds how long a write encrypted just before a cache expired may take to commit.
	WriteGrace time.Duration
	// RetireWait is how long after a rotation [Admin.Retire] waits: the larger of MaxCacheTTL and, for
	// as long as it may still be in force, the bound before its last change, plus WriteGrace.
	RetireWait time.Duration
}

// ReadKeySettings returns the database's key settings.
func ReadKeySettings(ctx context.Context, q Querier) (KeySettings, error) {
	rows, err := q.Query(ctx, `SELECT (extract(epoch FROM max_cache_ttl) * 1e6)::bigint, (extract(epoch FROM write_grace) * 1e6)::bigint,
		(extract(epoch FROM tenantseal.key_retire_wait()) * 1e6)::bigint FROM tenantseal.key_settings`)
	if err != nil {
		return KeySettings{}, wrap("read key settings", err)
	}
	var ttl, grace, wait int64
	if _, err := pgx.ForEachRow(rows, []any{&ttl, &grace, &wait}, func() error { return nil }); err != nil {
		return KeySettings{}, wrap("read key settings", err)
	}
	return KeySettings{MaxCacheTTL: time.Duration(ttl) * time.Microsecond, WriteGrace: time.Duration(grace) * time.Microsecond,
		RetireWait: time.Duration(wait) * time.Microsecond}, nil
}

// KeySettingsChange names the key settings to change; nil leaves one as it is.
type KeySettingsChange struct {
	MaxCacheTTL, WriteGrace *time.Duration
}

// SetKeySettings changes the database's key settings and returns them. A lowered MaxCacheTTL does not
// shorten what processes that loaded keysets before keep: the retire wait keeps the larger bound until
// the old one has passed since the change.
func (a *Admin) SetKeySettings(ctx context.Context, c KeySettingsChange) (KeySettings, error) {
	maxCacheTTL, writeGrace := int64(-1), int64(-1)
	if c.MaxCacheTTL != nil {
		if *c.MaxCacheTTL <= 0 {
			return KeySettings{}, errors.New("pgstore: MaxCacheTTL must be positive")
		}
		maxCacheTTL = c.MaxCacheTTL.Microseconds()
	}
	if c.WriteGrace != nil {
		if *c.WriteGrace < 0 {
			return KeySettings{}, errors.New("pgstore: WriteGrace must not be negative")
		}
		writeGrace = c.WriteGrace.Microseconds()
	}
	var role string
	err := a.inTx(ctx, "set key settings", false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE tenantseal.key_settings SET
				previous_max_cache_ttl = CASE WHEN $1::bigint >= 0 THEN greatest(max_cache_ttl, coalesce(CASE WHEN now() < changed_at + previous_max_cache_ttl THEN previous_max_cache_ttl END, max_cache_ttl)) ELSE previous_max_cache_ttl END,
				changed_at = CASE WHEN $1::bigint >= 0 THEN now() ELSE changed_at END,
				max_cache_ttl = CASE WHEN $1::bigint >= 0 THEN make_interval(secs => $1::bigint / 1e6) ELSE max_cache_ttl END,
				write_grace = CASE WHEN $2::bigint >= 0 THEN make_interval(secs => $2::bigint / 1e6) ELSE write_grace END`,
			maxCacheTTL, writeGrace); err != nil {
			return wrap("set key settings", err)
		}
		return tx.QueryRow(ctx, "SELECT current_user").Scan(&role)
	})
	if err != nil {
		return KeySettings{}, err
	}
	st, err := a.readSettings(ctx)
	if err != nil {
		return KeySettings{}, err
	}
	a.record(ctx, tenantseal.Event{Kind: tenantseal.EventKeySettings, Table: "tenantseal.key_settings", Operation: "set",
		Detail: fmt.Sprintf("max_cache_ttl %v, write_grace %v (retire wait now %v) as database role %s", st.MaxCacheTTL, st.WriteGrace, st.RetireWait, role)})
	return st, nil
}

func (a *Admin) readSettings(ctx context.Context) (KeySettings, error) {
	var st KeySettings
	err := a.inTx(ctx, "read key settings", false, func(tx pgx.Tx) error {
		var err error
		st, err = ReadKeySettings(ctx, tx)
		return err
	})
	return st, err
}
