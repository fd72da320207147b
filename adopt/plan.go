package adopt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Kind says what a [Change] does.
type Kind string

// The kinds of change, in the order the up file makes them.
const (
	KindWidenTenantColumn Kind = "widen-tenant-column" // an integer tenant column to bigint, for bigint keys
	KindAddTenantColumn   Kind = "add-tenant-column"   // add, fill and make NOT NULL a tenant column
	KindSetNotNull        Kind = "set-not-null"        // make an existing tenant column NOT NULL
	KindDropForeignKey    Kind = "drop-foreign-key"    // drop a foreign key that a paired one replaces
	KindTenantKey         Kind = "tenant-key"          // add a key led by the tenant column, or put it in one
	KindTenantIndex       Kind = "tenant-index"        // lead an index with the tenant column
	KindPairForeignKey    Kind = "pair-foreign-key"    // a foreign key that pairs the tenant columns
	KindLookupIndex       Kind = "lookup-index"        // an index for foreign key lookups, led by the tenant column
	KindAdoptRegistry     Kind = "adopt-registry"      // register the application's tenants with tenantseal
	KindReferenceTable    Kind = "reference-table"     // Citus: a global table copied to every node
	KindDistribute        Kind = "distribute"          // Citus: a tenant table sharded by its tenant column
	KindProtectTable      Kind = "protect-table"       // forced row-level security, policies, DML grants
	KindReferenceKey      Kind = "reference-key"       // Citus: a foreign key to a reference table, made again once both are distributed
	KindGrant             Kind = "grant"               // what the app role needs besides
	KindUndistribute      Kind = "undistribute"        // Citus, down file only: the tables back on the coordinator first
)

var kindOrder = []Kind{KindWidenTenantColumn, KindAddTenantColumn, KindSetNotNull, KindDropForeignKey, KindTenantKey, KindTenantIndex,
	KindPairForeignKey, KindLookupIndex, KindAdoptRegistry, KindReferenceTable, KindDistribute, KindReferenceKey, KindProtectTable, KindGrant, KindUndistribute}

// Change is one step of a [Plan]: statements for the up file, the statements that undo them for the
// down file, and why.
type Change struct {
	Kind Kind
	// Table is the table changed, "schema.table".
	Table  string
	Reason string
	Up     []string
	Down   []string
}

// Plan is what [Generate] found to do.
type Plan struct {
	Schemas []string
	AppRole string
	// Changes in the order the up file makes them; the down file undoes them in reverse.
	Changes []Change
	// Notes name what adopt left as it is, and why.
	Notes []string
}

// Refusal is one reason why adopt cannot put the schema under tenantseal safely.
type Refusal struct {
	Table  string
	Reason string
}

// RefusalError lists everything adopt refused: nothing was generated. Use errors.As.
type RefusalError struct {
	Refusals []Refusal
}

func (e *RefusalError) Error() string {
	parts := make([]string, len(e.Refusals))
	for i, r := range e.Refusals {
		parts[i] = r.Table + ": " + r.Reason
	}
	return "adopt: refused, nothing generated: " + strings.Join(parts, "; ")
}

// Conn is what [Generate] reads the catalog through: *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it. Pass
// a REPEATABLE READ transaction for one snapshot of the catalog and the data; Generate only reads, in a
// subtransaction that it rolls back.
type Conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// querier runs a query.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Options configure [Generate].
type Options struct {
	Declaration Declaration
	// AppRole is the role the application connects as, OwnerRole the one that owns the tables and
	// administers the tenants, ProbeRole tenantseal's probe role. Default: the database's own, as
	// tenantseal.role_name tells them.
	AppRole, OwnerRole, ProbeRole string
}

