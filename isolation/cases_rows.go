package isolation

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/internal/uuid"
)

// caseDef is one named attack. run attacks as tenant atk and reports per target through emit.
type caseDef struct {
	name, group string
	run         func(ctx context.Context, s *suite, atk int, emit func(target string) *rec)
}

// Case groups.
const (
	groupDirect   = "direct"
	groupIndirect = "indirect"
	groupContext  = "context"
	groupKeys     = "keys"
	groupSide     = "side-channel"
	groupRole     = "role"
)

// cases lists every attack in report order.
func cases() []caseDef {
	return []caseDef{
		{"select-by-id", groupDirect, perTable(true, caseSelectByID)},
		{"select-scan", groupDirect, perTable(true, caseSelectScan)},
		{"update-foreign", groupDirect, perTable(true, caseUpdateForeign)},
		{"delete-foreign", groupDirect, perTable(true, caseDeleteForeign)},
		{"insert-foreign-tenant", groupDirect, perTable(true, caseInsertForeignTenant)},
		{"update-move-tenant", groupDirect, perTable(true, caseUpdateMoveTenant)},
		{"upsert-foreign", groupDirect, perTable(false, caseUpsertForeign)},
		{"returning", groupDirect, perTable(true, caseReturning)},
		{"partition-direct", groupDirect, casePartition},
		{"global-table", groupDirect, caseGlobal},

		{"fk-foreign-parent", groupIndirect, perTable(false, caseFKForeignParent)},
		{"join", groupIndirect, perTable(true, caseJoin)},
		{"subquery", groupIndirect, perTable(true, caseSubquery)},
		{"cte", groupIndirect, perTable(true, caseCTE)},
		{"aggregate", groupIndirect, perTable(true, caseAggregate)},
		{"window-count", groupIndirect, perTable(true, caseWindowCount)},
		{"unique-violation", groupIndirect, perTable(false, caseUniqueViolation)},
		{"copy-to", groupIndirect, perTable(true, caseCopyTo)},
		{"cursor", groupIndirect, perTable(true, caseCursor)},

		{"no-context", groupContext, perTable(true, caseNoContext)},
		{"forged-token", groupContext, perTable(true, tokenCase(forgedTokens))},
		{"altered-token", groupContext, perTable(true, tokenCase(alteredTokens))},
		{"expired-token", groupContext, perTable(true, tokenCase(expiredTokens))},
		{"wrong-key-token", groupContext, perTable(true, tokenCase(wrongKeyTokens))},
		{"replayed-token", groupContext, perTable(true, tokenCase(replayedTokens))},
		{"reset", groupContext, perTable(true, caseReset)},
		{"client-setting", groupContext, perTable(true, caseClientSetting)},
		{"set-role", groupContext, caseSetRole},
		{"security-definer", groupContext, caseSecurityDefiner},
		{"view", groupContext, caseView},
		{"owner-bypass", groupContext, perTable(false, caseOwnerBypass)},
		{"prepared-statement-reuse", groupContext, perTable(true, casePreparedReuse)},
		{"inactive-tenant", groupContext, perTable(true, caseInactiveTenant)},
		{"elevated-token", groupContext, perTable(true, caseElevatedToken)},
		{"pooled-session", groupContext, casePooledSession},

		{"ciphertext-moved-row", groupKeys, perTable(false, caseCiphertextMovedRow)},
		{"ciphertext-moved-column", groupKeys, perTable(false, caseCiphertextMovedColumn)},
		{"ciphertext-moved-tenant", groupKeys, perTable(false, caseCiphertextMovedTenant)},
		{"keyset-moved-tenant", groupKeys, caseKeysetMovedTenant},

		{"pg-stat-activity", groupSide, casePgStatActivity},
		{"statement-text", groupSide, caseStatementText},
		{"listen-notify", groupSide, caseListenNotify},
		{"pg-stats", groupSide, perTable(true, casePgStats)},
		{"planner", groupSide, casePlanner},

		{"audit-append", groupRole, caseAuditAppend},
		{"other-roles", groupRole, caseOtherRoles},
		{"session-limits", groupRole, caseSessionLimits},
		{"alter-role-self", groupRole, caseAlterRoleSelf},
	}
}

// CaseNames lists the names of the suite's cases, in report order.
func CaseNames() []string {
	var out []string
	for _, c := range cases() {
		out = append(out, c.name)
	}
	return out
}

// perTable runs fn against every tenant table, and against the tenant registries when registry is set.
func perTable(registry bool, fn func(ctx context.Context, s *suite, t *table, atk int, r *rec)) func(context.Context, *suite, int, func(string) *rec) {
	return func(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
		for _, t := range s.cat.all() {
			if t.registry && !registry {
				emit(t.String()).na = "does not apply to a tenant registry"
				continue
			}
			fn(ctx, s, t, atk, emit(t.String()))
		}
	}
}

// victims returns every tenant but atk.
func (s *suite) victims(atk int) []int {
	var out []int
	for i := range s.tenants {
		if i != atk {
			out = append(out, i)
		}
	}
	return out
}

