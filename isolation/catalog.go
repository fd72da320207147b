package isolation

import (
	"context"
	"errors"
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
	serial     bool   // its default is nextval() of a sequence
	generated  bool
	enum       []string
	hidden     bool // the app role may not SELECT it (column privileges): the attacks read the others
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
	// partitionKey is, for a table partitioned on one column, that column and a value of the first
	// partition's range or list: seeded rows take it, so that they have a partition to go to.
	partitionKey, partitionValue string
	owner                        string
	rls, force                   bool
	// registry is a table that lists tenants (the target of a foreign key from the tenant column alone),
	// not a tenant table: its key column is the tenant id.
	registry  bool
	tenantCol string // the tenant column, or the registry's key column
	// parent is the partitioned tenant table that a partition belongs to (partitions are attacked
	// directly, not seeded: their rows are the parent's).
	parent *table
	// readable and writable: the app role holds SELECT, and INSERT, UPDATE or DELETE, on it.
	readable, writable bool
	partitioned        bool
	cols               []*column
	pk                 []string
	uniques            []key // every unique constraint and plain unique index, the primary key included
	// partialUniques are unique indexes with a predicate, by their columns and the columns the
	// predicate reads: a seeded row that conflicts on one changes a predicate column.
	partialUniques []key
	partialPreds   map[string][]string
	indexes        []key // every index, by its columns ("" for an expression)
	fks            []fkey
	checks         []check
	encrypted      []string // columns registered in tenantseal.encrypted_columns
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
			slices.Contains(t.encrypted, c.name), t.checked(c.name), t.partialCol(c.name):
			continue
		}
		switch c.category {
		case "S", "N", "D", "B":
			return c.name
		}
	}
	return ""
}

// partialCol reports whether c is a column of a partial unique index, or read by its predicate.
func (t *table) partialCol(c string) bool {
	for _, u := range t.partialUniques {
		if slices.Contains(u.cols, c) || slices.Contains(t.partialPreds[u.name], c) {
			return true
		}
	}
	return false
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
	// partitions are the partitions of partitioned tenant tables, each attacked directly.
	partitions []*table
	// globals are the tables in the schemas without a tenant column that the app role may read: every
	// tenant reads all of them.
	globals []*table
	// keyType is the deployment's tenant key type (tenantseal.settings.tenant_key_type): uuid, bigint,
	// integer or text.
	keyType string
	// tenantCols are the tenant column names in use: the default, then those of tenantseal.tenant_tables.
	tenantCols []string
	// settings are client-settable settings (app.tenant, request.jwt.claims, ...) that policies or the
	// functions in the schemas read, plus the usual suspects.
	settings []string
	// skipped are the tables the suite was told to leave alone, with why.
	skipped []Skipped
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
	// ownerRegistry is the adopted registry whose rows the owner administers by a policy of
	// adopt_registry's (tenantseal_registry_owner), or 0.
	ownerRegistry uint32
	// tenantKeys is true when tenantseal.tenants has a key column (migration 21): tenants are
	// registered by key, and the id is their handle.
	tenantKeys bool
	// citus: the database is a Citus coordinator, whose workers take the tenant context from SET LOCAL
	// (see package db's Citus mode).
	citus bool
}

// hasRegistry reports whether qname (schema.name) is one of the discovered registries.
func (c *catalog) hasRegistry(schema, name string) bool {
	return slices.ContainsFunc(c.registry, func(t *table) bool { return t.schema == schema && t.name == name })
}

func (c *catalog) all() []*table { return append(slices.Clone(c.registry), c.tables...) }

