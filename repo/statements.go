package repo

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// statements are a table's SQL, built once by New from the described columns: the tenant column and
// the pk column as tagged, every identifier through pgx.Identifier.Sanitize. A call adds placeholders
// only, where the length varies: the rows of an InsertMany, the conditions and cursor of List and Count.
type statements struct {
	selectList string // every mapped column, in field order
	get        string // $1 tenant, $2 id
	del        string // $1 tenant, $2 id
	// update is one round trip that tells success (true), a stale version (false) and a missing row (no
	// row) apart: $1 tenant, $2 id, then updateArgs, then the expected version. It returns the flag, the
	// pk, then the readBack fields.
	update     string
	updateArgs []arg
	insertHead string            // INSERT INTO ... (columns) VALUES
	insertTail string            // RETURNING the pk, then the readBack fields
	insertArgs []arg             // what each inserted row binds, in column order
	readBack   []int             // fields the database sets, read back by Insert and Update
	selectFrom string            // SELECT selectList FROM ... WHERE tenant = $1
	countFrom  string            // SELECT count(*) FROM ... WHERE tenant = $1
	pkAfter    string            // AND pk >
	orderBy    string            // ORDER BY tenant, pk
	findBy     map[string]string // blind-indexed column -> its lookup: $1 tenant, $2 the candidate indexes
	// probe says whether tenantseal.exists_elsewhere can answer for this table: it assumes the columns
	// tenant_id and id.
	probe bool
}

// arg is one bound value of a written row: the value of a field (its ciphertext when it is encrypted)
// or, with blindIndex, the blind index of the field's plaintext.
type arg struct {
	field      int
	blindIndex bool
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// placeholder returns $n.
func placeholder(n int) string { return "$" + strconv.Itoa(n) }

func buildStatements(s *schema) *statements {
	st := &statements{findBy: map[string]string{}}
	rel := s.rel.QualifiedName()
	tenant, pk := s.tenantField().ident, s.pkField().ident
	key := tenant + " = $1 AND " + pk + " = $2"

	var cols, insCols, sets, ret []string
	for i, f := range s.fields {
		cols = append(cols, f.ident)
		switch {
		case f.readonly || f.updated || i == s.version:
			// Set by the database: by a default on Insert, by now() or the increment on Update.
			ret = append(ret, f.ident)
			st.readBack = append(st.readBack, i)
		default:
			insCols = append(insCols, f.ident)
			st.insertArgs = append(st.insertArgs, arg{field: i})
			if f.blindIndex != "" {
				insCols = append(insCols, ident(f.blindIndex))
				st.insertArgs = append(st.insertArgs, arg{field: i, blindIndex: true})
			}
		}
		switch {
		case i == s.pk || i == s.tenant || f.readonly || i == s.version:
		case f.updated:
			sets = append(sets, f.ident+" = now()")
		default:
			st.updateArgs = append(st.updateArgs, arg{field: i})
			sets = append(sets, f.ident+" = "+placeholder(len(st.updateArgs)+2))
			if f.blindIndex != "" {
				st.updateArgs = append(st.updateArgs, arg{field: i, blindIndex: true})
				sets = append(sets, ident(f.blindIndex)+" = "+placeholder(len(st.updateArgs)+2))
			}
		}
	}
	st.selectList = strings.Join(cols, ", ")
	st.selectFrom = "SELECT " + st.selectList + " FROM " + rel + " WHERE " + tenant + " = $1"
	st.countFrom = "SELECT count(*) FROM " + rel + " WHERE " + tenant + " = $1"
	st.pkAfter = " AND " + pk + " > "
	st.orderBy = " ORDER BY " + tenant + ", " + pk
	st.get = st.selectFrom + " AND " + pk + " = $2"
	st.del = "DELETE FROM " + rel + " WHERE " + key
	returning := strings.Join(append([]string{pk}, ret...), ", ")
	st.insertHead = "INSERT INTO " + rel + " (" + strings.Join(insCols, ", ") + ") VALUES "
	st.insertTail = " RETURNING " + returning

	where := key
	if s.version >= 0 {
		v := s.fields[s.version].ident
		sets = append(sets, v+" = "+v+" + 1")
		where += " AND " + v + " = " + placeholder(len(st.updateArgs)+3)
	}
	if len(sets) == 0 {
		sets = append(sets, pk+" = "+pk) // nothing to write: still tell a missing row apart
	}
	// The row of false takes its NULLs from u itself (an outer join that matches nothing), so that no
	// type name is spelled here.
	st.update = "WITH u AS (UPDATE " + rel + " SET " + strings.Join(sets, ", ") + " WHERE " + where + " RETURNING " + returning + ")\n" +
		"SELECT true, u.* FROM u\n" +
		"UNION ALL\n" +
		"SELECT false, u.* FROM (VALUES (1)) AS one (x) LEFT JOIN u ON false\n" +
		" WHERE NOT EXISTS (SELECT 1 FROM u) AND EXISTS (SELECT 1 FROM " + rel + " WHERE " + key + ")"

	for _, f := range s.fields {
		if f.blindIndex != "" {
			st.findBy[f.column] = st.selectFrom + " AND " + ident(f.blindIndex) + " = ANY($2)" + st.orderBy + " LIMIT " + strconv.Itoa(MaxLimit)
		}
	}
	st.probe = s.tenantField().column == "tenant_id" && s.pkField().column == "id"
	return st
}

// insert returns the INSERT of rows rows of width values each, numbering placeholders from $1.
func (st *statements) insert(rows, width int) string {
	var sb strings.Builder
	sb.WriteString(st.insertHead)
	n := 0
	for r := 0; r < rows; r++ {
		if r > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('(')
		for j := 0; j < width; j++ {
			if j > 0 {
				sb.WriteString(", ")
			}
			n++
			sb.WriteString(placeholder(n))
		}
		sb.WriteByte(')')
	}
	sb.WriteString(st.insertTail)
	return sb.String()
}