// leaf returns a row of tenant ti in t that no seeded row references: safe to update, move or delete.
func (s *suite) leaf(t *table, ti int) *seedRow {
	rows := s.rows[t][ti]
	for i := len(rows) - 1; i >= 0; i-- {
		if !rows[i].referenced {
			return rows[i]
		}
	}
	return rows[len(rows)-1] // every row is referenced (a table of one row per tenant): the last one
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// change is an assignment that changes column m of a row, or a no-op on the tenant column when the table
// has no freely changeable column.
func change(t *table) string { return changeAs(t, "") }

// changeAs is change with the right-hand side qualified by alias (for ON CONFLICT DO UPDATE).
func changeAs(t *table, alias string) string {
	m := t.mutable()
	if alias != "" {
		alias += "."
	}
	if m == "" {
		return fmt.Sprintf("%s = %s%[1]s", ident(t.tenantCol), alias)
	}
	c := t.col(m)
	switch c.category {
	case "S":
		return fmt.Sprintf("%s = reverse(%s%[1]s)", ident(m), alias)
	case "N":
		return fmt.Sprintf("%s = %s%[1]s + 1", ident(m), alias)
	case "D":
		return fmt.Sprintf("%s = %s%[1]s + interval '1 day'", ident(m), alias)
	default:
		return fmt.Sprintf("%s = NOT %s%[1]s", ident(m), alias)
	}
}

// rowText selects every row of t as text: the whole row, or the columns the app role may read when
// column privileges hide some.
func rowText(t *table) string {
	return fmt.Sprintf("SELECT %s FROM %s x", t.readableRow(), t.qname())
}

// readableRow is the row of t that the app role may read, as a text expression over alias x.
func (t *table) readableRow() string {
	cols, all := t.visibleCols("x.")
	if all {
		return "x::text"
	}
	return "ROW(" + strings.Join(cols, ", ") + ")::text"
}

// readableCols is the select list of the columns of t that the app role may read.
func (t *table) readableCols() string {
	cols, all := t.visibleCols("")
	if all {
		return "*"
	}
	return strings.Join(cols, ", ")
}

// visibleCols returns the quoted columns of t that column privileges leave the app role, each after
// prefix, and whether they are all of them.
func (t *table) visibleCols(prefix string) ([]string, bool) {
	var cols []string
	for _, c := range t.cols {
		if !c.hidden {
			cols = append(cols, prefix+pgx.Identifier{c.name}.Sanitize())
		}
	}
	return cols, len(cols) == len(t.cols)
}

// clone builds an INSERT of a copy of row r of t: the tenant column set to tenant, unique columns
// given fresh values unless listed in keep, foreign keys kept unless given in parents.
func (s *suite) clone(t *table, r *seedRow, tenant string, keep []string, parents map[string]*string) (string, []any) {
	var names, vals []string
	var args []any
	hints := s.hinted(t)
	for _, c := range t.cols {
		if !c.insertable() {
			continue
		}
		v := r.vals[c.name]
		switch {
		case c.name == t.tenantCol:
			v = &tenant
		case parents != nil && hasKey(parents, c.name):
			v = parents[c.name]
		case hasKey(hints, c.name):
			v = hints[c.name] // a value the schema needs (a partition's range): kept, not made up
		case t.uniqueCol(c.name) && !contains(keep, c.name) && !t.fkCol(c.name):
			cands := candidates(t, c, s.marker())
			if len(cands) > 0 {
				v = cands[0]
			}
		}
		names = append(names, ident(c.name))
		args = append(args, v)
		vals = append(vals, fmt.Sprintf("($%d::text)::%s", len(args), c.typ))
	}
	return fmt.Sprintf("INSERT INTO %s AS x (%s) VALUES (%s)", t.qname(), strings.Join(names, ", "), strings.Join(vals, ", ")), args
}

func hasKey(m map[string]*string, k string) bool { _, ok := m[k]; return ok }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parentsOf returns the foreign key values that point at tenant ti's first parent rows.
func (s *suite) parentsOf(t *table, ti int) map[string]*string {
	out := map[string]*string{}
	for _, fk := range t.fks {
		p := fk.refTable
		if p == nil || p.registry || len(s.rows[p]) == 0 || p == t {
			continue
		}
		for i, c := range fk.cols {
			if c != t.tenantCol {
				out[c] = s.rows[p][ti][0].vals[fk.refCols[i]]
			}
		}
	}
	return out
}

// exec runs one statement as tenant ti (tok) and commits it; it returns rows affected.
func (s *suite) exec(ctx context.Context, tok, sql string, args ...any) (int64, error) {
	var n int64
	err := s.as(ctx, tok, true, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, args...)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// ownWrite runs a control write on the attacker's own row and reports whether the app role may write
// the table at all: a privilege refusal means the attack is expected to be refused too.
func ownWrite(r *rec, what string, n int64, err error, want int64) (writable bool) {
	switch {
	case err == nil:
		r.control(n == want, "%s on an own row: %d rows affected, want %d (does no %[1]s policy let the app role reach its own rows?)", what, n, want)
		return true
	case sqlState(err) == "42501":
		r.checks++
		r.notef("the app role may not %s here (42501)", what)
		return false
	case sqlState(err) == "23505", sqlState(err) == "23503":
		// The own row's key is taken (a table keyed by its tenant column or its foreign keys) or the own
		// row is referenced: the statement reached the table, so the app role may write it.
		r.checks++
		r.notef("%s on an own row: SQLSTATE %s (a key of fixed values, or a referenced row)", what, sqlState(err))
		return true
	default:
		r.control(false, "%s on an own row: %v", what, err)
		return true
	}
}

func caseSelectByID(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tok := s.token(atk)
	for _, v := range s.victims(atk) {
		for _, vr := range s.rows[t][v] {
			where, args := whereRow(t, vr, 1)
			err := s.as(ctx, tok, false, func(tx pgx.Tx) error {
				got, err := strs(ctx, tx, rowText(t)+" WHERE "+where, args...)
				r.judge(err, len(got) > 0, "read %d row(s) of T%d by key", len(got), v)
				return nil
			})
			if err != nil {
				r.errorf("%v", err)
			}
		}
	}
	for _, own := range s.rows[t][atk] {
		where, args := whereRow(t, own, 1)
		_ = s.as(ctx, tok, false, func(tx pgx.Tx) error {
			got, err := strs(ctx, tx, rowText(t)+" WHERE "+where, args...)
			r.control(err == nil && len(got) == 1, "own row by key: %d rows (%v), want 1", len(got), err)
			return nil
		})
	}
}

func caseSelectScan(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		got, err := strs(ctx, tx, rowText(t))
		if err != nil {
			r.errorf("scan: %v", err)
			return nil
		}
		r.expect(len(s.foreignIn(strings.Join(got, "\n"), atk)) == 0, "a scan shows rows of %v", s.foreignIn(strings.Join(got, "\n"), atk))
		r.control(len(got) == len(s.rows[t][atk]), "a scan shows %d rows, want the tenant's own %d", len(got), len(s.rows[t][atk]))
		return nil
	})
}

