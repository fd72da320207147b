package db

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ContextSetting is the transaction-local setting that carries the tenant context token.
const ContextSetting = "tenantseal.context"

// setContext is queued before the statement in every batch: transaction-local, so it is gone when the
// transaction ends and nothing carries over to the next user of the connection.
// It returns no row: the token does not travel back.
const setContext = "SELECT WHERE set_config('" + ContextSetting + "', $1, true) IS NULL"

// Tx runs fn in a transaction under the tenant context of the Principal in ctx. BEGIN and the context are
// sent in one round trip. The transaction commits when fn returns nil and rolls back otherwise. Under an
// elevation the transaction is read-only. The connection is swept (see the package's pooled sessions)
// before it is used again: fn may have changed its session.
func (p *Pool) Tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return p.TxWith(ctx, pgx.TxOptions{}, fn)
}

// TxWith is [Pool.Tx] with transaction options. A read-only transaction (pgx.ReadOnly, or any under an
// elevation) runs on a read replica when ctx asks for one (see the package's read replicas).
func (p *Pool) TxWith(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) (err error) {
	tok, elevated, err := p.token(ctx, "tx")
	if err != nil {
		return err
	}
	if elevated {
		opts.AccessMode = pgx.ReadOnly
	}
	var (
		c  *pgxpool.Conn
		tx pgx.Tx
	)
	if err := p.onReader(ctx, opts.AccessMode == pgx.ReadOnly, func(pool *pgxpool.Pool) (err error) {
		c, tx, err = p.begin(ctx, pool, opts, tok)
		return err
	}); err != nil {
		return err
	}
	defer p.release(c, true)
	defer func() {
		// Rollback after Commit returns ErrTxClosed: nothing to do then.
		if rbErr := tx.Rollback(context.WithoutCancel(ctx)); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) && err == nil {
			err = fmt.Errorf("db: rollback: %w", rbErr)
		}
	}()
	if err := fn(tx); err != nil {
		return p.recordFailure(ctx, "tx", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("db: commit: %w", p.recordFailure(ctx, "commit", err))
	}
	return nil
}

// begin sends BEGIN and the context in one round trip on a connection of pool.
func (p *Pool) begin(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, tok any) (*pgxpool.Conn, pgx.Tx, error) {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("db: begin: %w", err)
	}
	b := &pgx.Batch{}
	b.BeginTx(opts)
	if p.citus {
		b.Queue(citusPropagate)
		b.Queue(citusStatement(tok))
	} else {
		b.Queue(setContext, tok)
	}
	br := c.SendBatch(ctx, b)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		p.release(c, true)
		return nil, nil, fmt.Errorf("db: begin: %w", classify(err))
	}
	return c, tx, nil
}

// scoped is one round trip on a connection of its own: the tenant context, the statement and the reset
// of the session, and, under an elevation, BEGIN READ ONLY and COMMIT around them (the database honours
// an elevated context in a read-only transaction only).
type scoped struct {
	p      *Pool
	c      *pgxpool.Conn
	br     pgx.BatchResults          // pgx's path
	mrr    *pgconn.MultiResultReader // the direct path (direct.go)
	closed bool
	err    error
	// The direct path counts the statement in the pool's metrics itself, once, when its result is in
	// (pgx's path counts through the tracer).
	sql    string
	traced bool
}

// call is everything one scoped statement needs on the client, in one allocation: the batch and its
// queued queries, the round trip, and the rows and row handed to the caller.
type call struct {
	scoped
	rows   batchRows
	row    row
	batch  pgx.Batch
	queued [6]pgx.QueuedQuery // BEGIN [READ ONLY], [Citus' propagation], context, statement, COMMIT, reset
	ptrs   [6]*pgx.QueuedQuery
	tok    [1]any
	// The direct path's batch and the token as its parameter.
	pb       pgconn.Batch
	tokParam [1][]byte
}

func (c *call) queue(sql string, args []any) {
	i := len(c.batch.QueuedQueries)
	c.queued[i] = pgx.QueuedQuery{SQL: sql, Arguments: args}
	c.batch.QueuedQueries = append(c.batch.QueuedQueries, &c.queued[i])
}

// send queues the context, then sql, then the reset, in one batch: one round trip, one transaction. tok
// "" runs sql with an empty context, which no tenant policy matches. readOnly work goes where ctx asks
// (see the package's read replicas); the rest to the primary, without the replicas' machinery.
func (p *Pool) send(ctx context.Context, readOnly bool, tok any, elevated bool, sql string, args []any) (c *call, err error) {
	if !readOnly || p.replicas == nil {
		return p.sendOn(ctx, p.pool, tok, elevated, sql, args)
	}
	err = p.onReader(ctx, readOnly, func(pool *pgxpool.Pool) (err error) {
		c, err = p.sendOn(ctx, pool, tok, elevated, sql, args)
		return err
	})
	return c, err
}