// Generate reads the catalog and the data of the declared schemas and returns the plan that puts them
// under tenantseal, or a [*RefusalError] listing what it cannot change safely, or an error wrapping
// [ErrDeclaration] when the declaration names what the catalog does not hold. Connect as the owner of
// the tables.
func Generate(ctx context.Context, conn Conn, opts Options) (*Plan, error) {
	d, err := opts.Declaration.normalized()
	if err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Deparsed definitions then name every table with its schema, whatever search_path applies the files.
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = pg_catalog, pg_temp"); err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	if err := resolveRoles(ctx, tx, &opts); err != nil {
		return nil, err
	}
	keyType, err := keyTypeSetting(ctx, tx)
	if err != nil {
		return nil, err
	}
	cat, err := readCatalog(ctx, tx, d.Schemas)
	if err != nil {
		return nil, fmt.Errorf("adopt: read the catalog: %w", err)
	}
	b := &builder{d: d, app: opts.AppRole, owner: opts.OwnerRole, probe: opts.ProbeRole, cat: cat, role: map[*table]role{}, keyType: keyType,
		tc: map[*table]string{}, path: map[*table]*constraint{}}
	if err := b.classify(); err != nil {
		return nil, err
	}
	if err := cat.readSerials(ctx, tx, b.protected(), b.app); err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname = ANY($1) AND NOT has_schema_privilege($2, oid, 'USAGE') ORDER BY 1`, d.Schemas, b.app)
	if err == nil {
		b.noSchemaUsage, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return nil, fmt.Errorf("adopt: schema privileges: %w", err)
	}
	if err := b.checkData(ctx, tx); err != nil {
		return nil, fmt.Errorf("adopt: check the data: %w", err)
	}
	if d.Citus && d.Registry != nil {
		b.refusals = append(b.refusals, Refusal{Table: d.Registry.Table,
			Reason: "Citus: an adopted registry registers its rows by a trigger, which Citus does not run on a distributed table; create the tenants with tenantseal (tenantseal tenants create --id) instead"})
	}
	if len(b.refusals) > 0 {
		return nil, &RefusalError{Refusals: b.refusals}
	}
	b.build()
	slices.SortStableFunc(b.changes, func(x, y Change) int {
		return slices.Index(kindOrder, x.Kind) - slices.Index(kindOrder, y.Kind)
	})
	return &Plan{Schemas: d.Schemas, AppRole: b.app, Changes: b.changes, Notes: b.notes}, nil
}

// resolveRoles fills in the role names opts leaves empty, as tenantseal.role_name tells them, and checks
// that all of them exist.
func resolveRoles(ctx context.Context, tx pgx.Tx, opts *Options) error {
	if opts.AppRole == "" || opts.OwnerRole == "" || opts.ProbeRole == "" {
		err := tx.QueryRow(ctx, "SELECT tenantseal.role_name('app'), tenantseal.role_name('owner'), tenantseal.role_name('probe')").Scan(&opts.AppRole, &opts.OwnerRole, &opts.ProbeRole)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "3F000" || pe.Code == "42883") {
			return errors.New("adopt: the database has no tenantseal schema: run 'tenantseal migrate up' first")
		}
		if err != nil {
			return fmt.Errorf("adopt: role names: %w", err)
		}
	}
	var missing []string
	if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(r ORDER BY r), '{}') FROM unnest($1::text[]) r WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)`,
		[]string{opts.AppRole, opts.OwnerRole, opts.ProbeRole}).Scan(&missing); err != nil {
		return fmt.Errorf("adopt: roles: %w", err)
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%w: role %s does not exist", ErrOptions, missing[0])
	}
	return fmt.Errorf("%w: roles %s do not exist", ErrOptions, strings.Join(missing, ", "))
}

// keyTypeSetting returns the deployment's tenant key type, tenantseal.settings.tenant_key_type.
func keyTypeSetting(ctx context.Context, tx pgx.Tx) (string, error) {
	var keyType string
	err := tx.QueryRow(ctx, `SELECT tenant_key_type FROM tenantseal.settings
		WHERE to_regprocedure('tenantseal.adopt_registry(regclass, name, name)') IS NOT NULL`).Scan(&keyType)
	var pe *pgconn.PgError
	if errors.Is(err, pgx.ErrNoRows) || errors.As(err, &pe) && pe.Code == "42703" {
		return "", errors.New("adopt: the database's tenantseal schema predates tenant keys of other types than uuid (migration 21): run 'tenantseal migrate up' first")
	}
	if err != nil {
		return "", fmt.Errorf("adopt: %w", err)
	}
	return keyType, nil
}

