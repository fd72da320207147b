package isolation

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The suite's picture of the schema, read from the catalog as the superuser: which tables carry the
// tenant column, their columns, keys and constraints, the views and SECURITY DEFINER functions the app
// role can reach. Nothing here is configured by hand: a schema of your own is discovered the same way.

type column struct {
	name       string
	typ        string // format_type of the column's type (a domain keeps its name)
	base       string // pg_type.typname of the base type (domains resolved)
	category   string // pg_type.typcategory of the base type
	maxLen     int    // for varchar(n) and char(n), else 0
	notNull    bool
	hasDefault bool
	identity   string // "a" always, "d" by default, "" none
	generated  bool
	enum       []string
}

// insertable reports whether an INSERT may name the column.
func (c *column) insertable() bool { return !c.generated && c.identity != "a" }

type key struct {
	name string
	cols []string
}

type fkey struct {
	name     string
	cols     []string
	ref      uint32 // referenced table
	refCols  []string
	refTable *table // resolved after discovery; nil for a table outside the suite
}

type check struct {
	name string
	cols []string
	def  string
}

type table struct {
	oid          uint32
	schema, name string
	owner        string
	rls, force   bool
	// registry is a table that lists tenants (the target of a foreign key from the tenant column alone),
	// not a tenant table: its key column is the tenant id.
	registry  bool
	tenantCol string // the tenant column, or the registry's key column
	cols      []*column
	pk        []string
	uniques   []key // every unique constraint and plain unique index, the primary key included
	indexes   []key // every index, by its columns ("" for an expression)
	fks       []fkey
	checks    []check
	encrypted []string // columns registered in tenantseal.encrypted_columns
}

func (t *table) qname() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

// String is the table's name in reports: schema-qualified unless it is in public.
func (t *table) String() string {
	if t.schema == "public" {
		return t.name
	}
	return t.schema + "." + t.name
}

func (t *table) col(name string) *column {
	for _, c := range t.cols {
		if c.name == name {
			return c
		}
	}
	return nil
}

// rowKey is what identifies one row: the primary key, else the first unique key, else every column.
func (t *table) rowKey() []string {
	if len(t.pk) > 0 {
		return t.pk
	}
	if len(t.uniques) > 0 {
		return t.uniques[0].cols
	}
	var all []string
	for _, c := range t.cols {
		all = append(all, c.name)
	}
	return all
}

// idColumn is the single non-tenant primary key column that encryption binds ciphertexts to, or "".
func (t *table) idColumn() string {
	var rest []string
	for _, c := range t.pk {
		if c != t.tenantCol {
			rest = append(rest, c)
		}
	}
	if len(rest) == 1 {
		return rest[0]
	}
	return ""
}

// fkCol reports whether c is a column of a foreign key other than one on the tenant column alone.
func (t *table) fkCol(c string) bool {
	for _, fk := range t.fks {
		if slices.Contains(fk.cols, c) && !(len(fk.cols) == 1 && fk.cols[0] == t.tenantCol) {
			return true
		}
	}
	return false
}

func (t *table) uniqueCol(c string) bool {
	for _, u := range t.uniques {
		if slices.Contains(u.cols, c) {
			return true
		}
	}
	return false
}

// mutable returns a column that an UPDATE can change freely: not a key, not the tenant, not referenced,
// not checked, not encrypted. "" when there is none.
func (t *table) mutable() string {
	for _, c := range t.cols {
		switch {
		case c.name == t.tenantCol, !c.insertable(), c.identity != "", t.fkCol(c.name), t.uniqueCol(c.name),
			slices.Contains(t.encrypted, c.name), t.checked(c.name):
			continue
		}
		switch c.category {
		case "S", "N", "D", "B":
			return c.name
		}
	}
	return ""
}

func (t *table) checked(c string) bool {
	for _, ch := range t.checks {
		if slices.Contains(ch.cols, c) {
			return true
		}
	}
	return false
}

type view struct {
	schema, name string
	kind         string // v or m
	owner        string
	invoker      bool
}

