package db

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5/pgconn"
)

// Kinds of cross-tenant attempts, as recorded in the audit log.
const (
	EventRefusedWrite   = "refused_write"       // a write refused by a policy's WITH CHECK (42501)
	EventForeignID      = "foreign_id"          // a lookup by id that hit another tenant's row
	EventTenantMismatch = "tenant_mismatch"     // a struct naming a tenant other than the Principal's
	EventNoTenant       = "no_tenant"           // a statement attempted without a Principal
	EventInvalidContext = "invalid_context"     // a forged, altered, expired or wrong-key token (TS401)
	EventTampered       = "tampered_ciphertext" // a ciphertext that does not decrypt for its row
	EventElevation      = "elevation"           // a use of just-in-time elevation
)

// Event is one cross-tenant attempt as the layer that saw it describes it. The recorder adds the time,
// the Principal and the request id from the context. No field may hold plaintext, tokens or keys.
type Event struct {
	Kind         string
	TargetTenant TenantID // the tenant whose row was aimed at, zero when unknown
	Table        string
	Operation    string // select, insert, update, delete, tx, ...
	RowKey       string
	SQLState     string
	Detail       string
}

// Recorder receives events. It must not block for long: the audit package's Writer queues them and
// writes them out of band, on its own connection, so that they survive the failing transaction.
type Recorder interface {
	Record(ctx context.Context, e Event)
}

// Record passes e to Config.Recorder, if one is set. Repositories use it for the attempts they detect.
func (p *Pool) Record(ctx context.Context, e Event) {
	if p.cfg.Recorder != nil {
		p.cfg.Recorder.Record(ctx, e)
	}
}

// operation names the statement's command for an event: its first keyword, lower-cased.
func operation(sql string) string {
	sql = strings.TrimSpace(sql)
	for strings.HasPrefix(sql, "--") || strings.HasPrefix(sql, "/*") {
		if strings.HasPrefix(sql, "--") {
			_, sql, _ = strings.Cut(sql, "\n")
		} else {
			_, sql, _ = strings.Cut(sql, "*/")
		}
		sql = strings.TrimSpace(sql)
	}
	op := sql
	if i := strings.IndexFunc(sql, func(r rune) bool { return unicode.IsSpace(r) || r == '(' || r == ';' }); i >= 0 {
		op = sql[:i]
	}
	op = strings.ToLower(op)
	if len(op) > 16 {
		op = op[:16]
	}
	return op
}

var rlsTable = regexp.MustCompile(`row-level security policy for table "([^"]+)"`)

// recordFailure records the refusals that reveal a cross-tenant attempt, then classifies err. stmt is
// the statement (or a name such as "tx"); its command is worked out only when an event is recorded.
func (p *Pool) recordFailure(ctx context.Context, stmt string, err error) error {
	if err == nil {
		return nil
	}
	var pg *pgconn.PgError
	if p.cfg.Recorder != nil && errors.As(err, &pg) {
		switch {
		case pg.Code == SQLStateInvalidContext:
			p.Record(ctx, Event{Kind: EventInvalidContext, Operation: operation(stmt), SQLState: pg.Code, Detail: pg.Message})
		case pg.Code == "42501" && strings.Contains(pg.Message, "row-level security"):
			table := pg.TableName
			if m := rlsTable.FindStringSubmatch(pg.Message); table == "" && m != nil {
				table = m[1]
			}
			p.Record(ctx, Event{Kind: EventRefusedWrite, Table: table, Operation: operation(stmt), SQLState: pg.Code})
		}
	}
	return classify(err)
}
