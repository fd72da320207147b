package db

import (
	"context"
	"errors"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The direct send path. In the default exec mode (cache_statement) a scoped statement's batch goes out
// through pgconn's ExecBatch on statements the connection prepared once: one write and one read loop,
// with none of the bookkeeping of pgx's pipeline (a queue entry, a result reader and a description
// lookup per statement). The token is bound as a text parameter straight from the string Pool.token
// keeps, never copied into a new buffer. The batch and its round trip are the same as on pgx's path:
// the same statements, one Sync, one implicit transaction.
//
// Pool.direct is set at Open. The path is not taken for an elevation (its batch is a transaction block),
// in Citus mode, in the other exec modes (pgbouncer's), with a tracer of the application's own in
// ConnConfig.Tracer (it expects to see every batch), or for a statement whose first argument is one of
// pgx's query options: pgx's batch takes those as it always has (it rewrites a pgx.QueryRewriter such as
// pgx.NamedArgs, and refuses the others, pgx.QueryExecMode, pgx.QueryResultFormats and
// pgx.QueryResultFormatsByOID, as arguments of a batched query).

// directStatementsKey keys, in the connection's CustomData, the statements of the direct path that the
// connection has prepared (a *directStatements).
const directStatementsKey = "tenantseal.direct"

// directStatementsMax bounds the statements one connection keeps prepared for the direct path; past it
// they are all deallocated and prepared again as they are used (pgx's own default bound is 512).
const directStatementsMax = 512

// directStatements is a connection's state for the direct path: its prepared statements, and the
// builder of the statement's arguments, whose buffers serve every batch on the connection (its values
// are copied into the batch as it is built; its result formats are read by the batch's results, which
// are all read before the connection goes back to the pool).
type directStatements struct {
	bySQL map[string]*pgconn.StatementDescription
	eqb   pgx.ExtendedQueryBuilder
}

// directArgs reports whether args can be bound by the direct path: none of pgx's query options.
func directArgs(args []any) bool {
	if len(args) == 0 {
		return true
	}
	switch args[0].(type) {
	case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID, pgx.QueryRewriter:
		return false
	}
	return true
}

// statementsOf returns what conn's direct path has prepared, after deallocating everything when that
// is directStatementsMax statements or more: a batch's statements, prepared by prepared, then all stay.
func statementsOf(ctx context.Context, conn *pgx.Conn) (*directStatements, error) {
	data := conn.PgConn().CustomData()
	ds, _ := data[directStatementsKey].(*directStatements)
	if ds == nil {
		ds = &directStatements{bySQL: make(map[string]*pgconn.StatementDescription)}
		data[directStatementsKey] = ds
	}
	if len(ds.bySQL) >= directStatementsMax {
		if err := conn.DeallocateAll(ctx); err != nil {
			return nil, err
		}
		clear(ds.bySQL)
	}
	return ds, nil
}

// prepared returns the description of sql on conn, preparing it on first use.
func (ds *directStatements) prepared(ctx context.Context, conn *pgx.Conn, sql string) (*pgconn.StatementDescription, error) {
	if sd := ds.bySQL[sql]; sd != nil {
		return sd, nil
	}
	sd, err := conn.Prepare(ctx, sql, sql)
	if err != nil {
		return nil, err
	}
	ds.bySQL[sql] = sd
	return sd, nil
}

// forgetPrepared drops what conn's direct path knows of its prepared statements: after DEALLOCATE ALL.
func forgetPrepared(conn *pgx.Conn) {
	delete(conn.PgConn().CustomData(), directStatementsKey)
}

// tokenParam is the token as a text parameter: a view of the string's bytes (pgconn copies them into
// the message), or nil (SQL NULL) for anything but a string.
func tokenParam(tok any) []byte {
	t, ok := tok.(string)
	switch {
	case !ok:
		return nil
	case t == "":
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(t), len(t))
}

// sendDirect sends c's batch (the context, sql with args, and the reset where the verifier does not
// reset itself) on conn by the direct path, and reads the context's result. On success the statement's
// result is next on c.mrr.
func (p *Pool) sendDirect(ctx context.Context, c *call, enter bool, tok any, sql string, args []any) error {
	conn := c.c.Conn()
	ctxSQL := setContext
	if enter {
		ctxSQL = enterContext
	}
	ds, err := statementsOf(ctx, conn)
	if err != nil {
		return err
	}
	ctxSD, err := ds.prepared(ctx, conn, ctxSQL)
	if err != nil {
		return err
	}
	sd, err := ds.prepared(ctx, conn, sql)
	if err != nil {
		return err
	}
	var resetSD *pgconn.StatementDescription
	if !enter {
		if resetSD, err = ds.prepared(ctx, conn, resetSession); err != nil {
			return err
		}
	}
	eqb := &ds.eqb
	if err := eqb.Build(conn.TypeMap(), sd, args); err != nil {
		return err
	}
	c.tokParam[0] = tokenParam(tok)
	c.pb.ExecStatement(ctxSD, c.tokParam[:], nil, nil)
	c.pb.ExecStatement(sd, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats)
	if resetSD != nil {
		c.pb.ExecStatement(resetSD, nil, nil, nil)
	}
	c.mrr = conn.PgConn().ExecBatch(ctx, &c.pb)
	if !c.mrr.NextResult() {
		return c.mrr.Close()
	}
	_, err = c.mrr.ResultReader().Close()
	return err
}

// nextDirect moves s.mrr to the statement's result, or returns why there is none.
func nextDirect(s *scoped) error {
	if s.mrr.NextResult() {
		return nil
	}
	if err := s.mrr.Close(); err != nil {
		return err
	}
	return errNoResult
}

var errNoResult = errors.New("db: the server sent no result for the statement")

// trace counts the direct path's statement in the pool's metrics, once: err is how it ended.
func (s *scoped) trace(ctx context.Context, err error) {
	if s.traced {
		return
	}
	s.traced = true
	t := tracer{m: s.p.metrics}
	t.end(ctx, s.sql, err)
}