type role int

const (
	roleNone     role = iota // no tenant column and no path to one: refused
	roleTenant               // has its tenant column
	roleBackfill             // gets its tenant column from a parent
	roleRegistry
	roleGlobal
	roleExcluded
)

type builder struct {
	d                 Declaration
	app, owner, probe string
	cat               *catalog
	role              map[*table]role
	tc                map[*table]string      // the tenant column's name
	path              map[*table]*constraint // the foreign key a backfilled table gets its tenant from
	backfill          []*table               // in the order their columns are filled: parents first
	keyType           string                 // tenantseal.settings.tenant_key_type before adopt
	// noSchemaUsage lists the schemas whose tables the app role cannot reach.
	noSchemaUsage []string
	widen         []*table // integer tenant columns for bigint keys
	// already lists the tables protect_table protected before.
	already  []*table
	pairs    []fkPair
	refusals []Refusal
	notes    []string
	changes  []Change
	shapes   map[*table][]shape // the indexes as the plan leaves them
	used     map[string]bool    // "schema.name" of every relation and constraint
}

// fkPair is a foreign key between tenant tables that does not pair the tenant columns.
type fkPair struct {
	child, parent *table
	fk            *constraint
}

func (b *builder) refuse(t *table, format string, a ...any) {
	b.refusals = append(b.refusals, Refusal{Table: t.qualified(), Reason: fmt.Sprintf(format, a...)})
}

func (b *builder) note(t *table, format string, a ...any) {
	b.notes = append(b.notes, t.qualified()+": "+fmt.Sprintf(format, a...))
}

func (b *builder) tenantColumnName(t *table) string {
	if c, ok := b.d.TenantColumns[t.qualified()]; ok {
		return c
	}
	return b.d.TenantColumn
}

// isTenant: the table holds tenants' rows and gets protected.
func (b *builder) isTenant(t *table) bool {
	r := b.role[t]
	return r == roleTenant || r == roleBackfill
}

// protected returns the tables that protect_table protects, the registry first.
func (b *builder) protected() []*table {
	var out []*table
	for _, t := range b.cat.tables {
		if b.role[t] == roleRegistry {
			out = append(out, t)
		}
	}
	for _, t := range b.cat.tables {
		if b.isTenant(t) {
			out = append(out, t)
		}
	}
	return out
}

// tenantKeyType is the tenant key type (tenantseal.settings.tenant_key_type) of a registry key column of
// type typname, "" for none.
func tenantKeyType(typname string) string {
	switch typname {
	case "uuid":
		return "uuid"
	case "int8":
		return "bigint"
	case "int4":
		return "integer"
	case "text", "varchar":
		return "text"
	}
	return ""
}

type holding int

const (
	holdsNo    holding = iota
	holdsYes           // the column holds every key
	holdsWiden         // an integer column for bigint keys: widened to bigint
)

// holds says whether a tenant column of type typname can hold tenant keys of type keyType, as
// tenantseal.tenant_condition decides.
func holds(keyType, typname string) holding {
	ok := map[string][]string{"uuid": {"uuid", "text", "varchar"}, "bigint": {"int8"}, "integer": {"int4", "int8"},
		"text": {"text", "varchar"}}[keyType]
	switch {
	case slices.Contains(ok, typname):
		return holdsYes
	case keyType == "bigint" && typname == "int4":
		return holdsWiden
	}
	return holdsNo
}