func caseUpdateForeign(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tok := s.token(atk)
	sql := fmt.Sprintf("UPDATE %s SET %s WHERE ", t.qname(), change(t))
	own := s.leaf(t, atk)
	where, args := whereRow(t, own, 1)
	n, err := s.exec(ctx, tok, sql+where, args...)
	ownWrite(r, "UPDATE", n, err, 1)
	s.verify(ctx, r, atk)
	for _, v := range s.victims(atk) {
		where, args := whereRow(t, s.leaf(t, v), 1)
		n, err := s.exec(ctx, tok, sql+where, args...)
		r.judge(err, n > 0, "UPDATE of a row of T%d: %d rows affected", v, n)
		s.verify(ctx, r, atk)
	}
}

func caseDeleteForeign(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tok := s.token(atk)
	sql := fmt.Sprintf("DELETE FROM %s WHERE ", t.qname())
	where, args := whereRow(t, s.leaf(t, atk), 1)
	n, err := s.exec(ctx, tok, sql+where, args...)
	ownWrite(r, "DELETE", n, err, 1)
	s.verify(ctx, r, atk)
	for _, v := range s.victims(atk) {
		where, args := whereRow(t, s.rows[t][v][0], 1)
		n, err := s.exec(ctx, tok, sql+where, args...)
		switch {
		case err == nil || refused(err):
			r.expect(n == 0, "DELETE of a row of T%d: %d rows affected", v, n)
		case sqlState(err) == "23503":
			// A foreign key stopped it: the statement reached the row.
			r.expect(false, "DELETE of a row of T%d reached it: %v", v, err)
		default:
			r.errorf("DELETE of a row of T%d failed otherwise than by policy: %v", v, err)
		}
		s.verify(ctx, r, atk)
	}
}

func caseInsertForeignTenant(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tok := s.token(atk)
	sql, args := s.clone(t, s.leaf(t, atk), s.tenants[atk].String(), nil, nil)
	n, err := s.exec(ctx, tok, sql, args...)
	ownWrite(r, "INSERT", n, err, 1)
	s.verify(ctx, r, atk)
	for _, v := range s.victims(atk) {
		sql, args := s.clone(t, s.leaf(t, v), s.tenants[v].String(), nil, nil)
		n, err := s.exec(ctx, tok, sql, args...)
		switch {
		case refused(err):
			r.checks++
		case err == nil:
			r.expect(false, "INSERT of a row for T%d succeeded (%d rows)", v, n)
		default:
			r.errorf("INSERT of a row for T%d failed otherwise than by policy: %v", v, err)
		}
		s.verify(ctx, r, atk)
	}
}

func caseUpdateMoveTenant(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tok := s.token(atk)
	for _, v := range s.victims(atk) {
		sets := []string{fmt.Sprintf("%s = $1::text::%s", ident(t.tenantCol), t.col(t.tenantCol).typ)}
		args := []any{s.tenants[v].String()}
		for c, val := range s.parentsOf(t, v) {
			args = append(args, val)
			sets = append(sets, fmt.Sprintf("%s = ($%d::text)::%s", ident(c), len(args), t.col(c).typ))
		}
		update := fmt.Sprintf("UPDATE %s SET %s", t.qname(), strings.Join(sets, ", "))
		// One own row, picked by its key.
		where, wargs := whereRow(t, s.leaf(t, atk), len(args)+1)
		n, err := s.exec(ctx, tok, update+" WHERE "+where, append(args, wargs...)...)
		switch {
		case refused(err), err == nil && n == 0:
			r.checks++
		case err == nil:
			r.expect(false, "UPDATE moved an own row to T%d", v)
		default:
			r.errorf("moving an own row to T%d failed otherwise than by policy: %v", v, err)
		}
		s.verify(ctx, r, atk)
		// Every visible row, with no WHERE: an UPDATE that reads no column needs no SELECT right, so only
		// the UPDATE policy's WITH CHECK stands between the rows and the other tenant.
		n, err = s.exec(ctx, tok, update, args...)
		switch {
		case refused(err), err == nil && n == 0:
			r.checks++
		case err == nil:
			r.expect(false, "UPDATE without WHERE moved %d own rows to T%d", n, v)
		case sqlState(err) == "23503":
			// Foreign keys are checked after the statement, row-level security row by row before: the
			// policy let the rows go.
			r.expect(false, "UPDATE without WHERE passed the policy moving own rows to T%d; only a foreign key stopped it: %v", v, err)
		default:
			r.errorf("moving own rows to T%d failed otherwise than by policy: %v", v, err)
		}
		s.verify(ctx, r, atk)
	}
}