func (p *Pool) sendOn(ctx context.Context, pool *pgxpool.Pool, tok any, elevated bool, sql string, args []any) (*call, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	c := &call{}
	enter := p.enter.Load() && !p.citus
	if p.direct && !elevated && directArgs(args) {
		c.scoped = scoped{p: p, c: conn, sql: sql}
		if err := p.sendDirect(ctx, c, enter, tok, sql, args); err != nil {
			p.enterGone(err)
			c.trace(ctx, err)
			c.close(pgconn.CommandTag{})
			return nil, p.recordFailure(ctx, sql, err)
		}
		return c, nil
	}
	c.batch.QueuedQueries = c.ptrs[:0]
	// In Citus mode the context is a SET LOCAL, which needs a transaction block (see citus.go).
	block := elevated || p.citus
	switch {
	case elevated:
		c.queue(beginReadOnly, nil)
	case block:
		c.queue(beginBlock, nil)
	}
	switch {
	case p.citus:
		c.queue(citusPropagate, nil)
		c.queue(citusStatement(tok), nil)
	case enter:
		c.tok[0] = tok
		c.queue(enterContext, c.tok[:])
	default:
		c.tok[0] = tok
		c.queue(setContext, c.tok[:])
	}
	before := len(c.batch.QueuedQueries)
	c.queue(sql, args)
	if block {
		c.queue(commitBlock, nil)
	}
	if !enter {
		c.queue(resetSession, nil)
	}
	c.scoped = scoped{p: p, c: conn, br: conn.SendBatch(ctx, &c.batch)}
	for range before {
		if _, err := c.br.Exec(); err != nil {
			p.enterGone(err)
			c.close(pgconn.CommandTag{})
			return nil, p.recordFailure(ctx, sql, err)
		}
	}
	return c, nil
}

// The transaction block around a statement under an elevation (read-only) or in Citus mode.
const (
	beginReadOnly = "BEGIN READ ONLY"
	beginBlock    = "BEGIN"
	commitBlock   = "COMMIT"
)

// close reads the rest of the batch and returns the connection to the pool, to be swept first when
// anything failed or the statement (tag) was not one of those that change nothing in the session
// beyond its settings, which the batch's reset undoes.
func (s *scoped) close(tag pgconn.CommandTag) error {
	if s.closed {
		return s.err
	}
	s.closed = true
	switch {
	case s.mrr != nil:
		s.err = s.mrr.Close()
	case s.br != nil:
		s.err = s.br.Close()
	}
	dml := tag.Select() || tag.Insert() || tag.Update() || tag.Delete() || strings.HasPrefix(tag.String(), "MERGE")
	s.p.release(s.c, s.err != nil || !dml)
	return s.err
}

// Exec runs one statement under the tenant context in a single round trip; under an elevation, in a
// read-only transaction. It always runs on the primary.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tok, elevated, err := p.token(ctx, sql)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	s, err := p.send(ctx, false, tok, elevated, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	var tag pgconn.CommandTag
	if s.mrr != nil {
		if err = nextDirect(&s.scoped); err == nil {
			tag, err = s.mrr.ResultReader().Close()
		}
		s.trace(ctx, err)
	} else {
		tag, err = s.br.Exec()
	}
	if cerr := s.close(tag); err == nil {
		err = cerr
	}
	return tag, p.recordFailure(ctx, sql, err)
}

// Query runs one query under the tenant context in a single round trip; under an elevation, in a
// read-only transaction. It runs on a read replica when ctx asks for one (see the package's read
// replicas): a write there fails with SQLSTATE 25006 and writes nothing. Close the rows
// (pgx.CollectRows does) to return the connection to the pool.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	tok, elevated, err := p.token(ctx, sql)
	if err != nil {
		return nil, err
	}
	return p.query(ctx, tok, elevated, sql, args)
}

func (p *Pool) query(ctx context.Context, tok any, elevated bool, sql string, args []any) (pgx.Rows, error) {
	c, err := p.queryCall(ctx, tok, elevated, sql, args)
	if err != nil {
		return nil, err
	}
	return &c.rows, nil
}

func (p *Pool) queryCall(ctx context.Context, tok any, elevated bool, sql string, args []any) (*call, error) {
	c, err := p.send(ctx, true, tok, elevated, sql, args)
	if err != nil {
		return nil, err
	}
	var rows pgx.Rows
	if c.mrr != nil {
		if err = nextDirect(&c.scoped); err == nil {
			rows = pgx.RowsFromResultReader(c.c.Conn().TypeMap(), c.mrr.ResultReader())
		} else {
			c.trace(ctx, err)
		}
	} else {
		rows, err = c.br.Query()
	}
	if err != nil {
		c.close(pgconn.CommandTag{})
		return nil, p.recordFailure(ctx, sql, err)
	}
	c.rows = batchRows{Rows: rows, s: &c.scoped, ctx: ctx, pool: p, sql: sql}
	return c, nil
}

// QueryRow runs a query expected to return at most one row; errors surface at Scan, pgx.ErrNoRows when
// there is no row. It runs where [Pool.Query] does.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	tok, elevated, err := p.token(ctx, sql)
	if err != nil {
		return &row{err: err}
	}
	c, err := p.queryCall(ctx, tok, elevated, sql, args)
	if err != nil {
		return &row{err: err}
	}
	c.row = row{rows: &c.rows}
	return &c.row
}

// batchRows closes the batch, and so releases the connection, when the rows are closed.
type batchRows struct {
	pgx.Rows
	s        *scoped
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
	if r.s.mrr != nil {
		r.s.trace(r.ctx, r.Rows.Err())
	}
	r.closeErr = r.s.close(r.Rows.CommandTag())
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
