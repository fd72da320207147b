package db

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the instrumentation scope of the pool's instruments.
const MeterName = "github.com/tenantseal/tenantseal/db"

// RefusalClass is the value of the tenantseal.refusal attribute of the tenantseal.db.refusals counter.
type RefusalClass string

// Classes of refusals. The first three are the database's, counted by the tracer that [Open] installs
// from the SQLSTATE of every failed statement; the last two are the library's, refused before any SQL.
const (
	RefusalInvalidContext RefusalClass = "invalid_context"        // TS401: a tenant context token refused
	RefusalRLS            RefusalClass = "rls_violation"          // 42501 from a row-level security policy
	RefusalPrivilege      RefusalClass = "insufficient_privilege" // 42501 otherwise: a privilege the role lacks
	RefusalTenantMismatch RefusalClass = "tenant_mismatch"        // a row naming a tenant other than the Principal's
	RefusalNoTenant       RefusalClass = "no_tenant"              // a statement without a Principal
)

// Attribute keys of the pool's instruments. No instrument carries a tenant id (unbounded cardinality,
// and a tenant list for whoever reads the metrics), a token, a key or a connection string.
const (
	AttrRefusal   = attribute.Key("tenantseal.refusal")
	AttrSQLState  = attribute.Key("db.response.status_code")
	AttrOperation = attribute.Key("db.operation.name")
	AttrOutcome   = attribute.Key("tenantseal.outcome") // "ok" or "error"
)

// metrics are the pool's instruments, with the options of statements built once: an attribute set and
// the slice of options passed on are allocations, which the statements' path should not pay.
type metrics struct {
	statements metric.Int64Counter
	refusals   metric.Int64Counter
	ok, failed [][]metric.AddOption // by index in operations
}

// operations are the values of the db.operation.name attribute: a closed set, so that arbitrary SQL
// cannot grow the number of series; any other command is "other", the last.
var operations = []string{"select", "insert", "update", "delete", "merge", "with", "values", "table", "call",
	"begin", "start", "commit", "rollback", "savepoint", "release", "set", "reset", "show",
	"lock", "copy", "declare", "fetch", "close", "listen", "unlisten", "notify", "discard", "deallocate", "other"}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(MeterName)
	statements, err := m.Int64Counter("tenantseal.db.statements", metric.WithUnit("{statement}"),
		metric.WithDescription("Statements sent through the pool, without the tenant context and session reset around them."))
	if err != nil {
		return nil, fmt.Errorf("db: metrics: %w", err)
	}
	refusals, err := m.Int64Counter("tenantseal.db.refusals", metric.WithUnit("{refusal}"),
		metric.WithDescription("Statements refused: by the database (invalid tenant context, row-level security, privilege) or before any SQL (tenant mismatch, no tenant)."))
	if err != nil {
		return nil, fmt.Errorf("db: metrics: %w", err)
	}
	ms := &metrics{statements: statements, refusals: refusals}
	for _, op := range operations {
		ms.ok = append(ms.ok, []metric.AddOption{metric.WithAttributes(AttrOperation.String(op), AttrOutcome.String("ok"))})
		ms.failed = append(ms.failed, []metric.AddOption{metric.WithAttributes(AttrOperation.String(op), AttrOutcome.String("error"))})
	}
	return ms, nil
}

// operationIndex is the index in operations of sql's command, of "other" when it is none of them;
// without allocating.
func operationIndex(sql string) int {
	op := command(sql)
	for i, name := range operations {
		if strings.EqualFold(op, name) {
			return i
		}
	}
	return len(operations) - 1
}

// instrument returns a copy of pc whose connections trace their statements into m, after (and beside)
// whatever tracer pc already has.
func (m *metrics) instrument(pc *pgxpool.Config) *pgxpool.Config {
	pc = pc.Copy()
	t := &tracer{m: m}
	if own := pc.ConnConfig.Tracer; own != nil {
		pc.ConnConfig.Tracer = multitracer.New(own, t)
	} else {
		pc.ConnConfig.Tracer = t
	}
	return pc
}

// refused counts a refusal of the library's own, made before any SQL.
func (m *metrics) refused(ctx context.Context, kind tenantseal.EventKind) {
	var class RefusalClass
	switch kind {
	case tenantseal.EventTenantMismatch:
		class = RefusalTenantMismatch
	case tenantseal.EventNoTenant:
		class = RefusalNoTenant
	default:
		return
	}
	m.refusals.Add(ctx, 1, metric.WithAttributes(AttrRefusal.String(string(class))))
}

// tracer counts statements and the database's refusals. It is a pgx.QueryTracer and pgx.BatchTracer.
type tracer struct{ m *metrics }

// The tracer keeps what it needs between the start and the end of a statement or batch in the
// connection's CustomData (a connection runs one at a time), not in a context.Context: a value there is
// an allocation per statement. The values are small integers and booleans, which need none either.
const (
	tracedOperation = "tenantseal.traced_operation" // int: index in operations
	tracedFailed    = "tenantseal.traced_batch_failed"
)

func (t *tracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	conn.PgConn().CustomData()[tracedOperation] = operationIndex(data.SQL)
	return ctx
}

func (t *tracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	op, ok := conn.PgConn().CustomData()[tracedOperation].(int)
	if !ok {
		op = len(operations) - 1
	}
	t.count(ctx, op, data.Err)
	t.refusal(ctx, data.Err)
}

// A batch can also fail before any statement runs (a statement that does not parse, in the modes that
// prepare the whole batch first): the batch's end counts that refusal when no statement's did.
func (t *tracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	conn.PgConn().CustomData()[tracedFailed] = false
	return ctx
}

func (t *tracer) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	if data.Err != nil {
		conn.PgConn().CustomData()[tracedFailed] = true
	}
	t.end(ctx, data.SQL, data.Err)
}

func (t *tracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if failed, _ := conn.PgConn().CustomData()[tracedFailed].(bool); !failed && data.Err != nil {
		t.refusal(ctx, data.Err)
	}
}

// end counts one statement, unless it is the framing the pool adds around every statement, and its
// refusal if the database refused it.
func (t *tracer) end(ctx context.Context, sql string, err error) {
	if !framing(sql) {
		t.count(ctx, operationIndex(sql), err)
	}
	t.refusal(ctx, err)
}

// count counts one statement of operations[op].
func (t *tracer) count(ctx context.Context, op int, err error) {
	opts := t.m.ok[op]
	if err != nil {
		opts = t.m.failed[op]
	}
	t.m.statements.Add(ctx, 1, opts...)
}

// refusal counts err if it is a refusal of the database.
func (t *tracer) refusal(ctx context.Context, err error) {
	if err == nil {
		return // before errors.As, whose target escapes: no allocation for a statement that succeeded
	}
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return
	}
	if class, ok := refusalClass(pg); ok {
		t.m.refusals.Add(ctx, 1, metric.WithAttributes(AttrRefusal.String(string(class)), AttrSQLState.String(pg.Code)))
	}
}

// refusalClass tells the refusals of the database from other failures.
func refusalClass(pg *pgconn.PgError) (RefusalClass, bool) {
	switch {
	case pg.Code == SQLStateInvalidContext:
		return RefusalInvalidContext, true
	case pg.Code == "42501" && strings.Contains(pg.Message, "row-level security"):
		return RefusalRLS, true
	case pg.Code == "42501":
		return RefusalPrivilege, true
	}
	return "", false
}