func caseUpsertForeign(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	if len(t.pk) == 0 {
		r.na = "no primary key to conflict on"
		return
	}
	tok := s.token(atk)
	var pk []string
	for _, c := range t.pk {
		pk = append(pk, ident(c))
	}
	target := "(" + strings.Join(pk, ", ") + ")"
	if onlyTenant(t, t.pk) {
		r.checks++
		r.notef("the primary key is the tenant column: one row per tenant, no other tenant's key to conflict with")
		return
	}
	for _, v := range s.victims(atk) {
		vr := s.leaf(t, v)
		// The victim's own row, claiming the victim's tenant, updated on conflict.
		all := append([]string{}, t.rowKey()...)
		for _, u := range t.uniques {
			all = append(all, u.cols...)
		}
		sql, args := s.clone(t, vr, s.tenants[v].String(), all, nil)
		n, err := s.exec(ctx, tok, sql+" ON CONFLICT "+target+" DO UPDATE SET "+changeAs(t, "x"), args...)
		r.judge(err, n > 0, "upsert over a row of T%d claiming its tenant: %d rows", v, n)
		s.verify(ctx, r, atk)
		// The victim's key and unique values under the attacker's own tenant: a new own row unless a
		// key leaves the tenant out.
		own := s.parentsOf(t, atk)
		if s.ownKeyTaken(t, atk, vr, own) {
			r.checks++
			r.notef("T%d's key values under the own tenant and parents are an own row's: not probed", v)
			continue
		}
		sql, args = s.clone(t, vr, s.tenants[atk].String(), all, own)
		n, err = s.exec(ctx, tok, sql+" ON CONFLICT DO NOTHING", args...)
		switch {
		case err == nil:
			r.expect(n == 1, "an own row with T%d's key values conflicted (ON CONFLICT DO NOTHING inserted nothing): the key is not per tenant", v)
		case sqlState(err) == "23503":
			r.notef("an own row with T%d's key values violates a foreign key: %v", v, err)
		case sqlState(err) == "23505":
			r.checks++
			r.notef("an own row with T%d's key values conflicts with an own row on another key: not probed", v)
		default:
			r.errorf("an own row with T%d's key values failed: %v", v, err)
		}
		s.verify(ctx, r, atk)
		n, err = s.exec(ctx, tok, sql+" ON CONFLICT "+target+" DO UPDATE SET "+changeAs(t, "x"), args...)
		switch {
		case err == nil:
			r.expect(n == 1, "upsert of an own row with T%d's key: %d rows", v, n)
		case sqlState(err) == "23503":
			r.notef("upsert of an own row with T%d's key violates a foreign key: %v", v, err)
		case refused(err):
			// The conflict was with a row the policy hides: the key spans tenants.
			r.expect(false, "upsert of an own row with T%d's key values reached the other row: %v", v, err)
		case sqlState(err) == "23505":
			r.checks++
			r.notef("upsert of an own row with T%d's key values conflicts with an own row on another key: not probed", v)
		default:
			r.errorf("upsert of an own row with T%d's key values: %v", v, err)
		}
		s.verify(ctx, r, atk)
	}
}

func caseReturning(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tok := s.token(atk)
	_ = s.as(ctx, tok, false, func(tx pgx.Tx) error {
		got, err := strs(ctx, tx, fmt.Sprintf("UPDATE %s x SET %s RETURNING %s", t.qname(), change(t), t.readableRow()))
		switch {
		case refused(err):
			r.checks++
		case err != nil:
			r.errorf("UPDATE ... RETURNING: %v", err)
		default:
			f := s.foreignIn(strings.Join(got, "\n"), atk)
			r.expect(len(f) == 0, "UPDATE ... RETURNING returned rows of %v", f)
			r.control(len(got) == len(s.rows[t][atk]), "UPDATE ... RETURNING returned %d rows, want the own %d", len(got), len(s.rows[t][atk]))
		}
		return nil
	})
	for _, v := range s.victims(atk) {
		where, args := whereRow(t, s.leaf(t, v), 1)
		_ = s.as(ctx, tok, false, func(tx pgx.Tx) error {
			got, err := strs(ctx, tx, fmt.Sprintf("DELETE FROM %s x WHERE %s RETURNING %s", t.qname(), where, t.readableRow()), args...)
			r.judge(err, len(got) > 0, "DELETE ... RETURNING returned %d rows of T%d", len(got), v)
			return nil
		})
	}
}

func caseFKForeignParent(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tok := s.token(atk)
	any := false
	for _, fk := range t.fks {
		p := fk.refTable
		if p == nil || p.registry || p == t || onlyTenant(t, fk.cols) {
			// A key on the tenant column alone names the own tenant's row: insert-foreign-tenant
			// tries the others'.
			continue
		}
		any = true
		own := s.parentsOf(t, atk)
		sql, args := s.clone(t, s.leaf(t, atk), s.tenants[atk].String(), nil, own)
		n, err := s.exec(ctx, tok, sql, args...)
		ownWrite(r, "INSERT", n, err, 1)
		s.verify(ctx, r, atk)
		for _, v := range s.victims(atk) {
			parents := s.parentsOf(t, atk)
			for i, c := range fk.cols {
				if c != t.tenantCol {
					parents[c] = s.rows[p][v][0].vals[fk.refCols[i]]
				}
			}
			sql, args := s.clone(t, s.leaf(t, atk), s.tenants[atk].String(), nil, parents)
			n, err := s.exec(ctx, tok, sql, args...)
			switch {
			case sqlState(err) == "23503" || refused(err):
				r.checks++
			case err == nil:
				r.expect(false, "a row of T%d references T%d's %s row through %s (%d rows)", atk, v, p, fk.name, n)
			default:
				r.errorf("reference to T%d's %s row failed otherwise: %v", v, p, err)
			}
			s.verify(ctx, r, atk)
		}
	}
	if !any {
		r.na = "no foreign key to another tenant table but by the tenant column"
	}
}

