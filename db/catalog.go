package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Relation describes a table as the catalog sees it.
type Relation struct {
	Schema, Name string
	// Columns maps each column name to its type, as format_type prints it (uuid, bytea, bigint ...).
	Columns map[string]string
}

// QualifiedName returns the quoted schema-qualified name, safe to splice into SQL.
func (r Relation) QualifiedName() string { return pgx.Identifier{r.Schema, r.Name}.Sanitize() }

// Describe reads a table's columns from the catalog. It is the one query that needs no Principal: it
// reads no tenant's rows, only the schema, so repositories can check their mapping at construction.
func (p *Pool) Describe(ctx context.Context, table string) (Relation, error) {
	rows, err := p.Unscoped().Query(ctx, `SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.oid = to_regclass($1) ORDER BY a.attnum`, table)
	if err != nil {
		return Relation{}, fmt.Errorf("db: describe %s: %w", table, err)
	}
	r := Relation{Columns: map[string]string{}}
	var col, typ string
	_, err = pgx.ForEachRow(rows, []any{&r.Schema, &r.Name, &col, &typ}, func() error {
		r.Columns[col] = typ
		return nil
	})
	if err != nil {
		return Relation{}, fmt.Errorf("db: describe %s: %w", table, err)
	}
	if len(r.Columns) == 0 {
		return Relation{}, fmt.Errorf("db: describe %s: no such table visible to the app role", table)
	}
	return r, nil
}

// Unscoped runs queries with no tenant context at all, for the catalog and global tables (such as
// tenantseal.encrypted_columns) at startup, before any request has a Principal. Row-level security
// shows it no tenant's rows and refuses its writes to tenant tables: it fails closed, like any
// statement without a context. The context is set empty, transaction-locally, in the same round trip,
// so that no context left in the session (by SQL that set one without LOCAL) can apply.
type Unscoped struct{ p *Pool }

// Unscoped returns the pool's context-free query runner.
func (p *Pool) Unscoped() Unscoped { return Unscoped{p} }

// Query runs sql with an empty tenant context.
func (u Unscoped) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return u.p.query(ctx, "", false, sql, args)
}

// QueryRow runs sql, expected to return at most one row, with an empty tenant context.
func (u Unscoped) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := u.Query(ctx, sql, args...)
	return &row{rows: rows, err: err}
}