// discover reads the catalog as the superuser. The tenant tables are those tenantseal.tenant_tables
// lists, with the tenant column it names, and every other table with a column of one of those names
// (Config.TenantColumn first): a table someone forgot to protect is attacked like the others.
func discover(ctx context.Context, super *pgx.Conn, appRole string, cfg *Config, schemas []string) (*catalog, error) {
	cat := &catalog{appRole: appRole, keyType: "uuid"}
	var tenantTables, keyType, adopted bool
	if err := super.QueryRow(ctx, `SELECT to_regclass('tenantseal.tenant_keysets') IS NOT NULL AND to_regclass('tenantseal.encrypted_columns') IS NOT NULL,
		to_regclass('tenantseal.context_keys') IS NOT NULL, to_regclass('tenantseal.tenants') IS NOT NULL,
		to_regprocedure('tenantseal.audit_append(jsonb)') IS NOT NULL, to_regclass('tenantseal.tenant_tables') IS NOT NULL,
		EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('tenantseal.settings') AND attname = 'tenant_key_type' AND NOT attisdropped),
		EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('tenantseal.settings') AND attname = 'registry' AND NOT attisdropped)`).
		Scan(&cat.keysets, &cat.ctxKeys, &cat.tenants, &cat.auditAppend, &tenantTables, &keyType, &adopted); err != nil {
		return nil, fmt.Errorf("isolation: read catalog: %w", err)
	}
	cat.tenantKeys = keyType
	var citusFn bool
	if err := super.QueryRow(ctx, "SELECT to_regprocedure('tenantseal.citus_node_role()') IS NOT NULL").Scan(&citusFn); err != nil {
		return nil, fmt.Errorf("isolation: read catalog: %w", err)
	}
	if citusFn {
		if err := super.QueryRow(ctx, "SELECT coalesce(tenantseal.citus_node_role() = 'coordinator', false)").Scan(&cat.citus); err != nil {
			return nil, fmt.Errorf("isolation: read catalog: %w", err)
		}
	}
	if keyType {
		if err := super.QueryRow(ctx, "SELECT coalesce((SELECT tenant_key_type FROM tenantseal.settings LIMIT 1), 'uuid')").Scan(&cat.keyType); err != nil {
			return nil, fmt.Errorf("isolation: read the tenant key type: %w", err)
		}
	}
	declared := map[uint32]string{}
	cat.tenantCols = []string{cfg.TenantColumn}
	if tenantTables {
		rows, err := super.Query(ctx, "SELECT relid::oid, tenant_column::text FROM tenantseal.tenant_tables ORDER BY 2, 1")
		if err != nil {
			return nil, fmt.Errorf("isolation: read tenantseal.tenant_tables: %w", err)
		}
		var oid uint32
		var col string
		if _, err := pgx.ForEachRow(rows, []any{&oid, &col}, func() error {
			declared[oid] = col
			if !slices.Contains(cat.tenantCols, col) {
				cat.tenantCols = append(cat.tenantCols, col)
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("isolation: read tenantseal.tenant_tables: %w", err)
		}
	}
	type rel struct {
		oid                       uint32
		schema, name, owner, kind string
		rls, force                bool
		col                       *string
	}
	var rels []rel
	rows, err := super.Query(ctx, `SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
			(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = ANY($2) AND NOT a.attisdropped AND a.attnum > 0
			  ORDER BY array_position($2, a.attname::text) LIMIT 1)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY($1)
		  AND (c.oid = ANY($3) OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = ANY($2) AND NOT a.attisdropped AND a.attnum > 0))
		ORDER BY n.nspname, c.relname`, schemas, cat.tenantCols, mapKeys(declared))
	if err != nil {
		return nil, fmt.Errorf("isolation: discover tenant tables: %w", err)
	}
	var r rel
	if _, err := pgx.ForEachRow(rows, []any{&r.oid, &r.schema, &r.name, &r.owner, &r.kind, &r.rls, &r.force, &r.col}, func() error {
		rels = append(rels, r)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("isolation: discover tenant tables: %w", err)
	}
	byOID := map[uint32]*table{}
	for _, r := range rels {
		t := &table{oid: r.oid, schema: r.schema, name: r.name, owner: r.owner, rls: r.rls, force: r.force, partitioned: r.kind == "p"}
		switch {
		case declared[r.oid] != "":
			t.tenantCol = declared[r.oid]
		case r.col != nil:
			t.tenantCol = *r.col
		}
		if why, skip := cfg.skip(t.String(), t.schema+"."+t.name); skip {
			cat.skipped = append(cat.skipped, Skipped{Table: t.String(), Reason: why})
			continue
		}
		byOID[r.oid] = t
		cat.tables = append(cat.tables, t)
	}
	if len(cat.tables) == 0 {
		return nil, fmt.Errorf("isolation: no table in schemas %v is in tenantseal.tenant_tables or has a column named %s: nothing to check", schemas, strings.Join(cat.tenantCols, " or "))
	}
	if err := describe(ctx, super, cat.appRole, byOID); err != nil {
		return nil, err
	}
	if err := describePartitionKeys(ctx, super, byOID); err != nil {
		return nil, err
	}
	// Registries: tables that a foreign key on the tenant column alone points at, and the registry
	// adopt_registry made the source of tenants.
	regs := map[uint32]*table{}
	for _, t := range cat.tables {
		for i, fk := range t.fks {
			if len(fk.cols) != 1 || fk.cols[0] != t.tenantCol {
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
	if adopted {
		var oid *uint32
		var key *string
		if err := super.QueryRow(ctx, "SELECT registry::oid, registry_key::text FROM tenantseal.settings LIMIT 1").Scan(&oid, &key); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("isolation: read the adopted registry: %w", err)
		}
		if oid != nil && key != nil && byOID[*oid] == nil && regs[*oid] == nil {
			regs[*oid] = &table{oid: *oid, registry: true, tenantCol: *key}
		}
		if oid != nil && byOID[*oid] != nil {
			// The registry protected on its key (protect_table(registry, tenant_column => key)): the
			// registry all the same, whose rows the tenants' rows reference, so seeded first.
			t := byOID[*oid]
			t.registry = true
			cat.tables = slices.DeleteFunc(cat.tables, func(x *table) bool { return x == t })
			cat.registry = append(cat.registry, t)
		}
		if oid != nil {
			// adopt_registry lets the owner administer the registry's rows (a policy of its own).
			var owned bool
			if err := super.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = $1 AND polname = 'tenantseal_registry_owner')", *oid).Scan(&owned); err != nil {
				return nil, fmt.Errorf("isolation: read the adopted registry: %w", err)
			}
			if owned {
				cat.ownerRegistry = *oid
			}
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
		if err := describe(ctx, super, cat.appRole, regs); err != nil {
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
	if err := discoverPartitions(ctx, super, cat); err != nil {
		return nil, err
	}
	if err := discoverGlobals(ctx, super, cat, cfg, schemas); err != nil {
		return nil, err
	}
	if err := discoverSettings(ctx, super, cat, schemas); err != nil {
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

func mapKeys[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// discoverPartitions finds every partition (at any level) of the partitioned tenant tables. A query
// that names a partition applies the partition's own policies, not the parent's: each is attacked
// directly.
func discoverPartitions(ctx context.Context, super *pgx.Conn, cat *catalog) error {
	byOID := map[uint32]*table{}
	for _, p := range cat.tables {
		rows, err := super.Query(ctx, `SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity,
				has_table_privilege($2, c.oid, 'SELECT'),
				has_table_privilege($2, c.oid, 'INSERT') OR has_table_privilege($2, c.oid, 'UPDATE') OR has_table_privilege($2, c.oid, 'DELETE')
			FROM pg_partition_tree($1) pt JOIN pg_class c ON c.oid = pt.relid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE pt.level > 0 AND c.relkind IN ('r', 'p') ORDER BY pt.level, n.nspname, c.relname`, p.oid, cat.appRole)
		if err != nil {
			return fmt.Errorf("isolation: discover partitions of %s: %w", p, err)
		}
		var t table
		if _, err := pgx.ForEachRow(rows, []any{&t.oid, &t.schema, &t.name, &t.owner, &t.rls, &t.force, &t.readable, &t.writable}, func() error {
			pt := t
			pt.parent, pt.tenantCol = p, p.tenantCol
			byOID[pt.oid] = &pt
			cat.partitions = append(cat.partitions, &pt)
			return nil
		}); err != nil {
			return fmt.Errorf("isolation: discover partitions of %s: %w", p, err)
		}
	}
	if len(byOID) == 0 {
		return nil
	}
	return describe(ctx, super, cat.appRole, byOID)
}

// discoverGlobals finds the tables of the schemas without a tenant column that the app role may read.
func discoverGlobals(ctx context.Context, super *pgx.Conn, cat *catalog, cfg *Config, schemas []string) error {
	var known []uint32
	for _, t := range append(cat.all(), cat.partitions...) {
		known = append(known, t.oid)
	}
	rows, err := super.Query(ctx, `SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'f') AND NOT c.relispartition AND n.nspname = ANY($1) AND NOT c.oid = ANY($3)
		  AND has_table_privilege($2, c.oid, 'SELECT')
		ORDER BY n.nspname, c.relname`, schemas, cat.appRole, known)
	if err != nil {
		return fmt.Errorf("isolation: discover global tables: %w", err)
	}
	byOID := map[uint32]*table{}
	var t table
	if _, err := pgx.ForEachRow(rows, []any{&t.oid, &t.schema, &t.name, &t.owner, &t.rls, &t.force}, func() error {
		g := t
		g.readable = true
		if why, skip := cfg.skip(g.String(), g.schema+"."+g.name); skip {
			if !slices.ContainsFunc(cat.skipped, func(sk Skipped) bool { return sk.Table == g.String() }) {
				cat.skipped = append(cat.skipped, Skipped{Table: g.String(), Reason: why})
			}
			return nil
		}
		byOID[g.oid] = &g
		cat.globals = append(cat.globals, &g)
		return nil
	}); err != nil {
		return fmt.Errorf("isolation: discover global tables: %w", err)
	}
	if len(byOID) == 0 {
		return nil
	}
	if err := describe(ctx, super, cat.appRole, byOID); err != nil {
		return err
	}
	tenant := map[uint32]*table{}
	for _, t := range cat.all() {
		tenant[t.oid] = t
	}
	for _, g := range cat.globals {
		for i, fk := range g.fks {
			g.fks[i].refTable = tenant[fk.ref]
		}
	}
	return nil
}

// usualSettings are the client-settable settings that schemas commonly key their policies on.
var usualSettings = []string{"app.tenant", "app.tenant_id", "app.current_tenant", "app.current_tenant_id", "app.company_id",
	"app.org_id", "app.account_id", "request.jwt.claims", "request.jwt.claim.tenant_id", "jwt.claims.tenant_id"}

var settingRef = regexp.MustCompile(`(?i)current_setting\s*\(\s*'([A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z0-9_$.]+)'`)

// discoverSettings collects the custom settings that policies, and functions in the schemas, read: any
// session may set them, so a policy that trusts one trusts the attacker.
func discoverSettings(ctx context.Context, super *pgx.Conn, cat *catalog, schemas []string) error {
	srcs, err := strs(ctx, super, `SELECT coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
		FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY($1)
		UNION ALL
		SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY($1) AND p.prosrc ~* 'current_setting'`, schemas)
	if err != nil {
		return fmt.Errorf("isolation: discover settings: %w", err)
	}
	for _, src := range srcs {
		for _, m := range settingRef.FindAllStringSubmatch(src, -1) {
			name := strings.ToLower(m[1])
			if !strings.HasPrefix(name, "tenantseal.") && !slices.Contains(cat.settings, name) {
				cat.settings = append(cat.settings, name)
			}
		}
	}
	for _, name := range usualSettings {
		if !slices.Contains(cat.settings, name) {
			cat.settings = append(cat.settings, name)
		}
	}
	return nil
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
	return describe(ctx, super, cat.appRole, byOID)
}

// describe fills columns, keys, constraints and indexes of the tables in byOID.
func describe(ctx context.Context, super *pgx.Conn, appRole string, byOID map[uint32]*table) error {
	oids := make([]uint32, 0, len(byOID))
	for oid := range byOID {
		oids = append(oids, oid)
	}
	if err := describeIndexes(ctx, super, byOID, oids); err != nil {
		return err
	}
	defer func() {
		// The columns a partial unique index's predicate reads, by name.
		for _, t := range byOID {
			for name, pred := range t.partialPreds {
				var cols []string
				for _, c := range t.cols {
					if regexp.MustCompile(`(^|[^A-Za-z0-9_$"])"?` + regexp.QuoteMeta(c.name) + `"?($|[^A-Za-z0-9_$"])`).MatchString(pred[0]) {
						cols = append(cols, c.name)
					}
				}
				t.partialPreds[name] = cols
			}
		}
	}()
	rows, err := super.Query(ctx, `SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), bt.typname::text, bt.typcategory::text,
			CASE WHEN bt.typname IN ('varchar', 'bpchar') AND coalesce(nullif(t.typtypmod, -1), a.atttypmod) > 4
			     THEN coalesce(nullif(t.typtypmod, -1), a.atttypmod) - 4 ELSE 0 END,
			a.attnotnull OR t.typnotnull, a.atthasdef, a.attidentity::text,
			coalesce((SELECT pg_get_expr(d.adbin, d.adrelid) ~ '^nextval\(' FROM pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum), false),
			a.attgenerated <> '',
			coalesce((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = bt.oid), '{}'),
			NOT has_column_privilege($2, a.attrelid, a.attnum, 'SELECT')
		FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
		WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attrelid, a.attnum`, oids, appRole)
	if err != nil {
		return fmt.Errorf("isolation: describe columns: %w", err)
	}
	var (
		oid uint32
		c   column
	)
	if _, err := pgx.ForEachRow(rows, []any{&oid, &c.name, &c.typ, &c.base, &c.category, &c.maxLen, &c.notNull, &c.hasDefault, &c.identity, &c.serial, &c.generated, &c.enum, &c.hidden}, func() error {
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
	rows, err = super.Query(ctx, `SELECT i.indrelid, ic.relname::text,
			(SELECT array_agg(coalesce(a.attname::text, '') ORDER BY u.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(n, ord)
			   LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n),
			pg_get_expr(i.indpred, i.indrelid)
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		WHERE i.indrelid = ANY($1) AND i.indisunique AND i.indpred IS NOT NULL ORDER BY 1, 2`, oids)
	if err != nil {
		return fmt.Errorf("isolation: describe partial indexes: %w", err)
	}
	var pred string
	if _, err := pgx.ForEachRow(rows, []any{&oid, &k.name, &k.cols, &pred}, func() error {
		t := byOID[oid]
		t.partialUniques = append(t.partialUniques, k)
		if t.partialPreds == nil {
			t.partialPreds = map[string][]string{}
		}
		t.partialPreds[k.name] = []string{pred}
		return nil
	}); err != nil {
		return fmt.Errorf("isolation: describe partial indexes: %w", err)
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

// describePartitionKeys finds, for each table of byOID partitioned on one column, a value its first
// partition (by name) takes: the lower bound of a range partition, the first value of a list one.
// Hash partitions take any value, and a default partition any other: neither needs one.
func describePartitionKeys(ctx context.Context, super *pgx.Conn, byOID map[uint32]*table) error {
	oids := make([]uint32, 0, len(byOID))
	for oid := range byOID {
		oids = append(oids, oid)
	}
	rows, err := super.Query(ctx, `SELECT pt.partrelid, a.attname::text, v
		FROM pg_partitioned_table pt
		JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
		CROSS JOIN LATERAL (
			SELECT coalesce(substring(pg_get_expr(c.relpartbound, c.oid) FROM $re$FROM \('?([^',)]*)'?[,)]$re$),
			                substring(pg_get_expr(c.relpartbound, c.oid) FROM $re$IN \('?([^',)]*)'?[,)]$re$)) AS v
			  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			 WHERE i.inhparent = pt.partrelid AND NOT pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
			 ORDER BY c.relname LIMIT 1) b
		WHERE pt.partrelid = ANY($1) AND pt.partnatts = 1 AND pt.partstrat IN ('r', 'l')
		  AND v IS NOT NULL AND upper(v) NOT IN ('MINVALUE', 'MAXVALUE', 'NULL')`, oids)
	if err != nil {
		return fmt.Errorf("isolation: describe partition keys: %w", err)
	}
	var oid uint32
	var col, v string
	_, err = pgx.ForEachRow(rows, []any{&oid, &col, &v}, func() error {
		byOID[oid].partitionKey, byOID[oid].partitionValue = col, v
		return nil
	})
	if err != nil {
		return fmt.Errorf("isolation: describe partition keys: %w", err)
	}
	return nil
}
