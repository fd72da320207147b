package lint

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// catalog is what the rules judge: the parts of the system catalog that bear on tenant isolation, read
// once by load. Names are display names, quoted as PostgreSQL would need them ("public.customers").
type catalog struct {
	opts        Options
	app, owner  role
	tenantCol   string // Options.TenantColumn, quoted
	tenantCall  string // e.g. "tenantseal.current_tenant()", for fix hints
	tenantFuncs map[uint32]bool
	// product is tenantseal.current_tenant(), the verifying function of the product's own tables
	// (0 in a database without tenantseal); elevated is tenantseal.elevated() and productKey
	// tenantseal.current_tenant_key() (0 likewise); lookup is tenantseal.tenant_binding (bindingLookup).
	product, elevated, productKey, lookup uint32
	// protectColumn says that tenantseal.protect_table takes the tenant column (tenant_column => ...).
	protectColumn bool
	// recorded is tenantseal.tenant_tables: the tenant column of each table protect_table protected.
	recorded map[uint32]string
	// userSchemas are the checked schemas but the product's own; tables of internalSchemas are always
	// checked too, with their own expectations.
	userSchemas []string

	tables    []*table // ordinary, partitioned and foreign tables in the checked schemas
	byOID     map[uint32]*table
	policies  []*policy
	indexes   []index
	fks       []foreignKey
	excls     []exclusion
	views     []view
	viewDeps  map[uint32][]uint32 // view or materialized view -> relations its rules read
	viewFuncs map[uint32][]uint32 // view or materialized view -> functions its rules call
	functions []*function         // functions and procedures of the checked schemas, extensions' excepted
	funcByOID map[uint32]*function
	triggers  []trigger
	owned     []ownedRel // relations the app role owns
	// memberships are the roles the app role is a member of, directly or through others, each with
	// the chain of grants that leads to it; the owner role among them is a finding of its own.
	memberships []membership
	// privsOf holds, for each role that owns a function, the roles whose privileges it has (itself
	// included): a policy TO one of those applies to the function's body.
	privsOf     map[uint32]map[uint32]bool
	defaultACLs []defaultACL
	creatable   []string // schemas (or "database <name>") in which the app role may create objects
	funcs       map[uint32]funcInfo
	ops         map[uint32]opInfo
	// settable says, for each setting a tenant function reads, whether the app role can set it.
	settable map[string]bool
}

type role struct {
	oid                       uint32
	name                      string
	super, bypass, createRole bool
}

type table struct {
	oid           uint32
	name          string // schema-qualified, quoted
	raw           string // schema.name unquoted, to match Options.GlobalTables
	schema        string // unquoted
	relname       string // unquoted
	kind          string // pg_class.relkind: "r", "p" or "f"
	internal      bool   // in one of the product's own schemas
	partition     bool
	rls, force    bool
	owner         uint32
	root          uint32 // the root of its partition tree; itself when it is none's partition
	tenantName    string // the name its tenant column has or would have
	tenantCol     string // tenantName quoted
	tenantType    string // the tenant column's type, e.g. "bigint"; "" without one
	tenantAttnum  int16  // 0: no tenant column
	tenantNotNull bool
	// distributed: Citus distributes the table (pg_dist_partition), whose policies may hold no sub-select.
	distributed bool
	// registry marks a table of tenants (tenantseal.tenants, Options.Registry): its key, the attnum of
	// its single-column primary key (0 without one), is the tenant.
	registry      bool
	key           int16
	columns       []string // unquoted column names, for hints
	attnums       []int16  // the attnum of each of columns
	notNull       []bool   // whether each of columns is NOT NULL
	types         []string // the type of each of columns, without modifiers ("character varying")
	appPriv       map[string]bool
	publicPrivs   []string
	policiesCount int
}

func (t *table) tenant() bool { return t.tenantAttnum != 0 }

// rlsApplies says whether the table's own row-level security settings matter: a partition is reached
// through its parent, whose policies apply, unless the app role holds privileges on the partition itself;
// a table of the product's own that the app role may not use is the owner's alone (the product's SECURITY
// DEFINER functions reach it, which TS021 judges). Foreign tables cannot have row-level security at all
// (TS029).
func (t *table) rlsApplies() bool {
	return t.tenant() && t.kind != "f" && (!t.partition && !t.internal || t.appAny())
}

