package isolation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/uuid"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/keys"
)

// seedRow is one row the suite wrote, with every column as the database returned it in text form.
type seedRow struct {
	vals       map[string]*string
	referenced bool // a seeded child row points at it: not for DELETE or UPDATE cases
}

func (r *seedRow) val(c string) string {
	if v := r.vals[c]; v != nil {
		return *v
	}
	return ""
}

func newUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return uuid.Format(u)
}

func randInt(max int64) int64 {
	n, err := rand.Int(rand.Reader, big.NewInt(max))
	if err != nil {
		panic(err)
	}
	return n.Int64() + 1
}

// marker returns a value no other row holds, so that seeing it anywhere proves which row it came from.
// Every marker of a run starts with "ts" and the run's id: what the run wrote anywhere (a trigger's copy
// in a table without a tenant column included) is found by it again at the end.
func (s *suite) marker() string { return "ts" + s.runID + randomHex(4) }

var quoted = regexp.MustCompile(`'((?:[^']|'')*)'`)

// candidates are the values, in text form, tried in turn for column c until the row satisfies the
// table's CHECK constraints. A nil entry is NULL.
func candidates(t *table, c *column, mark string) []*string { return candidatesAt(t, c, mark, 0) }

// rotate returns list starting at element n (mod its length).
func rotate[T any](list []T, n int) []T {
	if len(list) == 0 {
		return list
	}
	n %= len(list)
	return append(slices.Clone(list[n:]), list[:n]...)
}

// candidatesAt is candidates for the row-th seeded row: the allowed values of an enum or a CHECK come
// in turn, so that the rows of a tenant hold each of them.
func candidatesAt(t *table, c *column, mark string, row int) []*string {
	s := func(v string) *string { return &v }
	var out []*string
	trunc := func(v string) string {
		if c.maxLen > 0 && len(v) > c.maxLen {
			return v[len(v)-c.maxLen:] // the random end of a marker: the run's prefix is the same in all
		}
		return v
	}
	var literals []string
	for _, ch := range t.checks {
		if slices.Contains(ch.cols, c.name) {
			for _, m := range quoted.FindAllStringSubmatch(ch.def, -1) {
				literals = append(literals, strings.ReplaceAll(m[1], "''", "'"))
			}
		}
	}
	literals = rotate(literals, row)
	switch {
	case len(c.enum) > 0:
		for _, l := range rotate(c.enum, row) {
			out = append(out, s(l))
		}
	case c.base == "uuid":
		out = append(out, s(newUUID()))
	case c.category == "S":
		out = append(out, s(trunc(mark)))
		for _, l := range literals {
			out = append(out, s(trunc(l)))
		}
		n := c.maxLen
		if n == 0 || n > 8 {
			n = 8
		}
		letters := make([]byte, n)
		for i := range letters {
			letters[i] = byte('A' + randInt(26) - 1)
		}
		out = append(out, s(string(letters)), s(strings.ToLower(string(letters))), s(trunc("1")), s("a"))
	case c.base == "int2":
		out = append(out, s(fmt.Sprint(randInt(32000))))
	case c.base == "int4", c.base == "oid":
		out = append(out, s(fmt.Sprint(randInt(2_000_000_000))))
	case c.base == "int8":
		out = append(out, s(fmt.Sprint(randInt(1<<53))))
	case c.category == "N":
		out = append(out, s(fmt.Sprint(randInt(900))), s("0"), s("1"))
	case c.category == "B":
		out = append(out, rotate([]*string{s("true"), s("false")}, row)...)
	case c.base == "date":
		out = append(out, s(fmt.Sprintf("20%02d-%02d-%02d", randInt(30), randInt(12), randInt(28))), s("2024-01-02"))
	case c.base == "time", c.base == "timetz":
		out = append(out, s("03:04:05"))
	case c.category == "D":
		out = append(out, s(fmt.Sprintf("20%02d-%02d-%02d %02d:%02d:%02d+00", randInt(30), randInt(12), randInt(28), randInt(23), randInt(59), randInt(59))), s("2024-01-02 03:04:05+00"))
	case c.category == "T":
		out = append(out, s("1 hour"))
	case c.base == "bytea":
		out = append(out, s(`\x`+randomHex(16)))
	case c.base == "json", c.base == "jsonb":
		out = append(out, s(`{"tenantseal": "`+mark+`"}`))
	case c.base == "inet":
		out = append(out, s("127.0.0.1"))
	case c.base == "cidr":
		out = append(out, s("127.0.0.0/8"))
	case c.category == "A":
		out = append(out, s("{}"))
	}
	for _, l := range literals {
		if c.category != "S" && len(c.enum) == 0 {
			out = append(out, s(l))
		}
	}
	if !c.notNull {
		out = append(out, nil)
	}
	return out
}