func (b *builder) classify() error {
	want := func(what, name string) (*table, error) {
		t := b.cat.byName[name]
		if t == nil {
			return nil, fmt.Errorf("%w: %s %s: no such table in schema %s", ErrDeclaration, what, name, strings.Join(b.d.Schemas, ", "))
		}
		return t, nil
	}
	for _, n := range b.d.Exclude {
		t, err := want("excluded table", n)
		if err != nil {
			return err
		}
		b.role[t] = roleExcluded
	}
	for _, n := range b.d.Global {
		t, err := want("global table", n)
		if err != nil {
			return err
		}
		b.role[t] = roleGlobal
	}
	for n := range b.d.TenantColumns {
		if _, err := want("tenant_columns table", n); err != nil {
			return err
		}
	}
	var registry *table
	if r := b.d.Registry; r != nil {
		t, err := want("registry", r.Table)
		if err != nil {
			return err
		}
		if t.column(r.Key) == nil {
			return fmt.Errorf("%w: registry %s has no key column %s", ErrDeclaration, r.Table, r.Key)
		}
		if r.Name != "" && t.column(r.Name) == nil {
			return fmt.Errorf("%w: registry %s has no name column %s", ErrDeclaration, r.Table, r.Name)
		}
		b.role[t], b.tc[t] = roleRegistry, r.Key
		registry = t
	}
	var orphans []*table
	for _, t := range b.cat.tables {
		if _, ok := b.role[t]; ok {
			continue
		}
		b.tc[t] = b.tenantColumnName(t)
		if t.column(b.tc[t]) != nil {
			b.role[t] = roleTenant
		} else {
			orphans = append(orphans, t)
		}
	}

	// Tables without a tenant column get one from a parent, nearest tenant tables first.
	known := map[*table]bool{}
	for t, r := range b.role {
		if r == roleTenant || r == roleRegistry {
			known[t] = true
		}
	}
	for len(orphans) > 0 {
		var next, left []*table
		for _, t := range orphans {
			var via *constraint
			for _, c := range t.cons {
				if p := b.cat.byOID[c.ref]; c.kind == 'f' && p != nil && p != t && known[p] {
					via = c
					break
				}
			}
			if via == nil {
				left = append(left, t)
				continue
			}
			b.role[t], b.path[t] = roleBackfill, via
			next = append(next, t)
		}
		if len(next) == 0 {
			break
		}
		for _, t := range next {
			known[t] = true
		}
		b.backfill = append(b.backfill, next...)
		orphans = left
	}
	for _, t := range orphans {
		b.refuse(t, "no tenant column %s and no foreign key path to a tenant table: declare it global (every tenant reads it), exclude it, or name its tenant column in tenant_columns", b.tc[t])
	}

	// Tenant column types: what tenantseal.tenant_condition accepts for the deployment's key type.
	keyType, keyFrom := b.keyType, "the database's tenant keys (tenantseal.settings.tenant_key_type)"
	if registry != nil {
		c := registry.column(b.tc[registry])
		keyType, keyFrom = tenantKeyType(c.typname), fmt.Sprintf("the registry's key %s", c.name)
		if keyType == "" {
			b.refuse(registry, "key column %s is %s: tenant ids must be uuid, bigint, integer, text or varchar", c.name, c.typ)
		}
	}
	for _, t := range b.cat.tables {
		if b.role[t] != roleTenant || keyType == "" {
			continue
		}
		c := t.column(b.tc[t])
		switch holds(keyType, c.typname) {
		case holdsYes:
		case holdsWiden:
			b.widen = append(b.widen, t)
		default:
			if tenantKeyType(c.typname) == "" {
				b.refuse(t, "tenant column %s is %s: tenant ids must be uuid, bigint, integer, text or varchar", c.name, c.typ)
			} else {
				b.refuse(t, "tenant column %s is %s, but %s is %s: a %s column cannot hold them; change the column's type or name another tenant column", c.name, c.typ, keyFrom, keyType, c.typ)
			}
		}
	}

	// Policies: protect_table creates <table>_select, _insert, _update and _delete; permissive policies
	// of the table's own would be ORed with them.
	for _, t := range b.protected() {
		ours := []string{t.name + "_select", t.name + "_insert", t.name + "_update", t.name + "_delete"}
		if b.role[t] == roleRegistry {
			ours = append(ours, "tenantseal_registry_owner")
		}
		var have, own []string
		for _, p := range t.policies {
			if slices.Contains(ours, p.name) {
				have = append(have, p.name)
			} else if p.permissive {
				own = append(own, p.name)
			}
		}
		switch {
		case len(have) == len(ours) && t.rls && t.forceRLS:
			b.already = append(b.already, t)
		case len(have) > 0:
			b.refuse(t, "has policies %s but not forced row-level security with all of %s: drop them, or finish protecting the table by hand", strings.Join(have, ", "), strings.Join(ours, ", "))
		}
		if len(own) > 0 {
			b.refuse(t, "has permissive policies %s, which PostgreSQL would OR with the tenant policies and so widen them: drop them or make them AS RESTRICTIVE first", strings.Join(own, ", "))
		}
	}

	// Foreign keys between tenant tables that do not pair the tenant columns.
	for _, t := range b.cat.tables {
		if !b.isTenant(t) {
			continue
		}
		for _, c := range t.cons {
			p := b.cat.byOID[c.ref]
			if c.kind != 'f' || p == nil {
				continue
			}
			tcNum := t.column(b.tc[t]) // nil while a backfilled column does not exist yet
			pc := p.column(b.tc[p])
			paired := false
			refsTenant := false
			for i := range c.cols {
				if pc != nil && c.refCols[i] == pc.num {
					refsTenant = true
					paired = paired || (tcNum != nil && c.cols[i] == tcNum.num)
				}
			}
			switch {
			case paired, c == b.path[t] && b.role[p] == roleRegistry:
			case b.role[p] == roleRegistry:
				b.note(t, "foreign key %s references the registry by another column than %s: left as is (is it meant to cross tenants?)", c.name, b.tc[t])
			case !b.isTenant(p):
			case refsTenant:
				b.note(t, "foreign key %s references %s's tenant column %s from another column: left as is", c.name, p.qualified(), b.tc[p])
			default:
				b.pairs = append(b.pairs, fkPair{child: t, parent: p, fk: c})
			}
		}
	}
	return nil
}