func (t *table) appAny() bool {
	return t.appPriv["SELECT"] || t.appPriv["INSERT"] || t.appPriv["UPDATE"] || t.appPriv["DELETE"]
}

func (t *table) appWrites() bool {
	return t.appPriv["INSERT"] || t.appPriv["UPDATE"] || t.appPriv["DELETE"]
}

type policy struct {
	name         string
	table        *table
	cmd          string // "r", "a", "w", "d" or "*", as pg_policy.polcmd
	permissive   bool
	appliesToApp bool
	roles        []uint32       // pg_policy.polroles; 0 is PUBLIC
	qual, check  *nodetree.Node // nil when absent
	qualSQL      string
	checkSQL     string
}

func (p *policy) object() string { return p.name + " on " + p.table.name }

func (p *policy) command() string {
	return map[string]string{"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}[p.cmd]
}

// covers reports whether the policy applies to cmd ("SELECT", "INSERT", "UPDATE" or "DELETE").
func (p *policy) covers(cmd string) bool { return p.cmd == "*" || p.command() == cmd }

type index struct {
	oid        uint32
	table      uint32
	name       string // unqualified, for messages
	qualified  string // for DROP INDEX
	unique     bool
	primary    bool
	valid      bool
	partial    bool
	pred       *nodetree.Node // the partial index's predicate, or nil
	keys       []int16        // attnums of the key columns; 0 for an expression
	keyDefs    []string       // the key columns as SQL
	constraint string         // the PRIMARY KEY, UNIQUE or EXCLUDE constraint the index backs, or ""
	attached   bool           // an index of a partition that belongs to its parent's partitioned index
	def        string         // the definition without the index name, to find duplicates
}

type foreignKey struct {
	name                   string
	from, to               uint32
	fromKeys, toKeys       []int16
	fromColumns, toColumns []string
}

type exclusion struct {
	name    string
	table   uint32
	keys    []int16
	ops     []string // the operator of each key
	columns []string
}

type view struct {
	oid          uint32
	name         string
	materialized bool
	checked      bool // in a checked schema
	invoker      bool // security_invoker=true
	appSelect    bool
}

type function struct {
	oid           uint32
	name          string // schema.name(argtypes), quoted
	short         string // the unqualified name, lower case
	schema        string
	procedure     bool
	secdef        bool
	leakproof     bool
	trigger       bool // returns trigger
	lang          string
	src           string   // prosrc; for an SQL-standard body, pg_get_function_sqlbody
	args          []string // argument names in lower case, "" for an unnamed one
	sqlBody       *nodetree.Node
	hasSearchPath bool
	publicExecute bool
	appExecute    bool
	owner         role
}

type trigger struct {
	name   string
	table  uint32
	fn     uint32
	events []string // the commands that fire it: INSERT, UPDATE, DELETE, TRUNCATE
}

type ownedRel struct {
	name string
	kind string // pg_class.relkind
}

type membership struct {
	role
	path []string // quoted role names from the app role's direct grant to this role
}

type defaultACL struct {
	owner, schema, objtype, grantee string // schema "" for every schema
	privileges                      []string
}

type funcInfo struct {
	name      string
	schema    string
	leakproof bool
}

type opInfo struct {
	name string // e.g. "=(uuid, uuid)"
	op   string // e.g. "="
	code uint32
}

// internalSchemas hold the product's own objects: they are always checked, whatever Options.Schemas
// says, and with the product's expectations (see internal.go).
var internalSchemas = []string{internalSchema, "tenantseal_migrations"}

func load(ctx context.Context, conn Querier, opts Options) (*catalog, error) {
	c := &catalog{opts: opts, byOID: map[uint32]*table{}, viewDeps: map[uint32][]uint32{}, viewFuncs: map[uint32][]uint32{},
		tenantFuncs: map[uint32]bool{}, funcByOID: map[uint32]*function{}, privsOf: map[uint32]map[uint32]bool{},
		funcs: map[uint32]funcInfo{}, ops: map[uint32]opInfo{}, recorded: map[uint32]string{}}
	var err error
	if c.app, err = loadRole(ctx, conn, opts.AppRole); err != nil {
		return nil, err
	}
	if c.owner, err = loadRole(ctx, conn, opts.OwnerRole); err != nil {
		return nil, err
	}
	if err := c.loadSchemas(ctx, conn); err != nil {
		return nil, err
	}
	if err := c.loadTenantFunction(ctx, conn); err != nil {
		return nil, err
	}
	schemas := append(slices.Clone(c.userSchemas), internalSchemas...)
	for _, step := range []func(context.Context, Querier, []string) error{
		c.loadTenantTables, c.loadTables, c.loadDistributed, c.assignTenantColumns, c.loadPolicies, c.loadIndexes, c.loadRegistry,
		c.loadForeignKeys, c.loadExclusions, c.loadViews, c.loadFunctions, c.loadSettings, c.loadTriggers,
		c.loadAppRoleReach, c.loadPrivilegesToCome, c.loadPolicyCallees,
	} {
		if err := step(ctx, conn, schemas); err != nil {
			return nil, err
		}
	}
	if err := c.checkTenantColumn(); err != nil {
		return nil, err
	}
	return c, nil
}

// each runs sql and calls scan for every row; what names the query in errors.
func each(ctx context.Context, conn Querier, what, sql string, args []any, scan func(pgx.Rows) error) error {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("lint: read %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("lint: read %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lint: read %s: %w", what, err)
	}
	return nil
}

func loadRole(ctx context.Context, conn Querier, name string) (role, error) {
	var r role
	found := false
	err := each(ctx, conn, "roles", `SELECT oid, quote_ident(rolname), rolsuper, rolbypassrls, rolcreaterole
		FROM pg_roles WHERE rolname = $1`, []any{name}, func(rows pgx.Rows) error {
		found = true
		return rows.Scan(&r.oid, &r.name, &r.super, &r.bypass, &r.createRole)
	})
	if err != nil {
		return r, err
	}
	if !found {
		return r, fmt.Errorf("%w: role %q does not exist", ErrOptions, name)
	}
	return r, nil
}

// loadSchemas resolves Options.Schemas: every schema named must exist (a typo would otherwise check
// nothing and report nothing).
func (c *catalog) loadSchemas(ctx context.Context, conn Querier) error {
	var existing []string
	err := each(ctx, conn, "schemas", `SELECT nspname FROM pg_namespace
		WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1`, nil,
		func(r pgx.Rows) error {
			var s string
			err := r.Scan(&s)
			existing = append(existing, s)
			return err
		})
	if err != nil {
		return err
	}
	schemas := existing
	if len(c.opts.Schemas) > 0 {
		schemas = nil
		for _, s := range c.opts.Schemas {
			if !slices.Contains(existing, s) {
				return fmt.Errorf("%w: schema %q does not exist", ErrOptions, s)
			}
			schemas = append(schemas, s)
		}
	}
	c.userSchemas = slices.DeleteFunc(slices.Clone(schemas), func(s string) bool { return slices.Contains(internalSchemas, s) })
	return nil
}

func (c *catalog) loadTenantFunction(ctx context.Context, conn Querier) error {
	fn := c.opts.TenantFunction
	sql := `SELECT p.oid, format('%I.%I', n.nspname, p.proname)
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, parse_ident($1) AS id
		WHERE p.proname = id[cardinality(id)] AND (cardinality(id) = 1 OR n.nspname = id[1])`
	if strings.Contains(fn, "(") {
		sql = `SELECT p.oid, format('%I.%I', n.nspname, p.proname)
			FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = to_regprocedure($1)`
	}
	err := each(ctx, conn, "tenant function", sql, []any{fn}, func(r pgx.Rows) error {
		var oid uint32
		var name string
		if err := r.Scan(&oid, &name); err != nil {
			return err
		}
		c.tenantFuncs[oid] = true
		c.tenantCall = name + "()"
		return nil
	})
	if err != nil {
		return err
	}
	if len(c.tenantFuncs) == 0 {
		return fmt.Errorf("%w: tenant function %s does not exist", ErrOptions, fn)
	}
	err = each(ctx, conn, "product functions", `SELECT coalesce(to_regprocedure($1)::oid, 0), coalesce(to_regprocedure($2)::oid, 0),
		       coalesce(to_regprocedure($3)::oid, 0), quote_ident($4), to_regprocedure($5) IS NOT NULL, coalesce(to_regprocedure($6)::oid, 0)`,
		[]any{productTenantFunction, elevatedFunction, productKeyFunction, c.opts.TenantColumn, protectWithColumn, bindingLookup}, func(r pgx.Rows) error {
			return r.Scan(&c.product, &c.elevated, &c.productKey, &c.tenantCol, &c.protectColumn, &c.lookup)
		})
	if err != nil {
		return err
	}
	// tenantseal's verifier comes in two forms, the tenant's id (uuid) and its key as text for tenant
	// columns of other types: naming either names both.
	if c.product != 0 && c.productKey != 0 && (c.tenantFuncs[c.product] || c.tenantFuncs[c.productKey]) {
		c.tenantFuncs[c.product], c.tenantFuncs[c.productKey] = true, true
		c.tenantCall = productTenantFunction
	}
	return nil
}

// productVerifier reports whether id is one of tenantseal's own verifying functions.
func (c *catalog) productVerifier(id uint32) bool {
	return id != 0 && (id == c.product || id == c.productKey)
}

// verifiers returns the functions whose result is the verified tenant for t's policies: the product's
// own for its tables, Options.TenantFunction for the others.
func (c *catalog) verifiers(t *table) map[uint32]bool {
	if t.internal {
		return map[uint32]bool{c.product: true}
	}
	return c.tenantFuncs
}

func (c *catalog) loadTables(ctx context.Context, conn Querier, schemas []string) error {
	return each(ctx, conn, "tables", `
		SELECT c.oid, format('%I.%I', n.nspname, c.relname), n.nspname || '.' || c.relname, n.nspname, c.relname,
		       c.relkind::text, n.nspname = ANY($3), c.relispartition, c.relrowsecurity, c.relforcerowsecurity, c.relowner,
		       coalesce(pg_partition_root(c.oid)::oid, c.oid),
		       ARRAY(SELECT x.attname::text FROM pg_attribute x WHERE x.attrelid = c.oid AND x.attnum > 0 AND NOT x.attisdropped ORDER BY x.attnum),
		       ARRAY(SELECT x.attnum FROM pg_attribute x WHERE x.attrelid = c.oid AND x.attnum > 0 AND NOT x.attisdropped ORDER BY x.attnum),
		       ARRAY(SELECT x.attnotnull FROM pg_attribute x WHERE x.attrelid = c.oid AND x.attnum > 0 AND NOT x.attisdropped ORDER BY x.attnum),
		       ARRAY(SELECT format_type(x.atttypid, NULL) FROM pg_attribute x
		              WHERE x.attrelid = c.oid AND x.attnum > 0 AND NOT x.attisdropped ORDER BY x.attnum),
		       has_any_column_privilege($2::oid, c.oid, 'SELECT'), has_any_column_privilege($2::oid, c.oid, 'INSERT'),
		       has_any_column_privilege($2::oid, c.oid, 'UPDATE'), has_table_privilege($2::oid, c.oid, 'DELETE'),
		       has_table_privilege($2::oid, c.oid, 'TRUNCATE'), has_table_privilege($2::oid, c.oid, 'TRIGGER'),
		       has_any_column_privilege($2::oid, c.oid, 'REFERENCES'),
		       ARRAY(SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) p
		              WHERE has_any_column_privilege('public', c.oid, p)
		             UNION ALL
		             SELECT p FROM unnest(ARRAY['DELETE', 'TRUNCATE', 'TRIGGER']) p
		              WHERE has_table_privilege('public', c.oid, p)),
		       (SELECT count(*) FROM pg_policy pol WHERE pol.polrelid = c.oid)
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relkind IN ('r', 'p', 'f') AND n.nspname = ANY($1)
		 ORDER BY n.nspname, c.relname`,
		[]any{schemas, c.app.oid, internalSchemas}, func(r pgx.Rows) error {
			t := &table{appPriv: map[string]bool{}}
			var sel, ins, upd, del, trunc, trig, refs bool
			var n int64
			if err := r.Scan(&t.oid, &t.name, &t.raw, &t.schema, &t.relname, &t.kind, &t.internal, &t.partition, &t.rls, &t.force,
				&t.owner, &t.root, &t.columns, &t.attnums, &t.notNull, &t.types,
				&sel, &ins, &upd, &del, &trunc, &trig, &refs, &t.publicPrivs, &n); err != nil {
				return err
			}
			for p, v := range map[string]bool{"SELECT": sel, "INSERT": ins, "UPDATE": upd, "DELETE": del,
				"TRUNCATE": trunc, "TRIGGER": trig, "REFERENCES": refs} {
				t.appPriv[p] = v
			}
			t.policiesCount = int(n)
			c.tables = append(c.tables, t)
			c.byOID[t.oid] = t
			return nil
		})
}

// loadDistributed marks the tables that Citus distributes, in a database with Citus.
func (c *catalog) loadDistributed(ctx context.Context, conn Querier, _ []string) error {
	var citus bool
	if err := each(ctx, conn, "Citus metadata", "SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL", nil, func(r pgx.Rows) error {
		return r.Scan(&citus)
	}); err != nil {
		return err
	}
	if !citus {
		return nil
	}
	return each(ctx, conn, "Citus metadata", "SELECT logicalrelid::oid FROM pg_catalog.pg_dist_partition", nil, func(r pgx.Rows) error {
		var oid uint32
		if err := r.Scan(&oid); err != nil {
			return err
		}
		if t := c.byOID[oid]; t != nil {
			t.distributed = true
		}
		return nil
	})
}

// loadTenantTables reads tenantseal.tenant_tables, where tenantseal.protect_table records each
// table's tenant column; a database migrated before it existed has none.
func (c *catalog) loadTenantTables(ctx context.Context, conn Querier, _ []string) error {
	exists := false
	err := each(ctx, conn, "tenant tables", `SELECT to_regclass($1) IS NOT NULL`, []any{tenantTables}, func(r pgx.Rows) error {
		return r.Scan(&exists)
	})
	if err != nil || !exists {
		return err
	}
	return each(ctx, conn, "tenant tables", `SELECT relid::oid, tenant_column::text FROM `+tenantTables, nil, func(r pgx.Rows) error {
		var oid uint32
		var col *string
		if err := r.Scan(&oid, &col); err != nil {
			return err
		}
		if col != nil && *col != "" {
			c.recorded[oid] = *col
		}
		return nil
	})
}

// assignTenantColumns finds each table's tenant column: tenant_id on the product's own tables;
// elsewhere the one Options.TenantColumns names for the table (or its partition root), else the one
// tenantseal.tenant_tables records, else Options.TenantColumn.
func (c *catalog) assignTenantColumns(context.Context, Querier, []string) error {
	named := func(t *table) (string, bool) {
		for _, key := range []string{t.raw, t.name} {
			if col, ok := c.opts.TenantColumns[key]; ok {
				return col, true
			}
		}
		return "", false
	}
	for _, t := range c.tables {
		col := c.opts.TenantColumn
		override, ok := named(t)
		if root := c.byOID[t.root]; !ok && root != nil {
			override, ok = named(root)
		}
		switch {
		case t.internal:
			col = DefaultTenantColumn
		case ok:
			col = override
		case c.recorded[t.oid] != "":
			col = c.recorded[t.oid]
		case c.recorded[t.root] != "":
			col = c.recorded[t.root]
		}
		t.tenantName, t.tenantCol = col, pgIdent(col)
		if col == c.opts.TenantColumn {
			t.tenantCol = c.tenantCol
		}
		if i := slices.Index(t.columns, col); i >= 0 {
			t.tenantAttnum, t.tenantNotNull, t.tenantType = t.attnums[i], t.notNull[i], t.types[i]
		}
	}
	for _, key := range slices.Sorted(maps.Keys(c.opts.TenantColumns)) {
		t := slices.IndexFunc(c.tables, func(t *table) bool { return !t.internal && (t.raw == key || t.name == key) })
		if t < 0 {
			return fmt.Errorf("%w: tenant column of %s: not a table in the checked schemas", ErrOptions, key)
		}
		if !c.tables[t].tenant() {
			return fmt.Errorf("%w: tenant column of %s: it has no column %q", ErrOptions, key, c.opts.TenantColumns[key])
		}
	}
	return nil
}

// loadRegistry marks the tenant registries: the product's tenantseal.tenants, Options.Registry, the
// application's table that tenantseal.adopt_registry made the source of tenants (tenantseal.settings
// records it, keyed by its registry_key), and every tenant table whose single-column primary key is its
// tenant column (a row per tenant).
func (c *catalog) loadRegistry(ctx context.Context, conn Querier, _ []string) error {
	var product, user, adopted uint32
	var adoptedKey string
	recorded := false
	err := each(ctx, conn, "registry", `SELECT coalesce(to_regclass($1)::oid, 0), coalesce(to_regclass(nullif($2, ''))::oid, 0),
		       (SELECT count(*) = 2 FROM pg_attribute WHERE attrelid = to_regclass($3) AND attname IN ('registry', 'registry_key') AND NOT attisdropped)`,
		[]any{DefaultRegistry, c.opts.Registry, settingsTable}, func(r pgx.Rows) error {
			return r.Scan(&product, &user, &recorded)
		})
	if err == nil && recorded {
		err = each(ctx, conn, "adopted registry", `SELECT coalesce(registry::oid, 0), coalesce(registry_key::text, '') FROM `+settingsTable,
			nil, func(r pgx.Rows) error {
				return r.Scan(&adopted, &adoptedKey)
			})
	}
	if err != nil {
		return err
	}
	if c.opts.Registry != "" && c.byOID[user] == nil {
		return fmt.Errorf("%w: registry %s is not a table in the checked schemas", ErrOptions, c.opts.Registry)
	}
	for _, t := range c.tables {
		named := t.oid == product || t.oid == user || t.oid == adopted
		if !named && (t.internal || !t.tenant()) {
			continue
		}
		for _, ix := range c.indexes {
			if ix.table == t.oid && ix.primary && len(ix.keys) == 1 {
				t.key = ix.keys[0]
			}
		}
		if i := slices.Index(t.columns, adoptedKey); t.oid == adopted && i >= 0 {
			t.key = t.attnums[i]
		}
		t.registry = named || t.key == t.tenantAttnum
		if !t.registry {
			t.key = 0
		}
	}
	return nil
}

// keyAttnum is the column that holds t's tenant: the tenant column, or a registry's key.
func keyAttnum(t *table) int16 {
	if t.registry && !t.tenant() {
		return t.key
	}
	return t.tenantAttnum
}

func (c *catalog) loadPolicies(ctx context.Context, conn Querier, schemas []string) error {
	return each(ctx, conn, "policies", `
		SELECT pol.polrelid, quote_ident(pol.polname), pol.polcmd::text, pol.polpermissive,
		       0 = ANY(pol.polroles) OR EXISTS (SELECT 1 FROM unnest(pol.polroles) r
		                                         WHERE r <> 0 AND pg_has_role($2::oid, r, 'USAGE')),
		       pol.polroles::oid[], pol.polqual::text, pol.polwithcheck::text,
		       coalesce(pg_get_expr(pol.polqual, pol.polrelid), ''), coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '')
		  FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = ANY($1)
		 ORDER BY n.nspname, c.relname, pol.polname`,
		[]any{schemas, c.app.oid}, func(r pgx.Rows) error {
			p := &policy{}
			var rel uint32
			var qual, check *string
			if err := r.Scan(&rel, &p.name, &p.cmd, &p.permissive, &p.appliesToApp, &p.roles, &qual, &check, &p.qualSQL, &p.checkSQL); err != nil {
				return err
			}
			if p.table = c.byOID[rel]; p.table == nil {
				return nil // a policy on a table kind the rules do not cover
			}
			var err error
			if qual != nil {
				if p.qual, err = nodetree.Parse(*qual); err != nil {
					return fmt.Errorf("policy %s: USING: %w", p.object(), err)
				}
			}
			if check != nil {
				if p.check, err = nodetree.Parse(*check); err != nil {
					return fmt.Errorf("policy %s: WITH CHECK: %w", p.object(), err)
				}
			}
			c.policies = append(c.policies, p)
			return nil
		})
}

func (c *catalog) loadIndexes(ctx context.Context, conn Querier, schemas []string) error {
	return each(ctx, conn, "indexes", `
		SELECT i.indexrelid, i.indrelid, quote_ident(ic.relname), format('%I.%I', n.nspname, ic.relname),
		       i.indisunique, i.indisprimary, i.indisvalid, i.indpred::text,
		       ARRAY(SELECT i.indkey[k] FROM generate_series(0, i.indnkeyatts - 1) k ORDER BY k),
		       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k),
		       coalesce((SELECT quote_ident(con.conname) FROM pg_constraint con
		                  WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')), ''),
		       EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid),
		       regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \S+ ON ', '')
		  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		  JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
		 ORDER BY n.nspname, ic.relname`,
		[]any{schemas}, func(r pgx.Rows) error {
			var ix index
			var pred *string
			if err := r.Scan(&ix.oid, &ix.table, &ix.name, &ix.qualified, &ix.unique, &ix.primary, &ix.valid, &pred,
				&ix.keys, &ix.keyDefs, &ix.constraint, &ix.attached, &ix.def); err != nil {
				return err
			}
			if pred != nil {
				ix.partial = true
				var err error
				if ix.pred, err = nodetree.Parse(*pred); err != nil {
					return fmt.Errorf("index %s: predicate: %w", ix.qualified, err)
				}
			}
			c.indexes = append(c.indexes, ix)
			return nil
		})
}

func (c *catalog) loadForeignKeys(ctx context.Context, conn Querier, schemas []string) error {
	// conparentid = 0: the clones of a partitioned table's key on its partitions report nothing new.
	return each(ctx, conn, "foreign keys", `
		SELECT quote_ident(con.conname), con.conrelid, con.confrelid, con.conkey, con.confkey,
		       ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
		               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord),
		       ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
		               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord)
		  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE con.contype = 'f' AND con.conparentid = 0 AND n.nspname = ANY($1)
		 ORDER BY n.nspname, c.relname, con.conname`,
		[]any{schemas}, func(r pgx.Rows) error {
			var fk foreignKey
			if err := r.Scan(&fk.name, &fk.from, &fk.to, &fk.fromKeys, &fk.toKeys, &fk.fromColumns, &fk.toColumns); err != nil {
				return err
			}
			c.fks = append(c.fks, fk)
			return nil
		})
}

func (c *catalog) loadExclusions(ctx context.Context, conn Querier, schemas []string) error {
	return each(ctx, conn, "exclusion constraints", `
		SELECT quote_ident(con.conname), con.conrelid, con.conkey,
		       ARRAY(SELECT o.oprname::text FROM unnest(con.conexclop) WITH ORDINALITY k(op, ord)
		               JOIN pg_operator o ON o.oid = k.op ORDER BY k.ord),
		       ARRAY(SELECT pg_get_indexdef(con.conindid, k::int, true) FROM generate_series(1, cardinality(con.conkey)) k)
		  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE con.contype = 'x' AND con.conparentid = 0 AND n.nspname = ANY($1)
		 ORDER BY n.nspname, c.relname, con.conname`,
		[]any{schemas}, func(r pgx.Rows) error {
			var x exclusion
			if err := r.Scan(&x.name, &x.table, &x.keys, &x.ops, &x.columns); err != nil {
				return err
			}
			c.excls = append(c.excls, x)
			return nil
		})
}

func (c *catalog) loadViews(ctx context.Context, conn Querier, schemas []string) error {
	// Views outside the checked schemas are read too: a checked view may reach a tenant table through them.
	err := each(ctx, conn, "views", `
		SELECT v.oid, format('%I.%I', n.nspname, v.relname), v.relkind = 'm', n.nspname = ANY($1),
		       coalesce((SELECT o.option_value::bool FROM pg_options_to_table(v.reloptions) o
		                  WHERE o.option_name = 'security_invoker'), false),
		       has_table_privilege($2::oid, v.oid, 'SELECT')
		  FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
		 WHERE v.relkind IN ('v', 'm') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
		 ORDER BY n.nspname, v.relname`,
		[]any{schemas, c.app.oid}, func(r pgx.Rows) error {
			var v view
			if err := r.Scan(&v.oid, &v.name, &v.materialized, &v.checked, &v.invoker, &v.appSelect); err != nil {
				return err
			}
			c.views = append(c.views, v)
			return nil
		})
	if err != nil {
		return err
	}
	return each(ctx, conn, "view dependencies", `
		SELECT DISTINCT rw.ev_class, d.refobjid, d.refclassid = 'pg_proc'::regclass
		  FROM pg_rewrite rw JOIN pg_class v ON v.oid = rw.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
		  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
		                  AND d.refclassid IN ('pg_class'::regclass, 'pg_proc'::regclass) AND d.refobjid <> rw.ev_class
		 WHERE v.relkind IN ('v', 'm') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'`,
		nil, func(r pgx.Rows) error {
			var from, to uint32
			var fn bool
			if err := r.Scan(&from, &to, &fn); err != nil {
				return err
			}
			if fn {
				c.viewFuncs[from] = append(c.viewFuncs[from], to)
			} else {
				c.viewDeps[from] = append(c.viewDeps[from], to)
			}
			return nil
		})
}

// loadPolicyCallees reads the functions and operators that policy expressions and SQL-standard function
// bodies call, for TS014, TS017 and TS024.
func (c *catalog) loadPolicyCallees(ctx context.Context, conn Querier, _ []string) error {
	var funcs, ops []uint32
	add := func(e *nodetree.Node) {
		if e != nil {
			f, o := callees(e)
			funcs, ops = append(funcs, f...), append(ops, o...)
		}
	}
	for _, p := range c.policies {
		add(p.qual)
		add(p.check)
	}
	for _, f := range c.functions {
		add(f.sqlBody)
	}
	if len(funcs)+len(ops) == 0 {
		return nil
	}
	err := each(ctx, conn, "operators", `
		SELECT o.oid, o.oprcode::oid, o.oprname::text,
		       format('%s(%s, %s)', o.oprname,
		              CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END,
		              CASE WHEN o.oprright = 0 THEN 'NONE' ELSE format_type(o.oprright, NULL) END)
		  FROM pg_operator o WHERE o.oid = ANY($1::oid[])`,
		[]any{ops}, func(r pgx.Rows) error {
			var oid uint32
			var op opInfo
			if err := r.Scan(&oid, &op.code, &op.op, &op.name); err != nil {
				return err
			}
			c.ops[oid] = op
			funcs = append(funcs, op.code)
			return nil
		})
	if err != nil {
		return err
	}
	return each(ctx, conn, "functions", `
		SELECT p.oid, format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), n.nspname, p.proleakproof
		  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = ANY($1::oid[])`,
		[]any{funcs}, func(r pgx.Rows) error {
			var oid uint32
			var f funcInfo
			if err := r.Scan(&oid, &f.name, &f.schema, &f.leakproof); err != nil {
				return err
			}
			c.funcs[oid] = f
			return nil
		})
}

// checkTenantColumn refuses a tenant column that no table of the user's schemas has: every table would
// pass for a global one, and the report would say little about isolation.
func (c *catalog) checkTenantColumn() error {
	count := map[string]int{}
	found := false
	for _, t := range c.tables {
		if t.internal {
			continue
		}
		found = true
		// A table recorded with a column of its own (tenantseal.tenant_tables, Options.TenantColumns)
		// does not vouch for a tenant column given otherwise that no table has.
		if t.tenant() && (t.tenantCol == c.opts.TenantColumn || c.opts.TenantColumn == DefaultTenantColumn) {
			return nil
		}
		for _, col := range t.columns {
			count[col]++
		}
	}
	if !found {
		return nil
	}
	hint := ""
	best := 1
	for col, n := range count {
		if strings.HasSuffix(col, "_id") && (n > best || n == best && hint != "" && col < hint) {
			hint, best = col, n
		}
	}
	if hint != "" {
		hint = fmt.Sprintf(" (%d tables have %q)", best, hint)
	}
	return fmt.Errorf("%w: no table in schema %s has the tenant column %q%s",
		ErrOptions, strings.Join(c.userSchemas, ", "), c.opts.TenantColumn, hint)
}