// insertRow writes one row into t with fixed values for the columns in fixed and generated values for
// the others, retrying other candidates when a CHECK constraint refuses a value. It returns the row as
// stored.
func insertRow(ctx context.Context, super *pgx.Conn, t *table, fixed map[string]*string, row int, marker func() string) (*seedRow, error) {
	mark := marker()
	type slot struct {
		col   *column
		cands []*string
		next  int
	}
	var slots []*slot
	for i, c := range t.cols {
		if _, ok := fixed[c.name]; ok || !c.insertable() || slices.Contains(t.encrypted, c.name) {
			continue
		}
		include := !c.hasDefault && c.identity == ""
		if c.hasDefault && c.category == "S" && !t.checked(c.name) && !slices.Contains(t.pk, c.name) {
			include = true // a marker makes the row recognisable wherever it shows up
		}
		if c.hasDefault && !c.serial && !t.registry && !slices.Contains(t.pk, c.name) && (len(c.enum) > 0 || t.checked(c.name)) {
			// (A registry's defaults stay: its status column says whether the tenant is one.)
			include = true // every allowed value in turn, not the default alone
		}
		if !include {
			continue
		}
		cands := candidatesAt(t, c, fmt.Sprintf("%s%02d", mark, i), row)
		if len(cands) == 0 {
			return nil, fmt.Errorf("isolation: cannot generate a value of type %s for %s.%s", c.typ, t, c.name)
		}
		slots = append(slots, &slot{col: c, cands: cands})
	}
	var names, vals, rets []string
	var args []any
	for _, c := range t.cols {
		rets = append(rets, pgx.Identifier{c.name}.Sanitize()+"::text")
	}
	addFixed := func() {
		for _, c := range t.cols {
			v, ok := fixed[c.name]
			if !ok {
				continue
			}
			names = append(names, pgx.Identifier{c.name}.Sanitize())
			args = append(args, v)
			vals = append(vals, fmt.Sprintf("($%d::text)::%s", len(args), c.typ))
		}
	}
	var last error
	for attempt := 0; attempt < 40; attempt++ {
		names, vals, args = nil, nil, nil
		addFixed()
		for _, sl := range slots {
			names = append(names, pgx.Identifier{sl.col.name}.Sanitize())
			args = append(args, sl.cands[sl.next])
			vals = append(vals, fmt.Sprintf("($%d::text)::%s", len(args), sl.col.typ))
		}
		sql := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) RETURNING %s", t.qname(), strings.Join(names, ", "), strings.Join(vals, ", "), strings.Join(rets, ", "))
		if len(names) == 0 {
			sql = fmt.Sprintf("INSERT INTO %s DEFAULT VALUES RETURNING %s", t.qname(), strings.Join(rets, ", "))
		}
		out := make([]*string, len(t.cols))
		dest := make([]any, len(t.cols))
		for i := range out {
			dest[i] = &out[i]
		}
		err := super.QueryRow(ctx, sql, args...).Scan(dest...)
		if err == nil {
			r := &seedRow{vals: map[string]*string{}}
			for i, c := range t.cols {
				r.vals[c.name] = out[i]
			}
			return r, nil
		}
		last = err
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return nil, fmt.Errorf("isolation: seed %s: %w", t, err)
		}
		// Which flexible columns might be at fault.
		var suspects []*slot
		for _, sl := range slots {
			switch {
			case pe.ColumnName == sl.col.name:
				suspects = append(suspects, sl)
			case pe.Code == "23514" && pe.ConstraintName != "":
				for _, ch := range t.checks {
					if ch.name == pe.ConstraintName && slices.Contains(ch.cols, sl.col.name) {
						suspects = append(suspects, sl)
					}
				}
				if pe.DataTypeName != "" && (sl.col.typ == pe.DataTypeName || strings.HasSuffix(sl.col.typ, "."+pe.DataTypeName)) {
					suspects = append(suspects, sl)
				}
			}
		}
		if pe.Code == "23505" {
			if cols, ok := t.uniqueCols(pe.ConstraintName); ok {
				if fixedOnly(cols, fixed) {
					return nil, fmt.Errorf("isolation: seed %s: %w (%s)", t, errFixedDuplicate, pe.ConstraintName)
				}
			}
			for _, c := range t.partialPreds[pe.ConstraintName] {
				for _, sl := range slots {
					if sl.col.name == c {
						suspects = append(suspects, sl)
					}
				}
			}
		}
		switch {
		case len(suspects) > 0:
		case pe.Code == "23505":
			for _, sl := range slots {
				sl.cands = candidates(t, sl.col, marker())
				sl.next = 0
			}
			continue
		case strings.HasPrefix(pe.Code, "22") || pe.Code == "23514":
			suspects = slots
		default:
			return nil, fmt.Errorf("isolation: seed %s: %w", t, err)
		}
		advanced := false
		for _, sl := range suspects {
			if sl.next+1 < len(sl.cands) {
				sl.next++
				advanced = true
				break
			}
		}
		if !advanced {
			break
		}
	}
	return nil, fmt.Errorf("isolation: seed %s: no generated row satisfies its constraints: %w", t, last)
}