func (v *view) qname() string { return pgx.Identifier{v.schema, v.name}.Sanitize() }
func (v *view) String() string {
	if v.schema == "public" {
		return v.name
	}
	return v.schema + "." + v.name
}

type function struct {
	oid       uint32
	schema    string
	name      string
	args      string   // identity arguments, for reports
	argTypes  []string // format_type of each input argument
	returnSet bool
}

func (f *function) String() string { return fmt.Sprintf("%s.%s(%s)", f.schema, f.name, f.args) }

type catalog struct {
	tables   []*table // tenant tables, in seeding order (parents first)
	registry []*table
	// internal are tenantseal's own tables with a tenant_id column that the app role may read, such as
	// the audit log: not seeded, checked by their structure.
	internal  []*table
	views     []*view
	functions []*function
	notifies  []string // channel names found in function bodies
	appRole   string
	keysets   bool // tenantseal.tenant_keysets and tenantseal.encrypted_columns exist
	ctxKeys   bool // tenantseal.context_keys exists
	// tenants is true when tenantseal.tenants exists: the verifier honours tokens of its active tenants
	// only.
	tenants bool
	// auditAppend is true when tenantseal.audit_append(jsonb) exists.
	auditAppend bool
}

// hasRegistry reports whether qname (schema.name) is one of the discovered registries.
func (c *catalog) hasRegistry(schema, name string) bool {
	return slices.ContainsFunc(c.registry, func(t *table) bool { return t.schema == schema && t.name == name })
}

func (c *catalog) all() []*table { return append(slices.Clone(c.registry), c.tables...) }

