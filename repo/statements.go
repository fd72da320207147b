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
	insertHead string // INSERT INTO ... (columns) VALUES
	insertTail string // RETURNING the pk, then the readBack fields
	insertArgs []arg  // what each inserted row binds, in column order
	insertOne  string // the INSERT of one row
	readBack   []int  // fields the database sets, read back by Insert and Update
	// genInsert inserts one row whose key the database generates: every column but the pk and the
	// encrypted ones (their ciphertexts are bound to the key, not known yet), binding genArgs, returning
	// as insertTail does. "" when the database generates no key.
	genInsert string
	genArgs   []arg
	// seal writes the encrypted fields of a row genInsert inserted, once its key is known: $1 tenant,
	// $2 id, then sealArgs; it returns as insertTail does. "" when there is nothing to seal.
	seal       string
	sealArgs   []arg
	selectFrom string            // SELECT selectList FROM ... WHERE tenant = $1
	countFrom  string            // SELECT count(*) FROM ... WHERE tenant = $1
	pkAfter    string            // AND pk >
	orderBy    string            // ORDER BY tenant, pk
	findBy     map[string]string // blind-indexed column -> its lookup: $1 tenant, $2 the candidate indexes
}

// arg is one bound value of a written row: the value of a field (its ciphertext when it is encrypted)
// or, with blindIndex, the blind index of the field's plaintext.
type arg struct {
	field      int
	blindIndex bool
}

// ident returns the column a binds, quoted.
func (a arg) ident(s *schema) string {
	f := s.fields[a.field]
	if a.blindIndex {
		return ident(f.blindIndex)
	}
	return f.ident
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// placeholder returns $n.
func placeholder(n int) string { return "$" + strconv.Itoa(n) }

func buildStatements(s *schema) *statements {
	st := &statements{findBy: map[string]string{}}
	rel := s.rel.QualifiedName()
	tenant, pk := s.tenantField().ident, s.pkField().ident
	key := tenant + " = $1 AND " + pk + " = $2"

	var cols, insCols, genCols, sealSets, sets, ret []string
	for i, f := range s.fields {
		cols = append(cols, f.ident)
		switch {
		case f.readonly || f.updated || i == s.version:
			// Set by the database: by a default on Insert, by now() or the increment on Update.
			ret = append(ret, f.ident)
			st.readBack = append(st.readBack, i)
		default:
			written := []arg{{field: i}}
			if f.blindIndex != "" {
				written = append(written, arg{field: i, blindIndex: true})
			}
			for _, a := range written {
				insCols = append(insCols, a.ident(s))
				st.insertArgs = append(st.insertArgs, a)
				switch {
				case i == s.pk:
				case f.encrypted:
					st.sealArgs = append(st.sealArgs, a)
					sealSets = append(sealSets, a.ident(s)+" = "+placeholder(len(st.sealArgs)+2))
				default:
					genCols = append(genCols, a.ident(s))
					st.genArgs = append(st.genArgs, a)
				}
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
	st.insertOne = st.insert(1, len(st.insertArgs))
	if s.gen != noDefault {
		vals := make([]string, len(genCols))
		for j := range vals {
			vals[j] = placeholder(j + 1)
		}
		st.genInsert = "INSERT INTO " + rel + " (" + strings.Join(genCols, ", ") + ") VALUES (" + strings.Join(vals, ", ") + ")" + st.insertTail
		if len(sealSets) > 0 {
			st.seal = "UPDATE " + rel + " SET " + strings.Join(sealSets, ", ") + " WHERE " + key + st.insertTail
		}
	}

	where := key
	if s.version >= 0 {
		v := s.fields[s.version].ident
		sets = append(sets, v+" = "+v+" + 1")
		where += " AND " + v + " = " + placeholder(len(st.updateArgs)+3)
	}
	if len(sets) == 0 {
		// Nothing to write: still tell a missing row apart. A GENERATED ALWAYS key may not be set even
		// to itself; the tenant column may (the policy checks it).
		sets = append(sets, tenant+" = "+tenant)
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
	return st
}

// insert returns the INSERT of rows rows of width values each, numbering placeholders from $1.
func (st *statements) insert(rows, width int) string {
	if rows == 1 && st.insertOne != "" {
		return st.insertOne
	}
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