// errFixedDuplicate: another row of the tenant holds the values a seeded row must have in a unique key
// (a table keyed by its tenant column, or by its foreign keys): the tenant has all the rows it can.
var errFixedDuplicate = errors.New("a unique key of fixed values is taken")

// uniqueCols returns the columns of the unique constraint or index name.
func (t *table) uniqueCols(name string) ([]string, bool) {
	for _, u := range append(slices.Clone(t.uniques), t.partialUniques...) {
		if u.name == name {
			return u.cols, true
		}
	}
	return nil, false
}

func fixedOnly(cols []string, fixed map[string]*string) bool {
	for _, c := range cols {
		if _, ok := fixed[c]; !ok {
			return false
		}
	}
	return len(cols) > 0
}

// seed writes rowsPer rows per tenant into every tenant table (and each tenant's row into the tenant
// registries), parents first; children point at each tenant's first parent row.
func (s *suite) seed(ctx context.Context) error {
	s.rows = map[*table][][]*seedRow{}
	if s.cat.tenants && !s.cat.hasRegistry("tenantseal", "tenants") {
		// The verifier honours tokens of tenantseal.tenants' active tenants only: register the suite's
		// there, marked as the suite's (an adopted registry's trigger then finds them registered).
		for _, tenant := range s.tenants {
			sql, arg := "INSERT INTO tenantseal.tenants (key, name) VALUES ($1, $2)", any(tenant.String())
			if !s.cat.tenantKeys {
				sql, arg = "INSERT INTO tenantseal.tenants (id, name) VALUES ($1, $2)", tenant
			}
			if _, err := s.super.Exec(ctx, sql, arg, s.mark()); err != nil {
				return fmt.Errorf("isolation: register tenant %s: %w", tenant, err)
			}
		}
	}
	for _, reg := range s.cat.registry {
		s.rows[reg] = make([][]*seedRow, len(s.tenants))
		for ti, tenant := range s.tenants {
			fixed := s.hinted(reg)
			v := tenant.String()
			fixed[reg.tenantCol] = &v
			if reg.schema == "tenantseal" && reg.name == "tenants" && reg.col("key") != nil {
				fixed["key"] = &v // the key of a uuid deployment is its id
			}
			r, err := insertRow(ctx, s.super, reg, fixed, ti, s.marker)
			if err != nil {
				return err
			}
			s.rows[reg][ti] = []*seedRow{r}
		}
	}
	if s.cat.tenants {
		// Marked as the suite's, whichever way they were registered: a later run removes what a killed
		// one left by this name.
		if _, err := s.super.Exec(ctx, "UPDATE tenantseal.tenants SET name = $2 WHERE id = ANY($1)", s.handles(), s.mark()); err != nil {
			return fmt.Errorf("isolation: mark the suite's tenants: %w", err)
		}
	}
	for _, t := range s.cat.tables {
		s.rows[t] = make([][]*seedRow, len(s.tenants))
		for ti, tenant := range s.tenants {
			for i := 0; i < s.rowsPer; i++ {
				fixed := s.hinted(t)
				tv := tenant.String()
				fixed[t.tenantCol] = &tv
				if err := s.parentValues(ctx, t, ti, i, fixed); err != nil {
					return err
				}
				r, err := insertRow(ctx, s.super, t, fixed, ti*s.rowsPer+i, s.marker) // enum and CHECK values in turn, across tenants
				if errors.Is(err, errFixedDuplicate) && i > 0 {
					break // one row per tenant (or per parent): the tenant has its rows
				}
				if err != nil {
					return err
				}
				s.rows[t][ti] = append(s.rows[t][ti], r)
			}
		}
	}
	if err := s.reload(ctx); err != nil {
		return err
	}
	s.collectMarkers()
	return nil
}