// discover reads the catalog as the superuser.
func discover(ctx context.Context, super *pgx.Conn, appRole, tenantCol string, schemas []string) (*catalog, error) {
	cat := &catalog{appRole: appRole}
	if err := super.QueryRow(ctx, `SELECT to_regclass('tenantseal.tenant_keysets') IS NOT NULL AND to_regclass('tenantseal.encrypted_columns') IS NOT NULL,
		to_regclass('tenantseal.context_keys') IS NOT NULL, to_regclass('tenantseal.tenants') IS NOT NULL,
		to_regprocedure('tenantseal.audit_append(jsonb)') IS NOT NULL`).Scan(&cat.keysets, &cat.ctxKeys, &cat.tenants, &cat.auditAppend); err != nil {
		return nil, fmt.Errorf("isolation: read catalog: %w", err)
	}
	type rel struct {
		oid                       uint32
		schema, name, owner, kind string
		rls, force                bool
	}
	var rels []rel
	rows, err := super.Query(ctx, `SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relkind::text, c.relrowsecurity, c.relforcerowsecurity
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY($1)
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $2 AND NOT a.attisdropped AND a.attnum > 0)
		ORDER BY n.nspname, c.relname`, schemas, tenantCol)
	if err != nil {
		return nil, fmt.Errorf("isolation: discover tenant tables: %w", err)
	}
	var r rel
	if _, err := pgx.ForEachRow(rows, []any{&r.oid, &r.schema, &r.name, &r.owner, &r.kind, &r.rls, &r.force}, func() error {
		rels = append(rels, r)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("isolation: discover tenant tables: %w", err)
	}
	if len(rels) == 0 {
		return nil, fmt.Errorf("isolation: no table in schemas %v has a %q column: nothing to check", schemas, tenantCol)
	}
	byOID := map[uint32]*table{}
	for _, r := range rels {
		t := &table{oid: r.oid, schema: r.schema, name: r.name, owner: r.owner, rls: r.rls, force: r.force, tenantCol: tenantCol}
		byOID[r.oid] = t
		cat.tables = append(cat.tables, t)
	}
	if err := describe(ctx, super, byOID); err != nil {
		return nil, err
	}
	// Registries: tables that a foreign key on the tenant column alone points at.
	regs := map[uint32]*table{}
	for _, t := range cat.tables {
		for i, fk := range t.fks {
			if len(fk.cols) != 1 || fk.cols[0] != tenantCol {
				continue
			}
			if _, isTenant := byOID[fk.ref]; isTenant {
				continue
			}
			if regs[fk.ref] == nil {
				regs[fk.ref] = &table{oid: fk.ref, registry: true, tenantCol: fk.refCols[0]}
			}
			t.fks[i].refTable = regs[fk.ref]
		}
	}
	if len(regs) > 0 {
		for _, reg := range regs {
			if err := super.QueryRow(ctx, `SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity
				FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`, reg.oid).
				Scan(&reg.schema, &reg.name, &reg.owner, &reg.rls, &reg.force); err != nil {
				return nil, fmt.Errorf("isolation: describe tenant registry: %w", err)
			}
			cat.registry = append(cat.registry, reg)
		}
		slices.SortFunc(cat.registry, func(a, b *table) int { return strings.Compare(a.String(), b.String()) })
		if err := describe(ctx, super, regs); err != nil {
			return nil, err
		}
	}
	for _, t := range cat.tables {
		for i, fk := range t.fks {
			if fk.refTable == nil {
				t.fks[i].refTable = byOID[fk.ref]
			}
		}
	}
	if cat.keysets {
		rows, err := super.Query(ctx, `SELECT table_name::oid, column_name::text FROM tenantseal.encrypted_columns ORDER BY 1, 2`)
		if err != nil {
			return nil, fmt.Errorf("isolation: read encrypted columns: %w", err)
		}
		var oid uint32
		var col string
		if _, err := pgx.ForEachRow(rows, []any{&oid, &col}, func() error {
			if t := byOID[oid]; t != nil {
				t.encrypted = append(t.encrypted, col)
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("isolation: read encrypted columns: %w", err)
		}
	}
	if cat.tables, err = seedOrder(cat.tables); err != nil {
		return nil, err
	}
	if err := discoverReachable(ctx, super, cat, schemas); err != nil {
		return nil, err
	}
	if err := discoverInternal(ctx, super, cat); err != nil {
		return nil, err
	}
	return cat, nil
}

// discoverInternal finds tenantseal's own tables that carry tenant_id and that the app role may read,
// the registries aside.
func discoverInternal(ctx context.Context, super *pgx.Conn, cat *catalog) error {
	var known []uint32
	for _, t := range cat.all() {
		known = append(known, t.oid)
	}
	rows, err := super.Query(ctx, `SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'tenantseal' AND c.relkind IN ('r', 'p') AND NOT c.oid = ANY($2)
		  AND has_table_privilege($1, c.oid, 'SELECT')
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
		ORDER BY 2`, cat.appRole, known)
	if err != nil {
		return fmt.Errorf("isolation: discover tenantseal's tables: %w", err)
	}
	byOID := map[uint32]*table{}
	var oid uint32
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&oid, &name}, func() error {
		t := &table{oid: oid, schema: "tenantseal", name: name, tenantCol: "tenant_id"}
		byOID[oid] = t
		cat.internal = append(cat.internal, t)
		return nil
	}); err != nil {
		return fmt.Errorf("isolation: discover tenantseal's tables: %w", err)
	}
	if len(byOID) == 0 {
		return nil
	}
	return describe(ctx, super, byOID)
}

// describe fills columns, keys, constraints and indexes of the tables in byOID.
func describe(ctx context.Context, super *pgx.Conn, byOID map[uint32]*table) error {
	oids := make([]uint32, 0, len(byOID))
	for oid := range byOID {
		oids = append(oids, oid)
	}
	if err := describeIndexes(ctx, super, byOID, oids); err != nil {
		return err
	}
	rows, err := super.Query(ctx, `SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), bt.typname::text, bt.typcategory::text,
			CASE WHEN bt.typname IN ('varchar', 'bpchar') AND coalesce(nullif(t.typtypmod, -1), a.atttypmod) > 4
			     THEN coalesce(nullif(t.typtypmod, -1), a.atttypmod) - 4 ELSE 0 END,
			a.attnotnull OR t.typnotnull, a.atthasdef, a.attidentity::text, a.attgenerated <> '',
			coalesce((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = bt.oid), '{}')
		FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
		WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return fmt.Errorf("isolation: describe columns: %w", err)
	}
	var (
		oid uint32
		c   column
	)
	if _, err := pgx.ForEachRow(rows, []any{&oid, &c.name, &c.typ, &c.base, &c.category, &c.maxLen, &c.notNull, &c.hasDefault, &c.identity, &c.generated, &c.enum}, func() error {
		cc := c
		byOID[oid].cols = append(byOID[oid].cols, &cc)
		return nil
	}); err != nil {
		return fmt.Errorf("isolation: describe columns: %w", err)
	}
	rows, err = super.Query(ctx, `SELECT k.conrelid, k.conname::text, k.contype::text,
			(SELECT array_agg(a.attname::text ORDER BY u.ord) FROM unnest(k.conkey) WITH ORDINALITY u(n, ord)
			   JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n),
			k.confrelid,
			coalesce((SELECT array_agg(a.attname::text ORDER BY u.ord) FROM unnest(k.confkey) WITH ORDINALITY u(n, ord)
			   JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n), '{}'),
			pg_get_constraintdef(k.oid)
		FROM pg_constraint k WHERE k.conrelid = ANY($1) AND k.contype IN ('p', 'u', 'f', 'c')
		UNION ALL
		SELECT i.indrelid, ic.relname::text, 'i',
			(SELECT array_agg(a.attname::text ORDER BY u.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(n, ord)
			   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n),
			0, '{}', pg_get_indexdef(i.indexrelid)
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		WHERE i.indrelid = ANY($1) AND i.indisunique AND i.indexprs IS NULL AND i.indpred IS NULL
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
		ORDER BY 1, 3, 2`, oids)
	if err != nil {
		return fmt.Errorf("isolation: describe constraints: %w", err)
	}
	var (
		name, kind, def string
		cols, refCols   []string
		ref             uint32
	)
	if _, err := pgx.ForEachRow(rows, []any{&oid, &name, &kind, &cols, &ref, &refCols, &def}, func() error {
		t := byOID[oid]
		switch kind {
		case "p":
			t.pk = cols
			t.uniques = append([]key{{name, cols}}, t.uniques...)
		case "u", "i":
			t.uniques = append(t.uniques, key{name, cols})
		case "f":
			t.fks = append(t.fks, fkey{name: name, cols: cols, ref: ref, refCols: refCols})
		case "c":
			t.checks = append(t.checks, check{name: name, cols: cols, def: def})
		}
		return nil
	}); err != nil {
		return fmt.Errorf("isolation: describe constraints: %w", err)
	}
	return nil
}

func describeIndexes(ctx context.Context, super *pgx.Conn, byOID map[uint32]*table, oids []uint32) error {
	rows, err := super.Query(ctx, `SELECT i.indrelid, ic.relname::text,
			(SELECT array_agg(coalesce(a.attname::text, '') ORDER BY u.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(n, ord)
			   LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n)
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		WHERE i.indrelid = ANY($1) ORDER BY 1, 2`, oids)
	if err != nil {
		return fmt.Errorf("isolation: describe indexes: %w", err)
	}
	var oid uint32
	var k key
	if _, err := pgx.ForEachRow(rows, []any{&oid, &k.name, &k.cols}, func() error {
		byOID[oid].indexes = append(byOID[oid].indexes, k)
		return nil
	}); err != nil {
		return fmt.Errorf("isolation: describe indexes: %w", err)
	}
	return nil
}

// seedOrder sorts tables so that every table comes after the tables its foreign keys point at. A cycle
// is broken at a foreign key whose columns are all nullable (seeded as NULL).
func seedOrder(tables []*table) ([]*table, error) {
	var out []*table
	done := map[*table]bool{}
	for len(out) < len(tables) {
		progress := false
		for _, t := range tables {
			if done[t] {
				continue
			}
			ready := true
			for _, fk := range t.fks {
				if p := fk.refTable; p != nil && !p.registry && p != t && !done[p] && !nullableFK(t, fk) {
					ready = false
				}
			}
			if ready {
				out = append(out, t)
				done[t] = true
				progress = true
			}
		}
		if !progress {
			var left []string
			for _, t := range tables {
				if !done[t] {
					left = append(left, t.String())
				}
			}
			return nil, fmt.Errorf("isolation: cannot order %v for seeding: their foreign keys form a cycle of NOT NULL columns", left)
		}
	}
	return out, nil
}

func nullableFK(t *table, fk fkey) bool {
	for _, c := range fk.cols {
		if c == t.tenantCol {
			continue
		}
		if t.col(c).notNull {
			return false
		}
	}
	return true
}

var notifyChannel = regexp.MustCompile(`(?i)(?:pg_notify\s*\(\s*'([^']+)'|\bNOTIFY\s+"?([A-Za-z_][A-Za-z0-9_$]*))`)

// discoverReachable finds the views and SECURITY DEFINER functions the app role can use, and the
// notification channels that function bodies name.
func discoverReachable(ctx context.Context, super *pgx.Conn, cat *catalog, schemas []string) error {
	rows, err := super.Query(ctx, `SELECT n.nspname, c.relname, c.relkind::text, pg_get_userbyid(c.relowner),
			coalesce(c.reloptions::text[] && ARRAY['security_invoker=true', 'security_invoker=on', 'security_invoker=1'], false)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY($1) AND has_table_privilege($2, c.oid, 'SELECT')
		ORDER BY 1, 2`, schemas, cat.appRole)
	if err != nil {
		return fmt.Errorf("isolation: discover views: %w", err)
	}
	var v view
	if _, err := pgx.ForEachRow(rows, []any{&v.schema, &v.name, &v.kind, &v.owner, &v.invoker}, func() error {
		vv := v
		cat.views = append(cat.views, &vv)
		return nil
	}); err != nil {
		return fmt.Errorf("isolation: discover views: %w", err)
	}
	rows, err = super.Query(ctx, `SELECT p.oid, n.nspname, p.proname::text, pg_get_function_identity_arguments(p.oid),
			coalesce((SELECT array_agg(format_type(t, NULL) ORDER BY o) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, o)), '{}'),
			p.proretset
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE p.prosecdef AND p.prokind = 'f' AND has_function_privilege($2, p.oid, 'EXECUTE')
		  AND (n.nspname = ANY($1) OR n.nspname = 'tenantseal')
		  AND p.prorettype <> 'trigger'::regtype AND p.prorettype <> 'event_trigger'::regtype
		ORDER BY 2, 3, 4`, schemas, cat.appRole)
	if err != nil {
		return fmt.Errorf("isolation: discover functions: %w", err)
	}
	var f function
	if _, err := pgx.ForEachRow(rows, []any{&f.oid, &f.schema, &f.name, &f.args, &f.argTypes, &f.returnSet}, func() error {
		ff := f
		cat.functions = append(cat.functions, &ff)
		return nil
	}); err != nil {
		return fmt.Errorf("isolation: discover functions: %w", err)
	}
	rows, err = super.Query(ctx, `SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE (n.nspname = ANY($1) OR n.nspname = 'tenantseal') AND p.prosrc ~* 'notify'`, schemas)
	if err != nil {
		return fmt.Errorf("isolation: discover notifications: %w", err)
	}
	seen := map[string]bool{}
	var src string
	if _, err := pgx.ForEachRow(rows, []any{&src}, func() error {
		for _, m := range notifyChannel.FindAllStringSubmatch(src, -1) {
			ch := m[1] + m[2]
			if !seen[ch] {
				seen[ch] = true
				cat.notifies = append(cat.notifies, ch)
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("isolation: discover notifications: %w", err)
	}
	slices.Sort(cat.notifies)
	return nil
}