func caseJoin(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tc := ident(t.tenantCol)
	// Each query in a transaction of its own: one that the engine refuses (Citus runs joins on the
	// tenant column only) must not keep the others from running.
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		var n int
		err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s a JOIN %[1]s b ON a.%s IS DISTINCT FROM b.%[2]s", t.qname(), tc)).Scan(&n)
		r.judge(err, n > 0, "a self-join across tenants returned %d pairs", n)
		return nil
	})
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		var n int
		err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s a CROSS JOIN %[1]s b", t.qname())).Scan(&n)
		own := len(s.rows[t][atk])
		r.control(err == nil && n == own*own, "a cross join returned %d pairs (%v), want %d", n, err, own*own)
		return nil
	})
	for _, fk := range t.fks {
		p := fk.refTable
		if p == nil {
			continue
		}
		// Join on the foreign key without its tenant column: the attacker's way to reach other
		// tenants' parents if only the application's filter stood between them.
		var on []string
		for i, c := range fk.cols {
			if c != t.tenantCol || len(fk.cols) == 1 {
				on = append(on, fmt.Sprintf("c.%s = p.%s", ident(c), ident(fk.refCols[i])))
			}
		}
		_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
			if s.cat.citus {
				// Citus joins on another column than the tenant's only by repartitioning the shards,
				// which any session may turn on.
				if _, err := tx.Exec(ctx, "SET LOCAL citus.enable_repartition_joins = on"); err != nil {
					r.errorf("%v", err)
					return nil
				}
			}
			got, err := strs(ctx, tx, fmt.Sprintf("SELECT c::text || p::text FROM %s c JOIN %s p ON %s", t.qname(), p.qname(), strings.Join(on, " AND ")))
			f := s.foreignIn(strings.Join(got, "\n"), atk)
			r.judge(err, len(f) > 0, "a join %s -> %s returned rows of %v", t, p, f)
			return nil
		})
	}
}

func caseSubquery(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tc := ident(t.tenantCol)
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		var n int
		err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s::text IN (SELECT %[2]s::text FROM %[1]s WHERE %[2]s::text <> $1)", t.qname(), tc), s.tenants[atk].String()).Scan(&n)
		r.judge(err, n != 0, "IN (subquery) over other tenants found %d rows", n)
		err = tx.QueryRow(ctx, fmt.Sprintf("SELECT (SELECT count(*) FROM %s)", t.qname())).Scan(&n)
		r.judge(err, n > len(s.rows[t][atk]), "a scalar subquery counted %d rows, want the own %d", n, len(s.rows[t][atk]))
		r.control(err != nil || n == len(s.rows[t][atk]), "a scalar subquery counted %d rows, want the own %d", n, len(s.rows[t][atk]))
		for _, v := range s.victims(atk) {
			where, args := whereRow(t, s.rows[t][v][0], 1)
			var found bool
			err := tx.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", t.qname(), where), args...).Scan(&found)
			r.judge(err, found, "EXISTS found a row of T%d", v)
		}
		return nil
	})
}

func caseCTE(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tc := ident(t.tenantCol)
	own := len(s.rows[t][atk])
	tok := s.token(atk)
	_ = s.as(ctx, tok, false, func(tx pgx.Tx) error {
		var foreign, total int
		err := tx.QueryRow(ctx, fmt.Sprintf("WITH x AS MATERIALIZED (SELECT %s::text AS tn FROM %s) SELECT count(*) FILTER (WHERE tn <> $1), count(*) FROM x", tc, t.qname()), s.tenants[atk].String()).Scan(&foreign, &total)
		r.judge(err, foreign != 0, "a CTE saw %d rows of other tenants", foreign)
		r.control(err == nil && total == own, "a CTE saw %d rows (%v), want the own %d", total, err, own)
		got, err := strs(ctx, tx, fmt.Sprintf("WITH RECURSIVE r(x, d) AS (SELECT %s, 1 FROM %s x UNION ALL SELECT x, d + 1 FROM r WHERE d < 2) SELECT x FROM r", t.readableRow(), t.qname()))
		f := s.foreignIn(strings.Join(got, "\n"), atk)
		r.judge(err, len(f) != 0, "a recursive CTE returned rows of %v", f)
		return nil
	})
	for _, v := range s.victims(atk) {
		where, args := whereRow(t, s.leaf(t, v), 1)
		_ = s.as(ctx, tok, false, func(tx pgx.Tx) error {
			var n int
			err := tx.QueryRow(ctx, fmt.Sprintf("WITH d AS (DELETE FROM %s WHERE %s RETURNING 1) SELECT count(*) FROM d", t.qname(), where), args...).Scan(&n)
			r.judge(err, n > 0, "a writable CTE deleted %d rows of T%d", n, v)
			return nil
		})
	}
}

func caseAggregate(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	tc := ident(t.tenantCol)
	own := len(s.rows[t][atk])
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		var n, distinct int
		var lo, hi, all string
		err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*), count(DISTINCT %s), coalesce(min(%[1]s::text), ''), coalesce(max(%[1]s::text), ''), coalesce(string_agg(%s, ' '), '') FROM %s x", tc, t.readableRow(), t.qname())).
			Scan(&n, &distinct, &lo, &hi, &all)
		if err != nil {
			r.errorf("aggregate: %v", err)
			return nil
		}
		me := s.tenants[atk].String()
		r.expect(n == own, "count(*) is %d, want the own %d", n, own)
		r.expect(distinct == 1 && lo == me && hi == me, "aggregates over the tenant column saw %d tenants (%s .. %s)", distinct, lo, hi)
		f := s.foreignIn(all, atk)
		r.expect(len(f) == 0, "string_agg returned rows of %v", f)
		got, err := strs(ctx, tx, fmt.Sprintf("SELECT %s::text FROM %s GROUP BY 1 HAVING count(*) > 0", tc, t.qname()))
		r.judge(err, len(got) > 1 || len(got) == 1 && got[0] != me, "GROUP BY tenant returned %v", got)
		return nil
	})
}

