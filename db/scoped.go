package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ContextSetting is the transaction-local setting that carries the tenant context token.
const ContextSetting = "tenantseal.context"

// setContext is queued first in every batch: transaction-local, so it is gone when the transaction ends
// and nothing carries over to the next user of the connection.
const setContext = "SELECT set_config('" + ContextSetting + "', $1, true)"

// Tx runs fn in a transaction under the tenant context of the Principal in ctx. BEGIN and the context are
// sent in one round trip. The transaction commits when fn returns nil and rolls back otherwise. Under an
// elevation the transaction is read-only.
func (p *Pool) Tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return p.TxWith(ctx, pgx.TxOptions{}, fn)
}

// TxWith is [Pool.Tx] with transaction options.
func (p *Pool) TxWith(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) (err error) {
	tok, elevated, err := p.token(ctx, "tx")
	if err != nil {
		return err
	}
	if elevated {
		opts.AccessMode = pgx.ReadOnly
	}
	b := &pgx.Batch{}
	b.BeginTx(opts)
	b.Queue(setContext, tok)
	br := p.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() {
		// Rollback after Commit returns ErrTxClosed: nothing to do then.
		if rbErr := tx.Rollback(context.WithoutCancel(ctx)); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) && err == nil {
			err = fmt.Errorf("db: rollback: %w", rbErr)
		}
	}()
	if err := br.Close(); err != nil {
		return fmt.Errorf("db: begin: %w", classify(err))
	}
	if err := fn(tx); err != nil {
		return p.recordFailure(ctx, "tx", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("db: commit: %w", p.recordFailure(ctx, "commit", err))
	}
	return nil
}

// send queues the context and then sql in one batch: one round trip, one implicit transaction.
func (p *Pool) send(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	tok, _, err := p.token(ctx, sql)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	b.Queue(setContext, tok)
	b.Queue(sql, args...)
	br := p.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, p.recordFailure(ctx, sql, err)
	}
	return br, nil
}

// Exec runs one statement under the tenant context in a single round trip. Under an elevation it runs in
// a read-only transaction instead.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if _, _, ok := ElevationFrom(ctx); ok {
		var tag pgconn.CommandTag
		err := p.TxWith(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) (err error) {
			tag, err = tx.Exec(ctx, sql, args...)
			return err
		})
		return tag, err
	}
	br, err := p.send(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, p.recordFailure(ctx, sql, err)
}

// Query runs one query under the tenant context in a single round trip. Close the rows (pgx.CollectRows
// does) to return the connection to the pool.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br, err := p.send(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, p.recordFailure(ctx, sql, err)
	}
	return &batchRows{Rows: rows, br: br, ctx: ctx, pool: p, sql: sql}, nil
}

// QueryRow runs a query expected to return at most one row; errors surface at Scan, pgx.ErrNoRows when
// there is no row.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := p.Query(ctx, sql, args...)
	return &row{rows: rows, err: err}
}

// batchRows closes the batch, and so releases the connection, when the rows are closed.
type batchRows struct {
	pgx.Rows
	br       pgx.BatchResults
	closed   bool
	closeErr error
	// For recording a refusal that surfaces while reading, once.
	ctx      context.Context
	pool     *Pool
	sql      string
	recorded error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.closeErr = r.br.Close()
}

func (r *batchRows) Err() error {
	err := r.Rows.Err()
	if err == nil {
		err = r.closeErr
	}
	if err == nil {
		return nil
	}
	if r.recorded == nil {
		r.recorded = r.pool.recordFailure(r.ctx, r.sql, err)
	}
	return r.recorded
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

type row struct {
	rows pgx.Rows
	err  error
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
