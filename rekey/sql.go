package rekey

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// The columns that rekey assumes every registered table has: the tenant, and the uuid row key that is
// also the row of each ciphertext's associated data. The registry does not name them (yet): this is the
// one place that does.
var (
	tenantColumn = pgx.Identifier{"tenant_id"}.Sanitize()
	idColumn     = pgx.Identifier{"id"}.Sanitize()
)

// firstID sorts before every row key: a run starts after it.
const firstID = "00000000-0000-0000-0000-000000000000"

// table is one registered table with the statements rekey runs on it, built once from its identifiers.
type table struct {
	name  string // as regclass text, for messages
	ident string // schema-qualified and quoted
	cols  []pgstore.Column
	// count: $1 tenant. read: $1 tenant, $2 the last row key read, $3 the batch size; it selects the row
	// key, then each column's ciphertext and, where it has one, its blind index.
	count, read string
	nvals       int // values read per row after the row key
}

// tables groups the registry's columns by table, keeping its order.
func tables(cols []pgstore.Column) []*table {
	var out []*table
	for _, c := range cols {
		if n := len(out); n > 0 && out[n-1].name == c.Table {
			out[n-1].cols = append(out[n-1].cols, c)
			continue
		}
		out = append(out, &table{name: c.Table, ident: c.Ident().Sanitize(), cols: []pgstore.Column{c}})
	}
	for _, t := range out {
		var sel []string
		for _, c := range t.cols {
			sel = append(sel, pgx.Identifier{c.Column}.Sanitize())
			if c.BlindIndex != "" {
				sel = append(sel, pgx.Identifier{c.BlindIndex}.Sanitize())
			}
		}
		t.nvals = len(sel)
		t.count = "SELECT count(*) FROM " + t.ident + " WHERE " + tenantColumn + " = $1"
		t.read = "SELECT " + idColumn + "::text, " + strings.Join(sel, ", ") + " FROM " + t.ident +
			" WHERE " + tenantColumn + " = $1 AND " + idColumn + " > $2::uuid ORDER BY " + idColumn + " LIMIT $3"
	}
	return out
}

// update returns the statement that applies sets to one row if conds still hold: $1 the tenant, $2 the
// row key, then the parameters that sets and conds name (see [param]).
func (t *table) update(sets, conds []string) string {
	return "UPDATE " + t.ident + " SET " + strings.Join(sets, ", ") + " WHERE " + tenantColumn + " = $1 AND " +
		idColumn + " = $2::uuid AND " + strings.Join(conds, " AND ")
}

// firstParam is the number of the first parameter after the tenant and the row key of [table.update].
const firstParam = 3

// param returns the placeholder of parameter n.
func param(n int) string { return "$" + strconv.Itoa(n) }

// usageSQL counts, for $1 the tenant, the values of column (of c's table) by the 4-byte key id that
// starts at byte from (1-based): 2 for a ciphertext after Tink's version byte, 1 for a blind index; and
// how many of them belong to values on the quarantine list, which names the ciphertext column c.Column
// ($2 the table, $3 that column).
func usageSQL(c pgstore.Column, column string, from int) string {
	col := "t." + pgx.Identifier{column}.Sanitize()
	return "SELECT substring(" + col + " FROM " + strconv.Itoa(from) + " FOR 4), count(*), count(q.row_key) FROM " + c.Ident().Sanitize() +
		" t LEFT JOIN tenantseal.quarantine q ON q.tenant_id = t." + tenantColumn + " AND q.table_name = $2::regclass AND q.column_name = $3" +
		" AND q.row_key = t." + idColumn + "::text WHERE t." + tenantColumn + " = $1 AND " + col + " IS NOT NULL GROUP BY 1"
}