func caseWindowCount(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	own := len(s.rows[t][atk])
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		var total, rank, maxRow int
		err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) OVER (), dense_rank() OVER (ORDER BY %s), max(rn) OVER () FROM (SELECT %s, row_number() OVER () rn FROM %s) x LIMIT 1",
			ident(t.tenantCol), t.readableCols(), t.qname())).Scan(&total, &rank, &maxRow)
		r.judge(err, total > own || maxRow > own, "count(*) OVER () = %d, row_number up to %d: want the own %d", total, maxRow, own)
		r.control(err != nil || total == own && maxRow == own, "count(*) OVER () = %d, row_number up to %d: want the own %d", total, maxRow, own)
		return nil
	})
}

func caseUniqueViolation(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	if len(t.uniques)+len(t.partialUniques) == 0 {
		r.na = "no unique key"
		return
	}
	// A key with the tenant column in it holds per tenant: its violations tell of own rows only.
	var spanning []key
	for _, u := range append(slices.Clone(t.uniques), t.partialUniques...) {
		if !slices.Contains(u.cols, t.tenantCol) {
			spanning = append(spanning, u)
		}
	}
	if len(spanning) == 0 {
		r.checks++
		r.notef("every unique key includes the tenant column %s: it holds per tenant", t.tenantCol)
		return
	}
	tok := s.token(atk)
	for _, u := range spanning {
		for _, v := range s.victims(atk) {
			// An own row holding the victim's values in this key's columns (and in the columns of its
			// predicate, for a partial index).
			base := s.leaf(t, atk)
			vr := s.leaf(t, v)
			mixed := &seedRow{vals: map[string]*string{}}
			for k, val := range base.vals {
				mixed.vals[k] = val
			}
			cols := append(slices.Clone(u.cols), t.partialPreds[u.name]...)
			for _, c := range cols {
				mixed.vals[c] = vr.vals[c]
			}
			sql, args := s.clone(t, mixed, s.tenants[atk].String(), cols, nil)
			_, err := s.exec(ctx, tok, sql, args...)
			var pe *pgconn.PgError
			errors.As(err, &pe)
			switch {
			case err == nil:
				r.checks++
			case sqlState(err) == "23505" && pe.ConstraintName == u.name && t.sequenced(u.cols):
				r.checks++
				r.notef("%s holds across tenants, but its values come from a sequence that every tenant's inserts advance", u.name)
			case sqlState(err) == "23505" && pe.ConstraintName == u.name:
				r.expect(false, "%s holds across tenants: inserting T%d's values fails and says so: %v", u.name, v, err)
			case sqlState(err) == "23505":
				r.checks++
				r.notef("%s: the own row conflicts with an own row on %s: not probed", u.name, pe.ConstraintName)
			case sqlState(err) == "23503":
				r.notef("%s: T%d's values violate a foreign key under the own tenant; not probed", u.name, v)
			case refused(err):
				// Refused though it names the own tenant: only if a fresh own row is accepted does the
				// refusal tell the values exist.
				fresh, fargs := s.clone(t, base, s.tenants[atk].String(), nil, nil)
				_, ferr := s.exec(ctx, tok, fresh, fargs...)
				r.checks++
				if ferr == nil {
					r.leakf("%s: an own row with T%d's values was refused (%v), a fresh one accepted: the refusal tells the values exist", u.name, v, err)
				} else {
					r.notef("%s: the app role may not insert own rows here (%s)", u.name, sqlState(ferr))
				}
			default:
				r.errorf("%s: %v", u.name, err)
			}
			s.verify(ctx, r, atk)
		}
	}
}

