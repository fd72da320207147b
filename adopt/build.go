package adopt

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// shape is what an index looks like after the plan: its key columns ("" for an expression).
type shape struct {
	cols            []string
	unique, partial bool
}

// build turns the classified catalog into changes. Nothing here refuses: checkData did.
func (b *builder) build() {
	b.shapes = map[*table][]shape{}
	b.used = map[string]bool{}
	for _, t := range b.cat.tables {
		b.used[t.schema+"."+t.name] = true
		for _, x := range t.indexes {
			b.used[t.schema+"."+x.name] = true
			b.shapes[t] = append(b.shapes[t], shape{cols: t.names(x.cols), unique: x.unique, partial: x.partial})
		}
		for _, c := range t.cons {
			b.used[t.schema+"."+c.name] = true
		}
	}
	for _, t := range b.widen {
		c := t.column(b.tc[t])
		b.add(Change{Kind: KindWidenTenantColumn, Table: t.qualified(),
			Reason: fmt.Sprintf("tenant column %s is integer, and the tenant keys are bigint: it is widened to bigint, which every value it holds fits, so that the policies compare it in the keys' own type (the table is rewritten)", c.name),
			Up:     []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE bigint", t.ident(), ident(c.name))},
			Down:   []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", t.ident(), ident(c.name), c.typ)}})
	}
	for _, t := range b.backfill {
		b.addTenantColumn(t)
	}
	for _, t := range b.protected() {
		if c := t.column(b.tc[t]); c != nil && !c.notNull {
			b.add(Change{Kind: KindSetNotNull, Table: t.qualified(),
				Reason: fmt.Sprintf("tenant column %s is nullable (and holds no NULL): a row without a tenant would be no tenant's, and protect_table refuses a nullable tenant column", c.name),
				Up:     []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", t.ident(), ident(c.name))},
				Down:   []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", t.ident(), ident(c.name))}})
		}
	}
	replaced := map[uint32]bool{}
	for _, pr := range b.pairs {
		replaced[pr.fk.oid] = true
		b.add(Change{Kind: KindDropForeignKey, Table: pr.child.qualified(),
			Reason: fmt.Sprintf("foreign key %s is replaced below by one that pairs the tenant columns", pr.fk.name),
			Up:     []string{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", pr.child.ident(), ident(pr.fk.name))},
			Down:   []string{fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", pr.child.ident(), ident(pr.fk.name), pr.fk.def)}})
	}
	for _, t := range b.cat.tables {
		if b.isTenant(t) {
			b.keys(t, replaced)
		}
	}
	for _, pr := range b.pairs {
		want := append([]string{b.tc[pr.parent]}, pr.parent.names(pr.fk.refCols)...)
		b.addUnique(pr.parent, want, fmt.Sprintf("foreign key %s of %s references it paired with the tenant column, which needs a unique key on those columns", pr.fk.name, pr.child.qualified()))
	}
	for _, t := range b.cat.tables {
		if b.isTenant(t) {
			b.indexes(t)
		}
	}
	for _, pr := range b.pairs {
		b.pairForeignKey(pr)
	}
	for _, t := range b.cat.tables {
		if b.isTenant(t) {
			b.lookupIndexes(t)
		}
	}
	if r := b.d.Registry; r != nil {
		t := b.cat.byName[r.Table]
		args := fmt.Sprintf("%s::regclass, key_column => %s", literal(t.ident()), literal(r.Key))
		if r.Name != "" {
			args += ", name_column => " + literal(r.Name)
		}
		if !slices.Contains(b.already, t) {
			b.add(Change{Kind: KindAdoptRegistry, Table: t.qualified(),
				Reason: fmt.Sprintf("the registry of tenants: every row becomes a tenantseal tenant keyed by %s, and a trigger registers new rows", r.Key),
				Up:     []string{"SELECT tenantseal.adopt_registry(" + args + ")"},
				Down:   []string{fmt.Sprintf("SELECT tenantseal.release_registry(%s::regclass)", literal(t.ident()))}})
		}
	}
	if b.d.Citus {
		b.citus()
	}
	for _, t := range b.distributionOrder(b.protected()) {
		b.protect(t)
	}
	b.grants()
}

// citus adds what a Citus coordinator needs besides protect's distribute_table: the global tables as
// reference tables, the tenant tables' foreign keys to them dropped before and made again after (Citus
// would otherwise make the tenant tables Citus local tables, which it then refuses to distribute with
// their foreign keys), and, first in the down file, every table back on the coordinator.
func (b *builder) citus() {
	const sequential = "SET LOCAL citus.multi_shard_modify_mode TO sequential"
	b.add(Change{Kind: KindReferenceTable, Table: strings.Join(b.d.Schemas, ", "),
		Reason: "Citus: the file's operations on distributed tables one connection after another, as a transaction that goes on to change their tables needs",
		Up:     []string{sequential}})
	var back []string
	unforce := []string{sequential}
	global := map[uint32]bool{}
	for _, t := range b.cat.tables {
		if b.role[t] == roleGlobal {
			global[t.oid] = true
		}
	}
	for _, t := range b.distributionOrder(b.protected()) {
		if slices.Contains(b.already, t) {
			continue
		}
		for _, c := range t.cons {
			if c.kind != 'f' || !global[c.ref] {
				continue
			}
			drop := fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", t.ident(), ident(c.name))
			add := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", t.ident(), ident(c.name), c.def)
			b.add(Change{Kind: KindReferenceTable, Table: t.qualified(),
				Reason: fmt.Sprintf("Citus: foreign key %s to a global table, dropped while the tables are distributed and made again after", c.name),
				Up:     []string{drop}, Down: []string{add}})
			b.add(Change{Kind: KindReferenceKey, Table: t.qualified(),
				Reason: fmt.Sprintf("Citus: foreign key %s again, from the distributed table to the reference table (before the policies: Citus deadlocks on a key checked under them in the transaction that made them)", c.name),
				Up:     []string{citusDDL(add)}, Down: []string{citusDDL(drop)}})
		}
		// Statistics first: Citus copies the targets to the shards and changes them no more.
		reg := literal(t.ident()) + "::regclass"
		b.add(Change{Kind: KindDistribute, Table: t.qualified(),
			Reason: fmt.Sprintf("tenant table on Citus: no column statistics, then sharded by %s, colocated with the other tenant tables (after the tables its foreign keys reference); protect_table then writes its policies in the Citus form", b.tc[t]),
			Up:     []string{"SELECT tenantseal.hide_statistics(" + reg + ")", fmt.Sprintf("SELECT create_distributed_table(%s, %s)", reg, literal(b.tc[t]))}})
		back = append(back, literal(t.ident()))
		unforce = append(unforce, citusDDL(fmt.Sprintf("ALTER TABLE %s NO FORCE ROW LEVEL SECURITY", t.ident())))
	}
	for _, t := range b.cat.tables {
		if b.role[t] != roleGlobal {
			continue
		}
		b.add(Change{Kind: KindReferenceTable, Table: t.qualified(),
			Reason: "global table on Citus: a reference table, copied to every node, that the tenant tables' foreign keys may reference",
			Up:     []string{"SELECT create_reference_table(" + literal(t.ident()) + "::regclass)"}})
		back = append(back, literal(t.ident()))
	}
	if len(back) == 0 {
		return
	}
	// Row-level security not forced meanwhile, so that the owner, who runs the file, copies every row
	// back (forced, with no policy of its own, it would copy none); the protect changes' undoing, later
	// in the file, drops the policies and restores what was there before.
	undo := append(unforce, "DO $$\nDECLARE\n    t regclass;\nBEGIN\n    FOREACH t IN ARRAY ARRAY["+strings.Join(back, ", ")+"]::regclass[] LOOP\n"+
		"        IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = t) THEN\n"+
		"            PERFORM undistribute_table(t, cascade_via_foreign_keys => true);\n        END IF;\n    END LOOP;\nEND $$")
	b.add(Change{Kind: KindUndistribute, Table: strings.Join(b.d.Schemas, ", "),
		Reason: "Citus: the tables adopt distributed, back on the coordinator as plain tables, with every row", Down: undo})
}

// citusDDL wraps stmt, DDL on a distributed table, in a DO block: Citus sends such DDL to the workers
// as the text it was given, which in a file run as one string (golang-migrate's) is the whole file, and
// the workers refuse that ("cannot insert multiple commands into a prepared statement"); inside the
// block the text is the statement alone.
func citusDDL(stmt string) string {
	return "DO $tenantseal$ BEGIN EXECUTE " + literal(stmt) + "; END $tenantseal$"
}

// distributionOrder returns ts with every table after the tables of ts that its foreign keys reference:
// Citus distributes a table only after those (a cycle keeps the catalog's order among its tables).
func (b *builder) distributionOrder(ts []*table) []*table {
	if !b.d.Citus {
		return ts
	}
	in := map[uint32]*table{}
	for _, t := range ts {
		in[t.oid] = t
	}
	seen := map[*table]bool{}
	var out []*table
	var visit func(t *table)
	visit = func(t *table) {
		if seen[t] {
			return
		}
		seen[t] = true
		for _, c := range t.cons {
			if p := in[c.ref]; c.kind == 'f' && p != nil && p != t {
				visit(p)
			}
		}
		out = append(out, t)
	}
	for _, t := range ts {
		visit(t)
	}
	return out
}

func (b *builder) add(c Change) { b.changes = append(b.changes, c) }

// name returns an index or constraint name for t that no relation or constraint of its schema has.
func (b *builder) name(t *table, cols []string, suffix string) string {
	base := t.name + "_" + strings.Join(cols, "_")
	for i := 0; ; i++ {
		s := "_" + suffix
		if i > 0 {
			s = strconv.Itoa(i) + s
		}
		n := base
		if len(n)+len(s) > 63 {
			n = n[:63-len(s)] // byte-wise, as PostgreSQL truncates; UTF-8 boundaries aside
		}
		n += s
		if !b.used[t.schema+"."+n] {
			b.used[t.schema+"."+n] = true
			return n
		}
	}
}

func (b *builder) addTenantColumn(t *table) {
	fk := b.path[t]
	p := b.cat.byOID[fk.ref]
	col := b.tc[t]
	typName := b.tenantType(p)
	b.add(Change{Kind: KindAddTenantColumn, Table: t.qualified(),
		Reason: fmt.Sprintf("no tenant column, but foreign key %s leads to %s: the column is added and filled from the parent row's tenant; the application must now set it on insert", fk.name, p.qualified()),
		Up: []string{
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", t.ident(), ident(col), typName),
			fmt.Sprintf("UPDATE %s c SET %s = p.%s FROM %s p WHERE %s", t.ident(), ident(col), ident(b.tc[p]), p.ident(), joinOn("p", p.names(fk.refCols), "c", t.names(fk.cols))),
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", t.ident(), ident(col)),
		},
		Down: []string{fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", t.ident(), ident(col))}})
}

// tenantType is the type of t's tenant column once the plan is applied; a backfilled table's is its
// parent's.
func (b *builder) tenantType(t *table) string {
	for b.role[t] == roleBackfill {
		t = b.cat.byOID[b.path[t].ref]
	}
	if slices.Contains(b.widen, t) {
		return "bigint"
	}
	return t.column(b.tc[t]).typ
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if x == "" || !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// addUnique adds a unique key on cols to t unless a full unique index on the same columns exists.
func (b *builder) addUnique(t *table, cols []string, reason string) {
	for _, s := range b.shapes[t] {
		if s.unique && !s.partial && sameSet(s.cols, cols) {
			return
		}
	}
	name := b.name(t, cols, "key")
	b.add(Change{Kind: KindTenantKey, Table: t.qualified(), Reason: reason,
		Up:   []string{fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE (%s)", t.ident(), ident(name), idents(cols))},
		Down: []string{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", t.ident(), ident(name))}})
	b.shapes[t] = append(b.shapes[t], shape{cols: cols, unique: true})
}

func (b *builder) addIndex(t *table, cols []string, reason string) {
	name := b.name(t, cols, "idx")
	b.add(Change{Kind: KindLookupIndex, Table: t.qualified(), Reason: reason,
		Up:   []string{fmt.Sprintf("CREATE INDEX %s ON %s (%s)", ident(name), t.ident(), idents(cols))},
		Down: []string{fmt.Sprintf("DROP INDEX %s", pgxIdent(t.schema, name))}})
	b.shapes[t] = append(b.shapes[t], shape{cols: cols})
}

// setShape replaces the shape of t's index i (in t.indexes order) with cols.
func (b *builder) setShape(t *table, i int, cols []string) {
	b.shapes[t][i].cols = cols
}

func (b *builder) pinned(t *table, indexOID uint32, replaced map[uint32]bool) bool {
	for _, x := range t.indexes {
		if x.oid == indexOID {
			for _, d := range x.dependents {
				if !replaced[d] {
					return true
				}
			}
		}
	}
	return false
}

func (b *builder) indexPos(t *table, oid uint32) int {
	return slices.IndexFunc(t.indexes, func(x *index) bool { return x.oid == oid })
}

// keys puts the tenant column into t's keys, so that uniqueness holds per tenant.
func (b *builder) keys(t *table, replaced map[uint32]bool) {
	tc := b.tc[t]
	for _, c := range t.cons {
		cols := t.names(c.cols)
		switch {
		case c.kind == 'x' && !slices.Contains(cols, tc):
			b.note(t, "exclusion constraint %s spans tenants: add %s WITH = to it yourself (btree_gist)", c.name, tc)
			continue
		case c.kind != 'p' && c.kind != 'u', slices.Contains(cols, tc):
			continue
		}
		with := append([]string{tc}, cols...)
		if c.kind == 'p' && len(cols) == 1 && b.d.KeepPrimaryKeys {
			b.addUnique(t, with, fmt.Sprintf("primary key %s is one column, kept as the declaration asks: (%s) is the key that foreign keys of other tenant tables reference with the tenant column (the one-column key still tells a tenant that inserts an id whether another tenant has it: lint reports it as TS008)", c.name, strings.Join(with, ", ")))
			continue
		}
		if b.pinned(t, c.index, replaced) {
			b.addUnique(t, with, fmt.Sprintf("key %s spans tenants, but a foreign key adopt does not change references it: the tenant's key is added next to it", c.name))
			b.note(t, "key %s still spans tenants: a foreign key that adopt leaves as is references it", c.name)
			continue
		}
		def, ok := insertTenant(c.def, []string{"PRIMARY KEY (", "UNIQUE NULLS NOT DISTINCT (", "UNIQUE ("}, tc)
		if !ok {
			b.note(t, "key %s spans tenants and adopt cannot rewrite its definition (%s): add %s to it yourself", c.name, c.def, tc)
			continue
		}
		what := "unique key"
		if c.kind == 'p' {
			what = "primary key"
		}
		b.add(Change{Kind: KindTenantKey, Table: t.qualified(),
			Reason: fmt.Sprintf("%s %s spans tenants: a duplicate-key error would tell one tenant what another stores; it becomes unique per tenant", what, c.name),
			Up: []string{
				fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", t.ident(), ident(c.name)),
				fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", t.ident(), ident(c.name), def),
			},
			Down: []string{
				fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", t.ident(), ident(c.name)),
				fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", t.ident(), ident(c.name), c.def),
			}})
		if i := b.indexPos(t, c.index); i >= 0 {
			b.setShape(t, i, with)
		}
	}
	for i, x := range t.indexes {
		cols := t.names(x.cols)
		if !x.unique || x.constraint || slices.Contains(cols, tc) {
			continue
		}
		switch {
		case b.pinned(t, x.oid, replaced):
			b.note(t, "unique index %s spans tenants, but a foreign key adopt does not change references it: left as is", x.name)
			continue
		case x.am != "btree":
			b.note(t, "unique index %s (%s) spans tenants: add %s to it yourself", x.name, x.am, tc)
			continue
		}
		b.rewriteIndex(t, i, x, fmt.Sprintf("unique index %s spans tenants: a duplicate-key error would tell one tenant what another stores; it becomes unique per tenant", x.name))
	}
}

// indexes leads t's other indexes with the tenant column.
func (b *builder) indexes(t *table) {
	tc := b.tc[t]
	for i, x := range t.indexes {
		cols := t.names(x.cols)
		if x.unique || (len(cols) > 0 && cols[0] == tc) {
			continue
		}
		switch {
		case slices.Contains(cols, tc):
			b.note(t, "index %s has %s, but not first: reorder it yourself", x.name, tc)
			continue
		case x.am != "btree":
			b.note(t, "index %s (%s) is not led by %s: recreate it with btree_gin or btree_gist's operator class for %s", x.name, x.am, tc, tc)
			continue
		}
		b.rewriteIndex(t, i, x, fmt.Sprintf("index %s is not led by %s: under row-level security the planner may use it for a caller's own condition and filter by tenant afterwards, and EXPLAIN (ANALYZE) counts the rows of other tenants it removed", x.name, tc))
	}
}

func (b *builder) rewriteIndex(t *table, i int, x *index, reason string) {
	tc := b.tc[t]
	kw := "CREATE INDEX "
	if x.unique {
		kw = "CREATE UNIQUE INDEX "
	}
	var prefixes []string
	for _, on := range []string{" ON ", " ON ONLY "} {
		prefixes = append(prefixes, kw+x.quoted+on+x.qualifiedTable+" USING "+x.am+" (")
	}
	def, ok := insertTenant(x.def, prefixes, tc)
	if !ok {
		b.note(t, "index %s is not led by %s and adopt cannot rewrite its definition: recreate it yourself", x.name, tc)
		return
	}
	drop := fmt.Sprintf("DROP INDEX %s", pgxIdent(t.schema, x.name))
	b.add(Change{Kind: KindTenantIndex, Table: t.qualified(), Reason: reason,
		Up: []string{drop, def}, Down: []string{drop, x.def}})
	b.setShape(t, i, append([]string{tc}, t.names(x.cols)...))
}

// insertTenant puts column tc first in the column list that follows the first of prefixes def starts
// with.
func insertTenant(def string, prefixes []string, tc string) (string, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(def, p); ok {
			return p + ident(tc) + ", " + rest, true
		}
	}
	return "", false
}

var fkActions = map[byte]string{'a': "NO ACTION", 'r': "RESTRICT", 'c': "CASCADE", 'n': "SET NULL", 'd': "SET DEFAULT"}

func (b *builder) pairForeignKey(pr fkPair) {
	ccols, pcols := pr.child.names(pr.fk.cols), pr.parent.names(pr.fk.refCols)
	fk := pr.fk
	var s strings.Builder
	fmt.Fprintf(&s, "FOREIGN KEY (%s) REFERENCES %s (%s)", idents(append([]string{b.tc[pr.child]}, ccols...)),
		pr.parent.ident(), idents(append([]string{b.tc[pr.parent]}, pcols...)))
	if fk.match == 'f' {
		s.WriteString(" MATCH FULL")
	}
	fmt.Fprintf(&s, " ON UPDATE %s ON DELETE %s", fkActions[fk.onUpdate], fkActions[fk.onDelete])
	if fk.onDelete == 'n' || fk.onDelete == 'd' {
		// Only the reference is cleared, never the row's tenant.
		fmt.Fprintf(&s, " (%s)", idents(ccols))
	}
	if fk.deferrable {
		s.WriteString(" DEFERRABLE")
		if fk.initiallyDeferred {
			s.WriteString(" INITIALLY DEFERRED")
		}
	}
	if !fk.validated {
		s.WriteString(" NOT VALID")
	}
	reason := fmt.Sprintf("foreign key %s to %s does not pair the tenant columns: a row could point at another tenant's row, and the key's check (which ignores row-level security) would confirm that it exists", fk.name, pr.parent.qualified())
	if fk.onUpdate == 'n' || fk.onUpdate == 'd' {
		reason += fmt.Sprintf("; ON UPDATE %s would now clear the tenant column too: check that the parent's keys never change", fkActions[fk.onUpdate])
	}
	b.add(Change{Kind: KindPairForeignKey, Table: pr.child.qualified(), Reason: reason,
		Up:   []string{fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", pr.child.ident(), ident(fk.name), s.String())},
		Down: []string{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", pr.child.ident(), ident(fk.name))}})
}

// lookupIndexes gives every foreign key of t an index for its lookups, and t an index led by the tenant
// column.
func (b *builder) lookupIndexes(t *table) {
	tc := b.tc[t]
	var fks [][]string
	for _, pr := range b.pairs {
		if pr.child == t {
			fks = append(fks, append([]string{tc}, t.names(pr.fk.cols)...))
		}
	}
	for _, c := range t.cons {
		cols := t.names(c.cols)
		if c.kind == 'f' && slices.Contains(cols, tc) && !slices.ContainsFunc(b.pairs, func(p fkPair) bool { return p.fk == c }) {
			fks = append(fks, cols)
		}
	}
	for _, cols := range fks {
		covered := slices.ContainsFunc(b.shapes[t], func(s shape) bool {
			return !s.partial && len(s.cols) >= len(cols) && sameSet(s.cols[:len(cols)], cols)
		})
		if !covered {
			b.addIndex(t, cols, fmt.Sprintf("no index serves the foreign key on (%s): every delete or key change of the parent would scan %s", strings.Join(cols, ", "), t.qualified()))
		}
	}
	led := slices.ContainsFunc(b.shapes[t], func(s shape) bool { return !s.partial && len(s.cols) > 0 && s.cols[0] == tc })
	if !led {
		b.addIndex(t, []string{tc}, fmt.Sprintf("no index is led by %s: the tenant policy would read the whole table", tc))
	}
}

func (b *builder) protect(t *table) {
	if slices.Contains(b.already, t) {
		b.note(t, "protected by tenantseal already")
		return
	}
	reg := literal(t.ident()) + "::regclass"
	tc := b.tc[t]
	var up []string
	if slices.ContainsFunc(t.acl, func(g grant) bool { return g.grantee == "PUBLIC" }) {
		up = append(up, fmt.Sprintf("REVOKE ALL ON %s FROM PUBLIC", t.ident()))
	}
	up = append(up, fmt.Sprintf("SELECT tenantseal.protect_table(%s, tenant_column => %s)", reg, literal(tc)))
	reason := fmt.Sprintf("tenant table: forced row-level security, one policy per command admitting the rows whose %s is the verified tenant, DML for %s, no column statistics", tc, b.app)
	if b.role[t] == roleRegistry {
		// As tenantseal.tenants: the owner administers tenants, the app role only ever sees its own.
		// adopt_registry gave the owner its policy, tenantseal_registry_owner (release_registry drops it).
		reason = fmt.Sprintf("the registry: each tenant sees and changes its own row only (key %s as the tenant column); the owner creates tenants, through the policy adopt_registry gave it, the app role cannot (its insert policy admits only its own key, which exists)", tc)
		up = append(up, fmt.Sprintf("REVOKE INSERT ON %s FROM %s", t.ident(), ident(b.app)))
		b.opaqueUniques(t, tc)
	}
	if strings.HasPrefix(up[0], "REVOKE ALL") {
		reason += "; PUBLIC loses its privileges on it (they include the app role)"
	}
	down := []string{fmt.Sprintf("SELECT tenantseal.unprotect_table(%s)", reg)}
	if t.rls {
		down = append(down, fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", t.ident()))
	}
	if t.forceRLS {
		down = append(down, fmt.Sprintf("ALTER TABLE %s FORCE ROW LEVEL SECURITY", t.ident()))
	}
	down = append(down, b.restoreACL(t, []string{b.app, b.probe, "PUBLIC"})...)
	for _, c := range t.cols {
		if c.statistics != -1 {
			down = append(down, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET STATISTICS %d", t.ident(), ident(c.name), c.statistics))
		}
	}
	b.add(Change{Kind: KindProtectTable, Table: t.qualified(), Reason: reason, Up: up, Down: down})
}

func roleIdent(r string) string {
	if r == "PUBLIC" {
		return r
	}
	return ident(r)
}

// restoreACL returns the statements that give roles exactly the privileges on t that the catalog
// showed.
func (b *builder) restoreACL(t *table, roles []string) []string {
	var rs []string
	for _, r := range roles {
		if r != "" && !slices.Contains(rs, roleIdent(r)) {
			rs = append(rs, roleIdent(r))
		}
	}
	out := []string{fmt.Sprintf("REVOKE ALL ON %s FROM %s", t.ident(), strings.Join(rs, ", "))}
	mine := func(g grant) bool { return slices.Contains(rs, roleIdent(g.grantee)) }
	opt := func(g grant) string {
		if g.grantable {
			return " WITH GRANT OPTION"
		}
		return ""
	}
	for _, g := range t.acl {
		if mine(g) {
			out = append(out, fmt.Sprintf("GRANT %s ON %s TO %s%s", g.privilege, t.ident(), roleIdent(g.grantee), opt(g)))
		}
	}
	for _, c := range t.cols {
		for _, g := range c.acl {
			if mine(g) {
				out = append(out, fmt.Sprintf("GRANT %s (%s) ON %s TO %s%s", g.privilege, ident(c.name), t.ident(), roleIdent(g.grantee), opt(g)))
			}
		}
	}
	return out
}

func (b *builder) grants() {
	for _, s := range b.noSchemaUsage {
		b.add(Change{Kind: KindGrant, Table: s,
			Reason: fmt.Sprintf("schema %s: %s needs USAGE to reach its tables", s, b.app),
			Up:     []string{fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", ident(s), ident(b.app))},
			Down:   []string{fmt.Sprintf("REVOKE USAGE ON SCHEMA %s FROM %s", ident(s), ident(b.app))}})
	}
	for _, t := range b.cat.tables {
		if b.role[t] != roleGlobal {
			continue
		}
		if slices.ContainsFunc(t.acl, func(g grant) bool { return g.grantee == b.app && g.privilege == "SELECT" }) {
			continue
		}
		b.add(Change{Kind: KindGrant, Table: t.qualified(),
			Reason: fmt.Sprintf("global table: every tenant reads it, %s gets SELECT (no tenant writes it)", b.app),
			Up:     []string{fmt.Sprintf("GRANT SELECT ON %s TO %s", t.ident(), ident(b.app))},
			Down:   b.restoreACL(t, []string{b.app})})
	}
	for _, t := range b.protected() {
		for i, seq := range t.serials {
			if t.serialAppUsage[i] {
				continue
			}
			b.add(Change{Kind: KindGrant, Table: t.qualified(),
				Reason: fmt.Sprintf("a column default calls nextval on %s: %s needs USAGE on it to insert", seq, b.app),
				Up:     []string{fmt.Sprintf("GRANT USAGE ON SEQUENCE %s TO %s", seq, ident(b.app))},
				Down:   []string{fmt.Sprintf("REVOKE USAGE ON SEQUENCE %s FROM %s", seq, ident(b.app))}})
		}
	}
}

func pgxIdent(schema, name string) string { return ident(schema) + "." + ident(name) }

// opaqueUniques rewrites the registry's unique keys that do not contain its key column key (a unique
// name) as unique indexes on tenantseal.opaque_key of their columns. The app role reads its own row of
// the registry only, but a plain unique index on name is a way to the others: WHERE name = 'x' finds
// another tenant's row through it, the policy removes that row as a filter, and EXPLAIN ANALYZE counts
// it. No comparison of the app role's can use an index on a function that is not leakproof; the
// uniqueness holds as before. Keys on columns that are not text, and partial unique indexes, are left
// with a note.
func (b *builder) opaqueUniques(t *table, key string) {
	textual := func(cols []string) bool {
		for _, n := range cols {
			c := t.column(n)
			if c == nil || (c.typname != "text" && c.typname != "varchar") {
				return false
			}
		}
		return len(cols) > 0
	}
	exprs := func(cols []string) string {
		var e []string
		for _, c := range cols {
			e = append(e, fmt.Sprintf("tenantseal.opaque_key(%s::text)", ident(c)))
		}
		return strings.Join(e, ", ")
	}
	reason := func(name string, cols []string) string {
		return fmt.Sprintf("unique key %s of the registry (%s) is not led by %s: WHERE %s = ... would find another tenant's row through it and the policy would remove it as a filter, which EXPLAIN ANALYZE counts; an index on tenantseal.opaque_key, which no query of the app role can use, keeps it unique", name, strings.Join(cols, ", "), key, cols[0])
	}
	backing := map[uint32]bool{}
	for _, c := range t.cons {
		cols := t.names(c.cols)
		if c.kind != 'u' || slices.Contains(cols, key) {
			continue
		}
		backing[c.index] = true
		if !textual(cols) {
			b.note(t, "unique key %s of the registry is not on text columns: EXPLAIN ANALYZE of a lookup by it tells whether another tenant has a value", c.name)
			continue
		}
		b.add(Change{Kind: KindTenantKey, Table: t.qualified(), Reason: reason(c.name, cols),
			Up: []string{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", t.ident(), ident(c.name)),
				fmt.Sprintf("CREATE UNIQUE INDEX %s ON %s (%s)", ident(c.name), t.ident(), exprs(cols))},
			Down: []string{fmt.Sprintf("DROP INDEX %s.%s", ident(t.schema), ident(c.name)),
				fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", t.ident(), ident(c.name), c.def)}})
	}
	for _, x := range t.indexes {
		cols := t.names(x.cols)
		if !x.unique || x.constraint || backing[x.oid] || slices.Contains(cols, key) || slices.Contains(cols, "") {
			continue
		}
		if !textual(cols) || x.partial {
			b.note(t, "unique index %s of the registry is partial or not on text columns: EXPLAIN ANALYZE of a lookup by it tells whether another tenant has a value", x.name)
			continue
		}
		b.add(Change{Kind: KindTenantKey, Table: t.qualified(), Reason: reason(x.name, cols),
			Up: []string{fmt.Sprintf("DROP INDEX %s.%s", ident(t.schema), ident(x.name)),
				fmt.Sprintf("CREATE UNIQUE INDEX %s ON %s (%s)", ident(x.name), t.ident(), exprs(cols))},
			Down: []string{fmt.Sprintf("DROP INDEX %s.%s", ident(t.schema), ident(x.name)), x.def}})
	}
}
