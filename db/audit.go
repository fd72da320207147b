package db

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"unicode"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5/pgconn"
)

// Record passes e to Config.Recorder, if one is set, and counts the refusals among the attempts in
// tenantseal.db.refusals. Repositories use it for the attempts they detect.
func (p *Pool) Record(ctx context.Context, e tenantseal.Event) {
	p.metrics.refused(ctx, e.Kind)
	if p.cfg.Recorder != nil {
		p.cfg.Recorder.Record(ctx, e)
	}
}

// operation names the statement's command for an event: its first keyword, lower-cased.
func operation(sql string) string { return strings.ToLower(command(sql)) }

// command is the first word of sql, after comments, as written: at most 16 bytes.
func command(sql string) string {
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
			p.Record(ctx, tenantseal.Event{Kind: tenantseal.EventInvalidContext, Operation: operation(stmt), SQLState: pg.Code, Detail: pg.Message})
		case pg.Code == "42501" && strings.Contains(pg.Message, "row-level security"):
			table := pg.TableName
			if m := rlsTable.FindStringSubmatch(pg.Message); table == "" && m != nil {
				table = m[1]
			}
			p.Record(ctx, tenantseal.Event{Kind: tenantseal.EventRefusedWrite, Table: table, Operation: operation(stmt), SQLState: pg.Code})
		}
	}
	return classify(err)
}