// tenantExpr is an SQL expression for the tenant of the row of t that alias names, also before a
// backfilled column exists: through its parents.
func (b *builder) tenantExpr(t *table, alias string, depth int) string {
	if b.role[t] != roleBackfill {
		return alias + "." + ident(b.tc[t])
	}
	fk := b.path[t]
	p := b.cat.byOID[fk.ref]
	pa := fmt.Sprintf("p%d", depth)
	return fmt.Sprintf("(SELECT %s FROM %s %s WHERE %s)", b.tenantExpr(p, pa, depth+1), p.ident(), pa, joinOn(pa, p.names(fk.refCols), alias, t.names(fk.cols)))
}

func joinOn(pa string, pcols []string, ca string, ccols []string) string {
	conds := make([]string, len(pcols))
	for i := range pcols {
		conds[i] = fmt.Sprintf("%s.%s = %s.%s", pa, ident(pcols[i]), ca, ident(ccols[i]))
	}
	return strings.Join(conds, " AND ")
}

// checkData refuses the changes that existing rows would make fail.
func (b *builder) checkData(ctx context.Context, q querier) error {
	count := func(sql string) (n int64, example string, err error) {
		rows, err := q.Query(ctx, sql)
		if err != nil {
			return 0, "", err
		}
		_, err = pgx.ForEachRow(rows, []any{&n, &example}, func() error { return nil })
		return n, example, err
	}
	if r := b.d.Registry; r != nil {
		t := b.cat.byName[r.Table]
		if kt := tenantKeyType(t.column(r.Key).typname); kt != "" {
			// What adopt_registry would refuse, or fail on: tenants of another key type, keys that are none.
			n, example, err := count(fmt.Sprintf(`SELECT count(*), coalesce(min(key), '') FROM tenantseal.tenants WHERE tenantseal.tenant_key_problem(key, %s) IS NOT NULL`, literal(kt)))
			if err != nil {
				return err
			}
			if n > 0 {
				b.refuse(t, "tenantseal already has %d %s whose keys are not %s, e.g. %s: a registry of %s keys cannot be adopted beside them", n, pluralRows(n, "tenant", "tenants"), kt, example, kt)
			}
			n, example, err = count(fmt.Sprintf(`SELECT count(*), coalesce(min(tenantseal.tenant_key_problem(k, %[1]s) || ': ' || left(k, 40)), '')
				FROM (SELECT %[2]s::text AS k FROM %[3]s) r WHERE k IS NOT NULL AND tenantseal.tenant_key_problem(k, %[1]s) IS NOT NULL`, literal(kt), ident(r.Key), t.ident()))
			if err != nil {
				return err
			}
			if n > 0 {
				b.refuse(t, "%d %s no tenant key, e.g. %s: fix or delete them first", n, pluralRows(n, "row's key is", "rows' keys are"), example)
			}
		}
	}
	for _, t := range b.protected() {
		if b.role[t] == roleBackfill {
			continue
		}
		c := t.column(b.tc[t])
		if c.notNull {
			continue
		}
		n, _, err := count(fmt.Sprintf("SELECT count(*), '' FROM %s WHERE %s IS NULL", t.ident(), ident(c.name)))
		if err != nil {
			return err
		}
		if n > 0 {
			b.refuse(t, "tenant column %s is nullable and %d %s NULL: give those rows their tenant (or delete them), then run adopt again", c.name, n, rowsHold(n))
		}
	}
	for _, t := range b.widen {
		c := t.column(b.tc[t])
		n, views, err := count(fmt.Sprintf(`SELECT count(*), coalesce(string_agg(DISTINCT r.ev_class::regclass::text, ', '), '')
			FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
			WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = %d AND d.refobjsubid = %d`, t.oid, c.num))
		if err != nil {
			return err
		}
		if n > 0 {
			b.refuse(t, "tenant column %s is integer and the tenant keys are bigint, but views use it (%s), so adopt cannot widen it: widen it to bigint yourself first", c.name, views)
		}
	}
	for _, t := range b.backfill {
		fk := b.path[t]
		var nulls []string
		for _, name := range t.names(fk.cols) {
			if !t.column(name).notNull {
				nulls = append(nulls, ident(name)+" IS NULL")
			}
		}
		if len(nulls) == 0 {
			continue
		}
		n, _, err := count(fmt.Sprintf("SELECT count(*), '' FROM %s WHERE %s", t.ident(), strings.Join(nulls, " OR ")))
		if err != nil {
			return err
		}
		if n > 0 {
			b.refuse(t, "gets its tenant column %s through foreign key %s, but %d %s NULL there and so no tenant: fill them or delete them, declare the table global or exclude it",
				b.tc[t], fk.name, n, rowsHold(n))
		}
	}
	for _, pr := range b.pairs {
		if pr.fk == b.path[pr.child] {
			continue // filled from this parent: consistent by construction
		}
		ccols, pcols := pr.child.names(pr.fk.cols), pr.parent.names(pr.fk.refCols)
		key := make([]string, len(ccols))
		for i, c := range ccols {
			key[i] = "c." + ident(c)
		}
		sql := fmt.Sprintf(`SELECT count(*), coalesce(min(format('(%s)=%%s of tenant %%s points at a row of tenant %%s', k, ct, pt)), '')
			FROM (SELECT ROW(%s)::text AS k, (%s)::text AS ct, (%s)::text AS pt FROM %s c JOIN %s p ON %s) x
			WHERE ct <> pt`,
			strings.ReplaceAll(strings.Join(ccols, ", "), "'", "''"), strings.Join(key, ", "), b.tenantExpr(pr.child, "c", 1),
			b.tenantExpr(pr.parent, "p", 1), pr.child.ident(), pr.parent.ident(), joinOn("p", pcols, "c", ccols))
		n, example, err := count(sql)
		if err != nil {
			return err
		}
		if n > 0 {
			b.refuse(pr.child, "foreign key %s to %s would pair the tenant columns, but %d %s at another tenant's row, e.g. %s: fix those rows first",
				pr.fk.name, pr.parent.qualified(), n, pluralRows(n, "row points", "rows point"), example)
		}
	}
	return nil
}

func rowsHold(n int64) string { return pluralRows(n, "row holds", "rows hold") }

func pluralRows(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ident quotes one identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes a string constant.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func idents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = ident(n)
	}
	return strings.Join(q, ", ")
}
