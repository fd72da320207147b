package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/keys"
)

// Column is an encrypted column as registered in tenantseal.encrypted_columns.
type Column struct {
	Table      string // the relation as regclass text, for messages: customers, app.customers, "Odd Name"
	Schema     string // the relation's schema
	Name       string // the relation's name without schema: the table part of the associated data
	Column     string
	BlindIndex string // blind index column, "" for none
	Normalizer string // a name [keys.NormalizerByName] knows
}

// Ident returns the column's table as a schema-qualified identifier, for building SQL with
// [pgx.Identifier.Sanitize].
func (c Column) Ident() pgx.Identifier { return pgx.Identifier{c.Schema, c.Name} }

// Columns reads the registry of encrypted columns, ordered by table and column. It fails on a
// normalizer that [keys.NormalizerByName] does not know.
func Columns(ctx context.Context, q Querier) ([]Column, error) {
	rows, err := q.Query(ctx, `SELECT e.table_name::text, n.nspname::text, c.relname::text, e.column_name::text,
			coalesce(e.blind_index_column::text, ''), e.normalizer
		FROM tenantseal.encrypted_columns e JOIN pg_class c ON c.oid = e.table_name JOIN pg_namespace n ON n.oid = c.relnamespace
		ORDER BY 1, 4`)
	if err != nil {
		return nil, wrap("read encrypted columns", err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Column, error) {
		var c Column
		return c, r.Scan(&c.Table, &c.Schema, &c.Name, &c.Column, &c.BlindIndex, &c.Normalizer)
	})
	if err != nil {
		return nil, wrap("read encrypted columns", err)
	}
	for _, c := range cols {
		if _, ok := keys.NormalizerByName(c.Normalizer); !ok {
			return nil, fmt.Errorf("pgstore: %s.%s: unknown normalizer %q", c.Table, c.Column, c.Normalizer)
		}
	}
	return cols, nil
}