// hinted returns the configured seeding values of t, as the fixed values of a new row.
func (s *suite) hinted(t *table) map[string]*string {
	fixed := map[string]*string{}
	if t.partitionKey != "" && t.partitionKey != t.tenantCol {
		fixed[t.partitionKey] = ptr(t.partitionValue) // a value with a partition to go to
	}
	for c, v := range s.cfg.hint(t) {
		if t.col(c) != nil {
			fixed[c] = ptr(v)
		}
	}
	return fixed
}

// reload reads back every row of the suite's tenants, as the superuser: triggers may have written rows
// of their own (into the seeded tables or others), and defaults and generated columns hold values the
// inserts did not name. Seeded rows keep their identity (and what references them).
func (s *suite) reload(ctx context.Context) error {
	for _, t := range s.cat.all() {
		var cols []string
		for _, c := range t.cols {
			cols = append(cols, ident(c.name)+"::text")
		}
		rows, err := s.super.Query(ctx, fmt.Sprintf("SELECT %s::text, %s FROM %s WHERE %[1]s::text = ANY($1) ORDER BY 2",
			ident(t.tenantCol), strings.Join(cols, ", "), t.qname()), s.tenantStrings())
		if err != nil {
			return fmt.Errorf("isolation: read back %s: %w", t, err)
		}
		byTenant := map[string][]map[string]*string{}
		for rows.Next() {
			vals := make([]*string, len(t.cols)+1)
			dest := make([]any, len(vals))
			for i := range vals {
				dest[i] = &vals[i]
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return fmt.Errorf("isolation: read back %s: %w", t, err)
			}
			m := map[string]*string{}
			for i, c := range t.cols {
				m[c.name] = vals[i+1]
			}
			byTenant[*vals[0]] = append(byTenant[*vals[0]], m)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("isolation: read back %s: %w", t, err)
		}
		if s.rows[t] == nil {
			s.rows[t] = make([][]*seedRow, len(s.tenants))
		}
		for ti, tenant := range s.tenants {
			var out []*seedRow
			stored := byTenant[tenant.String()]
			used := make([]bool, len(stored))
			for _, r := range s.rows[t][ti] {
				for i, m := range stored {
					if !used[i] && sameKey(t, r.vals, m) {
						used[i] = true
						r.vals = m
						out = append(out, r)
						break
					}
				}
			}
			for i, m := range stored {
				if !used[i] {
					out = append(out, &seedRow{vals: m})
				}
			}
			s.rows[t][ti] = out
		}
	}
	for _, t := range s.cat.all() {
		for ti := range s.tenants {
			if len(s.rows[t][ti]) == 0 {
				return fmt.Errorf("isolation: seed %s: tenant T%d has no row in it after seeding (a trigger or rule removed it?)", t, ti)
			}
		}
	}
	return nil
}

func sameKey(t *table, a, b map[string]*string) bool {
	for _, c := range t.rowKey() {
		x, y := a[c], b[c]
		if (x == nil) != (y == nil) || x != nil && *x != *y {
			return false
		}
	}
	return true
}