// ownKeyTaken reports whether row vr, moved to tenant atk with the parents given, has the primary key
// of one of atk's rows (a table keyed by its tenant and foreign keys).
func (s *suite) ownKeyTaken(t *table, atk int, vr *seedRow, parents map[string]*string) bool {
	for _, own := range s.rows[t][atk] {
		same := true
		for _, c := range t.pk {
			var v *string
			switch {
			case c == t.tenantCol:
				v = ptr(s.tenants[atk].String())
			case hasKey(parents, c):
				v = parents[c]
			default:
				v = vr.vals[c]
			}
			o := own.vals[c]
			if (v == nil) != (o == nil) || v != nil && *v != *o {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// sequenced reports whether every column of cols takes its values from a sequence (identity, serial).
func (t *table) sequenced(cols []string) bool {
	for _, name := range cols {
		c := t.col(name)
		if c == nil || (c.identity == "" && !c.serial) {
			return false
		}
	}
	return len(cols) > 0
}

// onlyTenant reports whether cols are the tenant column alone.
func onlyTenant(t *table, cols []string) bool { return len(cols) == 1 && cols[0] == t.tenantCol }

func caseCopyTo(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	own := len(s.rows[t][atk])
	stmts := []string{fmt.Sprintf("COPY (SELECT %s FROM %s x) TO STDOUT", t.readableRow(), t.qname())}
	if !t.partitioned {
		stmts = append(stmts, fmt.Sprintf("COPY %s TO STDOUT", t.qname())) // not of a partitioned table
	}
	for _, sql := range stmts {
		_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
			var b strings.Builder
			_, err := tx.Conn().PgConn().CopyTo(ctx, &b, sql)
			if refused(err) {
				r.checks++
				return nil
			}
			if err != nil {
				r.errorf("%s: %v", sql, err)
				return nil
			}
			f := s.foreignIn(b.String(), atk)
			r.expect(len(f) == 0, "%s returned rows of %v", sql, f)
			if s.cat.citus && b.Len() == 0 && !strings.HasPrefix(sql, "COPY (") {
				// Citus copies a table out without the transaction's SET LOCAL context: it reads nothing,
				// not even the own rows (COPY (SELECT ...) has the context).
				r.notRun = append(r.notRun, sql+": Citus runs it without the tenant context, and it returns no row")
				return nil
			}
			r.control(strings.Count(b.String(), "\n") == own, "%s returned %d lines, want the own %d", sql, strings.Count(b.String(), "\n"), own)
			return nil
		})
	}
}

func caseCursor(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	own := len(s.rows[t][atk])
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DECLARE tenantseal_probe SCROLL CURSOR FOR "+rowText(t)); err != nil {
			r.errorf("DECLARE: %v", err)
			return nil
		}
		var all []string
		for _, fetch := range []string{"FETCH ALL FROM tenantseal_probe", "FETCH ABSOLUTE 1 FROM tenantseal_probe", "FETCH BACKWARD ALL FROM tenantseal_probe", "FETCH LAST FROM tenantseal_probe"} {
			got, err := strs(ctx, tx, fetch)
			if err != nil {
				r.errorf("%s: %v", fetch, err)
				return nil
			}
			if fetch == "FETCH ALL FROM tenantseal_probe" {
				r.control(len(got) == own, "the cursor returned %d rows, want the own %d", len(got), own)
			}
			all = append(all, got...)
		}
		f := s.foreignIn(strings.Join(all, "\n"), atk)
		r.expect(len(f) == 0, "a cursor returned rows of %v", f)
		return nil
	})
}

func caseOwnerBypass(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	v := fmt.Sprintf("%s.%s", ident(s.probeSchema), ident(fmt.Sprintf("owner_view_%d", t.oid)))
	if _, err := s.super.Exec(ctx, fmt.Sprintf(`CREATE OR REPLACE VIEW %[1]s AS SELECT x::text AS r FROM %[2]s x;
		ALTER VIEW %[1]s OWNER TO %[3]s; GRANT SELECT ON %[1]s TO %[4]s`, v, t.qname(), ident(t.owner), ident(s.appRole))); err != nil {
		r.errorf("create a view owned by %s: %v", t.owner, err)
		return
	}
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		got, err := strs(ctx, tx, "SELECT r FROM "+v)
		if err != nil {
			r.errorf("read the owner's view: %v", err)
			return nil
		}
		f := s.foreignIn(strings.Join(got, "\n"), atk)
		if t.oid == s.cat.ownerRegistry && len(f) > 0 {
			r.checks++
			r.notef("the owner %s administers the adopted registry by the policy tenantseal_registry_owner: its views and SECURITY DEFINER functions over it see every tenant", t.owner)
			return nil
		}
		r.expect(len(f) == 0, "the table's owner %s is not subject to row-level security (force_rls=%v): a view or SECURITY DEFINER function it owns shows rows of %v",
			t.owner, t.force, f)
		return nil
	})
}

func casePreparedReuse(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	conn, err := s.acquire(ctx)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	defer conn.Release()
	name := "tenantseal_probe_" + randomHex(4)
	if _, err := conn.Conn().Prepare(ctx, name, rowText(t)); err != nil {
		r.errorf("prepare: %v", err)
		return
	}
	defer conn.Conn().Deallocate(context.WithoutCancel(ctx), name)
	if _, err := conn.Exec(ctx, "PREPARE "+name+"_sql AS "+rowText(t)); err != nil {
		r.errorf("PREPARE: %v", err)
		return
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DEALLOCATE "+name+"_sql")
	// More rounds than the five after which the server may switch to a generic plan.
	rounds := 3 * len(s.tenants)
	for i := range rounds {
		ti := (atk + i) % len(s.tenants)
		for _, sql := range []string{name, "EXECUTE " + name + "_sql"} {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if err := s.enterContext(ctx, tx, s.token(ti)); err != nil {
					return err
				}
				got, err := strs(ctx, tx, sql)
				if err != nil {
					return err
				}
				f := s.foreignIn(strings.Join(got, "\n"), ti)
				r.expect(len(f) == 0, "round %d as T%d: the reused statement returned rows of %v", i, ti, f)
				r.control(len(got) == len(s.rows[t][ti]), "round %d as T%d: %d rows, want %d", i, ti, len(got), len(s.rows[t][ti]))
				return nil
			})
			if err != nil {
				r.errorf("round %d: %v", i, err)
			}
		}
	}
}

func caseView(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	for _, v := range s.cat.views {
		r := emit("view " + v.String())
		_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
			got, err := strs(ctx, tx, fmt.Sprintf("SELECT x::text FROM %s x", v.qname()))
			if refused(err) {
				r.checks++
				return nil
			}
			if err != nil {
				r.errorf("%v", err)
				return nil
			}
			f := s.foreignIn(strings.Join(got, "\n"), atk)
			r.expect(len(f) == 0, "view (owner %s, security_invoker=%v) shows rows of %v", v.owner, v.invoker, f)
			return nil
		})
	}
}