// collectMarkers picks, per tenant, the values that prove a row of that tenant was seen: its key, and
// every seeded value long enough to be unmistakable that no other tenant's rows hold too.
func (s *suite) collectMarkers() {
	holders := map[string]map[int]bool{}
	add := func(ti int, v string) {
		if holders[v] == nil {
			holders[v] = map[int]bool{}
		}
		holders[v][ti] = true
	}
	for _, t := range s.cat.all() {
		for ti, rows := range s.rows[t] {
			for _, r := range rows {
				for _, c := range t.cols {
					v := r.vals[c.name]
					if v == nil || c.name == t.tenantCol {
						continue
					}
					switch {
					case strings.HasPrefix(*v, `\x`) && len(*v) >= 18:
						add(ti, (*v)[2:])
					case len(*v) >= 8 && !isCommonValue(*v):
						add(ti, *v)
					}
				}
			}
		}
	}
	s.markers = make([][]string, len(s.tenants))
	for ti := range s.tenants {
		s.markers[ti] = []string{s.tenants[ti].String()}
	}
	var vals []string
	for v := range holders {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	for _, v := range vals {
		if len(holders[v]) != 1 || s.isTenantKey(v) {
			continue // shared by tenants (a row of a global table they all reference): proves nothing
		}
		for ti := range holders[v] {
			s.markers[ti] = append(s.markers[ti], v)
		}
	}
}

func (s *suite) isTenantKey(v string) bool {
	for _, t := range s.tenants {
		if t.String() == v {
			return true
		}
	}
	return false
}

var timestampLike = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}`)

// isCommonValue is a value that rows of several tenants may share (a timestamp default, a constant).
func isCommonValue(v string) bool {
	return timestampLike.MatchString(v) || !strings.ContainsAny(v, "0123456789") || strings.HasPrefix(v, "{")
}

// parentValues fixes the foreign key columns of a new row of t for tenant ti.
func (s *suite) parentValues(ctx context.Context, t *table, ti, row int, fixed map[string]*string) error {
	for _, fk := range t.fks {
		if len(fk.cols) == 1 && fk.cols[0] == t.tenantCol {
			continue
		}
		p := fk.refTable
		switch {
		case p == t || (p != nil && len(s.rows[p]) == 0):
			// A self reference or a cycle broken here: NULL, which seedOrder checked is allowed.
			if !nullableFK(t, fk) {
				return fmt.Errorf("isolation: cannot seed %s: foreign key %s references rows not seeded yet", t, fk.name)
			}
			for _, c := range fk.cols {
				if c != t.tenantCol {
					fixed[c] = nil
				}
			}
		case p != nil:
			// Rows in turn, so that a table keyed by its foreign keys gets distinct keys, but never the
			// last one while there are others: it stays a leaf for the cases that delete.
			prows := s.rows[p][ti]
			parent := prows[row%max(1, len(prows)-1)]
			parent.referenced = true
			for i, c := range fk.cols {
				if c == t.tenantCol {
					continue
				}
				fixed[c] = parent.vals[fk.refCols[i]]
			}
		default:
			// A table outside the suite: any existing row will do.
			var sel []string
			for _, rc := range fk.refCols {
				sel = append(sel, pgx.Identifier{rc}.Sanitize()+"::text")
			}
			vals := make([]*string, len(fk.refCols))
			dest := make([]any, len(vals))
			for i := range vals {
				dest[i] = &vals[i]
			}
			var relname string
			if err := s.super.QueryRow(ctx, "SELECT $1::oid::regclass::text", fk.ref).Scan(&relname); err != nil {
				return fmt.Errorf("isolation: seed %s: %w", t, err)
			}
			err := s.super.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT 1", strings.Join(sel, ", "), relname)).Scan(dest...)
			switch {
			case errors.Is(err, pgx.ErrNoRows) && nullableFK(t, fk):
			case err != nil:
				return fmt.Errorf("isolation: seed %s: foreign key %s needs a row in %s: %w", t, fk.name, relname, err)
			}
			for i, c := range fk.cols {
				if c != t.tenantCol {
					fixed[c] = vals[i]
				}
			}
		}
	}
	return nil
}

// whereRow matches row r of t by its key, comparing as text, with parameters from $start on.
func whereRow(t *table, r *seedRow, start int) (string, []any) {
	var conds []string
	var args []any
	for _, c := range t.rowKey() {
		if v := r.vals[c]; v == nil {
			conds = append(conds, pgx.Identifier{c}.Sanitize()+" IS NULL")
			continue
		}
		args = append(args, r.val(c))
		conds = append(conds, fmt.Sprintf("%s::text = $%d", pgx.Identifier{c}.Sanitize(), start+len(args)-1))
	}
	return strings.Join(conds, " AND "), args
}

// handles returns the handles of the seeded tenants (the uuids tenantseal's own tables hold), as text.
func (s *suite) handles() []string {
	out := make([]string, len(s.tenants))
	for i, t := range s.tenants {
		out[i] = uuid.Format(t.Handle())
	}
	return out
}

// tenantStrings returns the seeded tenant keys as text.
func (s *suite) tenantStrings() []string {
	out := make([]string, len(s.tenants))
	for i, t := range s.tenants {
		out[i] = t.String()
	}
	return out
}

// snapshot records every table's seeded rows, to restore them after a case changed them.
func (s *suite) snapshot(ctx context.Context) error {
	s.snap = map[*table]string{}
	for _, t := range s.cat.all() {
		var js string
		err := s.super.QueryRow(ctx, fmt.Sprintf("SELECT coalesce(json_agg(t), '[]')::text FROM %s t WHERE %s::text = ANY($1)",
			t.qname(), pgx.Identifier{t.tenantCol}.Sanitize()), s.tenantStrings()).Scan(&js)
		if err != nil {
			return fmt.Errorf("isolation: snapshot %s: %w", t, err)
		}
		s.snap[t] = js
	}
	fp, err := s.fingerprints(ctx)
	if err != nil {
		return err
	}
	s.baseline = fp
	return nil
}

// fingerprints hashes each table's rows per seeded tenant, as the superuser sees them.
func (s *suite) fingerprints(ctx context.Context) (map[string]string, error) {
	var parts []string
	for i, t := range s.cat.all() {
		parts = append(parts, fmt.Sprintf("SELECT %d, %s::text, md5(string_agg(t::text, '|' ORDER BY t::text)) FROM %s t WHERE %[2]s::text = ANY($1) GROUP BY 2",
			i, pgx.Identifier{t.tenantCol}.Sanitize(), t.qname()))
	}
	if s.keys != nil {
		parts = append(parts, "SELECT -1, tenant_id::text, md5(string_agg(k::text, '|' ORDER BY k::text)) FROM tenantseal.tenant_keysets k WHERE tenant_id::text = ANY($2) GROUP BY 2")
	}
	rows, err := s.super.Query(ctx, strings.Join(parts, " UNION ALL "), s.tenantStrings(), s.handles())
	if err != nil {
		return nil, fmt.Errorf("isolation: fingerprint: %w", err)
	}
	out := map[string]string{}
	var (
		i        int
		tenant   string
		checksum string
	)
	_, err = pgx.ForEachRow(rows, []any{&i, &tenant, &checksum}, func() error {
		out[fmt.Sprintf("%d/%s", i, tenant)] = checksum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("isolation: fingerprint: %w", err)
	}
	return out, nil
}

// verify compares every table with the snapshot after a case that wrote as the attacker: a change to
// another tenant's rows is a leak. Whatever changed is restored, so that cases never see each other's
// writes.
func (s *suite) verify(ctx context.Context, r *rec, attacker int) {
	fp, err := s.fingerprints(ctx)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	all := s.cat.all()
	changed := map[int]bool{}
	for k := range mergeKeys(fp, s.baseline) {
		if fp[k] == s.baseline[k] {
			continue
		}
		var i int
		var tenant string
		fmt.Sscanf(k, "%d/%s", &i, &tenant)
		changed[i] = true
		if s.tenantIndex(tenant) != attacker {
			what := "tenantseal.tenant_keysets"
			if i >= 0 {
				what = all[i].String()
			}
			r.leakf("rows of tenant %s in %s changed", s.tenantName(tenant), what)
		}
	}
	r.checks++
	if len(changed) == 0 {
		return
	}
	if err := s.restore(ctx, changed); err != nil {
		r.errorf("%v", err)
	}
}

func mergeKeys(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func (s *suite) tenantName(id string) string {
	if i := s.tenantIndex(id); i >= 0 {
		return fmt.Sprintf("T%d", i)
	}
	return id
}

// tenantIndex returns the index of the suite's tenant whose key or handle is id, or -1.
func (s *suite) tenantIndex(id string) int {
	for i, t := range s.tenants {
		if t.String() == id || uuid.Format(t.Handle()) == id {
			return i
		}
	}
	return -1
}

// replicaRole sets session_replication_role to replica in the superuser's tx, which writes the ground
// truth back without firing triggers or checking foreign keys; on a Citus coordinator on the workers too,
// where the shards' foreign keys are.
func (s *suite) replicaRole(ctx context.Context, tx pgx.Tx) error {
	sql := "SET LOCAL session_replication_role = replica"
	if s.cat != nil && s.cat.citus {
		sql = "SET LOCAL citus.propagate_set_commands TO local; " + sql
	}
	_, err := tx.Exec(ctx, sql)
	return err
}

// restore puts the snapshot back into the tables at the given indexes of s.cat.all() (-1: keysets),
// with triggers and foreign key checks off for the session.
func (s *suite) restore(ctx context.Context, which map[int]bool) error {
	all := s.cat.all()
	return pgx.BeginFunc(ctx, s.super, func(tx pgx.Tx) error {
		if err := s.replicaRole(ctx, tx); err != nil {
			return err
		}
		for i := range which {
			if i < 0 {
				if _, err := tx.Exec(ctx, "DELETE FROM tenantseal.tenant_keysets WHERE tenant_id = ANY($1::uuid[])", s.handles()); err != nil {
					return fmt.Errorf("isolation: restore keysets: %w", err)
				}
				if _, err := tx.Exec(ctx, "INSERT INTO tenantseal.tenant_keysets SELECT * FROM json_populate_recordset(NULL::tenantseal.tenant_keysets, $1)", s.keysetSnap); err != nil {
					return fmt.Errorf("isolation: restore keysets: %w", err)
				}
				continue
			}
			t := all[i]
			if _, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s::text = ANY($1)", t.qname(), pgx.Identifier{t.tenantCol}.Sanitize()), s.tenantStrings()); err != nil {
				return fmt.Errorf("isolation: restore %s: %w", t, err)
			}
			var cols []string
			override := ""
			for _, c := range t.cols {
				if c.generated {
					continue
				}
				if c.identity == "a" {
					override = " OVERRIDING SYSTEM VALUE"
				}
				cols = append(cols, pgx.Identifier{c.name}.Sanitize())
			}
			list := strings.Join(cols, ", ")
			if _, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s)%s SELECT %s FROM json_populate_recordset(NULL::%s, $1)", t.qname(), list, override, list, t.qname()), s.snap[t]); err != nil {
				return fmt.Errorf("isolation: restore %s: %w", t, err)
			}
		}
		return nil
	})
}

// setupKeys gives every seeded tenant keysets wrapped by the suite's KEK and fills the encrypted columns
// of every seeded row with real ciphertexts of fresh markers.
func (s *suite) setupKeys(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.super, func(tx pgx.Tx) error {
		if err := s.replicaRole(ctx, tx); err != nil {
			return err
		}
		for _, tenant := range s.tenants {
			w, err := keys.NewTenantKeysets(s.kek, tenant)
			if err != nil {
				return err
			}
			for purpose, wrapped := range map[string][]byte{keys.PurposeAEAD: w.AEAD, keys.PurposePRF: w.PRF} {
				if _, err := tx.Exec(ctx, "INSERT INTO tenantseal.tenant_keysets (tenant_id, purpose, kek_id, wrapped) VALUES ($1, $2, $3, $4)",
					tenant, purpose, s.kek.ID, wrapped); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("isolation: create keysets: %w", err)
	}
	kr, err := s.keyring()
	if err != nil {
		return err
	}
	s.plain = map[*seedRow]map[string]string{}
	for _, t := range s.cat.tables {
		id := t.idColumn()
		if len(t.encrypted) == 0 || id == "" {
			continue
		}
		for ti, rows := range s.rows[t] {
			ctx := s.principal(ctx, ti)
			for _, r := range rows {
				s.plain[r] = map[string]string{}
				var sets []string
				var args []any
				for _, col := range t.encrypted {
					pt := "tspt" + randomHex(8)
					ct, err := kr.Encrypt(ctx, keys.Field{Table: t.name, Column: col, Row: r.val(id)}, []byte(pt))
					if err != nil {
						return fmt.Errorf("isolation: encrypt %s.%s: %w", t, col, err)
					}
					s.plain[r][col] = pt
					s.markers[ti] = append(s.markers[ti], pt)
					args = append(args, ct)
					sets = append(sets, fmt.Sprintf("%s = $%d", pgx.Identifier{col}.Sanitize(), len(args)))
					r.vals[col] = ptr(`\x` + hex.EncodeToString(ct))
				}
				where, wargs := whereRow(t, r, len(args)+1)
				if _, err := s.super.Exec(ctx, fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.qname(), strings.Join(sets, ", "), where), append(args, wargs...)...); err != nil {
					return fmt.Errorf("isolation: store ciphertexts in %s: %w", t, err)
				}
			}
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// principal returns ctx carrying a Principal of tenant ti.
func (s *suite) principal(ctx context.Context, ti int) context.Context {
	return tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: s.tenants[ti], Subject: subject})
}