func caseSecurityDefiner(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	for _, f := range s.cat.functions {
		r := emit("function " + f.String())
		call := func(args []any) (string, error) {
			var ph []string
			for i, typ := range f.argTypes {
				ph = append(ph, fmt.Sprintf("($%d::text)::%s", i+1, typ))
			}
			var out []string
			err := s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
				var err error
				out, err = strs(ctx, tx, fmt.Sprintf("SELECT x::text FROM %s.%s(%s) AS x", ident(f.schema), ident(f.name), strings.Join(ph, ", ")), args...)
				return err
			})
			// An argument echoed back is not data of the tenant it names.
			text := strings.Join(out, "\n")
			for i, a := range args {
				if v, ok := a.(string); ok && v != "" {
					text = strings.ReplaceAll(text, v, fmt.Sprintf("<argument %d>", i+1))
				}
			}
			return text, err
		}
		accepted := contains(s.cfg.AcceptOracles, f.schema+"."+f.name)
		for _, p := range s.craftedArgs(f, atk) {
			got, err := call(p.crafted)
			if err != nil {
				r.checks++
				r.notef("with crafted arguments: refused or failed (SQLSTATE %s)", sqlState(err))
				continue
			}
			leak := s.foreignIn(got, atk)
			r.expect(len(leak) == 0, "called with %s, it returned data of %v", p.what, leak)
			if p.baseline == nil {
				continue
			}
			// The same call with made-up values instead of the other tenant's: any difference in the
			// answer tells the attacker something about that tenant's rows.
			base, err := call(p.baseline)
			if err != nil {
				continue
			}
			switch {
			case base == got:
				r.checks++
			case accepted:
				r.checks++
				r.notef("answers differently for %s than for made-up values (%q vs %q): an accepted oracle (Config.AcceptOracles)", p.what, got, base)
			default:
				r.expect(false, "answers differently for %s than for made-up values (%q vs %q): an oracle for other tenants' rows", p.what, got, base)
			}
		}
	}
}

// argSet is one call of a function with values of another tenant, and the same call with made-up values.
type argSet struct {
	what              string
	crafted, baseline []any
}

// craftedArgs are argument lists that name another tenant (its key in every argument of a type that
// can hold it, its rows' keys and values, with every tenant table for a regclass argument), each with
// its made-up twin of the same types, and all NULLs.
func (s *suite) craftedArgs(f *function, atk int) []argSet {
	n := len(f.argTypes)
	if n == 0 {
		return []argSet{{what: "no arguments", crafted: []any{}}}
	}
	v := s.victims(atk)[0]
	var sets []argSet
	crafted, baseline := make([]any, n), make([]any, n)
	named := false
	for i, typ := range f.argTypes {
		if typ == "regclass" {
			crafted[i], baseline[i] = s.cat.tables[0].qname(), s.cat.tables[0].qname()
		} else if k, b, ok := s.tenantArg(typ, v); ok {
			crafted[i], baseline[i] = k, b
			named = true
		}
	}
	if named {
		sets = append(sets, argSet{what: fmt.Sprintf("T%d's tenant key", v), crafted: crafted, baseline: baseline})
	}
	for _, t := range s.cat.tables {
		crafted, baseline := make([]any, n), make([]any, n)
		named := false
		for i, typ := range f.argTypes {
			switch c, val := s.argFromRow(t, typ, v); {
			case typ == "regclass":
				crafted[i], baseline[i] = t.qname(), t.qname()
			case val != nil:
				crafted[i] = *val
				named = true
				for _, cand := range candidates(t, c, s.marker()) {
					if cand != nil && *cand != *val {
						baseline[i] = *cand
						break
					}
				}
			default:
				if k, b, ok := s.tenantArg(typ, v); ok {
					crafted[i], baseline[i] = k, b
				}
			}
		}
		if named {
			sets = append(sets, argSet{what: fmt.Sprintf("T%d's row values (%s)", v, t), crafted: crafted, baseline: baseline})
		}
	}
	return append(sets, argSet{what: "all NULLs", crafted: make([]any, n)})
}

// tenantArg returns tenant v's key as an argument of type typ, a made-up key of the same shape, and
// whether typ can hold the key at all.
func (s *suite) tenantArg(typ string, v int) (key, madeUp string, ok bool) {
	id := s.tenants[v]
	other := s.madeUpKey()
	switch typ {
	case "uuid":
		if s.cat.keyType == "uuid" {
			return id.String(), other, true
		}
		return uuid.Format(id.Handle()), newUUID(), true
	case "text", "character varying", "character", "name", "citext":
		return id.String(), other, true
	case "bigint", "numeric":
		if _, isInt := id.Int64(); isInt {
			return id.String(), other, true
		}
	case "integer":
		if n, isInt := id.Int64(); isInt && n >= -1<<31 && n < 1<<31 {
			return id.String(), other, true
		}
	}
	return "", "", false
}

// madeUpKey returns a tenant key of the deployment's type that no tenant has.
func (s *suite) madeUpKey() string {
	switch s.cat.keyType {
	case "bigint":
		return fmt.Sprint(1_000_000_000_000_000 + randInt(8_000_000_000_000_000))
	case "integer":
		return fmt.Sprint(1_000_000_000 + randInt(1_100_000_000))
	case "text":
		return "tsiso-" + randomHex(6)
	}
	return newUUID()
}

var typmod = regexp.MustCompile(`\(\d+(,\d+)?\)`)

// argFromRow picks a column of type typ (its type modifier aside) and its value in tenant v's first row
// of t: the key first.
func (s *suite) argFromRow(t *table, typ string, v int) (*column, *string) {
	cols := append([]string{t.idColumn()}, t.rowKey()...)
	for _, c := range t.cols {
		cols = append(cols, c.name)
	}
	for _, name := range cols {
		c := t.col(name)
		if c == nil || typmod.ReplaceAllString(c.typ, "") != typ || c.name == t.tenantCol {
			continue
		}
		if val := s.rows[t][v][0].vals[c.name]; val != nil {
			return c, val
		}
	}
	return nil, nil
}
