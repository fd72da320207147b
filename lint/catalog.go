package lint

import (
	"context"
	"fmt"
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
	tenantCol   string // quoted
	tenantCall  string // e.g. "tenantseal.current_tenant()", for fix hints
	tenantFuncs map[uint32]bool
	elevated    uint32 // 0 when the database has no tenantseal.elevated()

	tables   []*table // ordinary and partitioned tables in the checked schemas
	byOID    map[uint32]*table
	policies []*policy
	indexes  []index
	fks      []foreignKey
	views    []view
	viewDeps map[uint32][]uint32 // view or materialized view -> relations its rules read
	secdefs  []secdefFunc
	owned    []ownedRel // relations the app role owns
	// ownerPath is the chain of roles granted to the app role that leads to the owner role (the owner
	// role last); empty when the app role is no member of it.
	ownerPath []string
	funcs     map[uint32]funcInfo
	ops       map[uint32]opInfo
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
	partition     bool
	rls, force    bool
	tenantAttnum  int16 // 0: no tenant column
	appPriv       map[string]bool
	publicPrivs   []string
	policiesCount int
}

func (t *table) tenant() bool { return t.tenantAttnum != 0 }

// rlsApplies says whether the table's own row-level security settings matter: a partition is reached
// through its parent, whose policies apply, unless the app role holds privileges on the partition itself.
func (t *table) rlsApplies() bool {
	return t.tenant() && (!t.partition || t.appAny())
}

func (t *table) appAny() bool {
	return t.appPriv["SELECT"] || t.appPriv["INSERT"] || t.appPriv["UPDATE"] || t.appPriv["DELETE"]
}

type policy struct {
	name         string
	table        *table
	cmd          string // "r", "a", "w", "d" or "*", as pg_policy.polcmd
	permissive   bool
	appliesToApp bool
	qual, check  *nodetree.Node // nil when absent
	qualSQL      string
}

func (p *policy) object() string { return p.name + " on " + p.table.name }

func (p *policy) command() string {
	return map[string]string{"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}[p.cmd]
}

type index struct {
	table      uint32
	name       string // unqualified, for messages
	qualified  string // for DROP INDEX
	unique     bool
	primary    bool
	valid      bool
	partial    bool
	keys       []int16  // attnums of the key columns; 0 for an expression
	keyDefs    []string // the key columns as SQL
	constraint string   // the PRIMARY KEY or UNIQUE constraint the index backs, or ""
	attached   bool     // an index of a partition that belongs to its parent's partitioned index
}

type foreignKey struct {
	name                   string
	from, to               uint32
	fromKeys, toKeys       []int16
	fromColumns, toColumns []string
}

type view struct {
	oid          uint32
	name         string
	materialized bool
	checked      bool // in a checked schema
	invoker      bool // security_invoker=true
}

type secdefFunc struct {
	name          string
	procedure     bool
	hasSearchPath bool
	publicExecute bool
}

type ownedRel struct {
	name string
	kind string // pg_class.relkind
}

type funcInfo struct {
	name      string
	leakproof bool
}

type opInfo struct {
	name string
	code uint32
}

func load(ctx context.Context, conn Querier, opts Options) (*catalog, error) {
	c := &catalog{opts: opts, byOID: map[uint32]*table{}, viewDeps: map[uint32][]uint32{},
		tenantFuncs: map[uint32]bool{}, funcs: map[uint32]funcInfo{}, ops: map[uint32]opInfo{}}
	var err error
	if c.app, err = loadRole(ctx, conn, opts.AppRole); err != nil {
		return nil, err
	}
	if c.owner, err = loadRole(ctx, conn, opts.OwnerRole); err != nil {
		return nil, err
	}
	schemas := opts.Schemas
	if len(schemas) == 0 {
		err := each(ctx, conn, "schemas", `SELECT nspname FROM pg_namespace
			WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1`, nil,
			func(r pgx.Rows) error {
				var s string
				err := r.Scan(&s)
				schemas = append(schemas, s)
				return err
			})
		if err != nil {
			return nil, err
		}
	}
	schemas = slices.DeleteFunc(slices.Clone(schemas), func(s string) bool { return s == internalSchema })

	if err := c.loadTenantFunction(ctx, conn); err != nil {
		return nil, err
	}
	for _, step := range []func(context.Context, Querier, []string) error{
		c.loadTables, c.loadPolicies, c.loadIndexes, c.loadForeignKeys, c.loadViews, c.loadSecurityDefiners,
		c.loadAppRoleReach, c.loadPolicyCallees,
	} {
		if err := step(ctx, conn, schemas); err != nil {
			return nil, err
		}
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
	err = each(ctx, conn, "elevation function", `SELECT coalesce(to_regprocedure($1)::oid, 0), quote_ident($2)`,
		[]any{elevatedFunction, c.opts.TenantColumn}, func(r pgx.Rows) error {
			return r.Scan(&c.elevated, &c.tenantCol)
		})
	return err
}

func (c *catalog) loadTables(ctx context.Context, conn Querier, schemas []string) error {
	return each(ctx, conn, "tables", `
		SELECT c.oid, format('%I.%I', n.nspname, c.relname), n.nspname || '.' || c.relname, c.relispartition,
		       c.relrowsecurity, c.relforcerowsecurity,
		       coalesce((SELECT a.attnum FROM pg_attribute a
		                  WHERE a.attrelid = c.oid AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped), 0),
		       has_any_column_privilege($2::oid, c.oid, 'SELECT'), has_any_column_privilege($2::oid, c.oid, 'INSERT'),
		       has_any_column_privilege($2::oid, c.oid, 'UPDATE'), has_table_privilege($2::oid, c.oid, 'DELETE'),
		       has_table_privilege($2::oid, c.oid, 'TRUNCATE'),
		       ARRAY(SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) p
		              WHERE has_any_column_privilege('public', c.oid, p)
		             UNION ALL
		             SELECT p FROM unnest(ARRAY['DELETE', 'TRUNCATE', 'TRIGGER']) p
		              WHERE has_table_privilege('public', c.oid, p)),
		       (SELECT count(*) FROM pg_policy pol WHERE pol.polrelid = c.oid)
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)`,
		[]any{schemas, c.app.oid, c.opts.TenantColumn}, func(r pgx.Rows) error {
			t := &table{appPriv: map[string]bool{}}
			var sel, ins, upd, del, trunc bool
			var n int64
			if err := r.Scan(&t.oid, &t.name, &t.raw, &t.partition, &t.rls, &t.force, &t.tenantAttnum,
				&sel, &ins, &upd, &del, &trunc, &t.publicPrivs, &n); err != nil {
				return err
			}
			t.appPriv["SELECT"], t.appPriv["INSERT"], t.appPriv["UPDATE"], t.appPriv["DELETE"], t.appPriv["TRUNCATE"] =
				sel, ins, upd, del, trunc
			t.policiesCount = int(n)
			c.tables = append(c.tables, t)
			c.byOID[t.oid] = t
			return nil
		})
}

func (c *catalog) loadPolicies(ctx context.Context, conn Querier, schemas []string) error {
	return each(ctx, conn, "policies", `
		SELECT pol.polrelid, quote_ident(pol.polname), pol.polcmd::text, pol.polpermissive,
		       0 = ANY(pol.polroles) OR EXISTS (SELECT 1 FROM unnest(pol.polroles) r
		                                         WHERE r <> 0 AND pg_has_role($2::oid, r, 'USAGE')),
		       pol.polqual::text, pol.polwithcheck::text, coalesce(pg_get_expr(pol.polqual, pol.polrelid), '')
		  FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = ANY($1)`,
		[]any{schemas, c.app.oid}, func(r pgx.Rows) error {
			p := &policy{}
			var rel uint32
			var qual, check *string
			if err := r.Scan(&rel, &p.name, &p.cmd, &p.permissive, &p.appliesToApp, &qual, &check, &p.qualSQL); err != nil {
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
		SELECT i.indrelid, quote_ident(ic.relname), format('%I.%I', n.nspname, ic.relname),
		       i.indisunique, i.indisprimary, i.indisvalid, i.indpred IS NOT NULL,
		       ARRAY(SELECT i.indkey[k] FROM generate_series(0, i.indnkeyatts - 1) k ORDER BY k),
		       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k),
		       coalesce((SELECT quote_ident(con.conname) FROM pg_constraint con
		                  WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')), ''),
		       EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
		  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		  JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)`,
		[]any{schemas}, func(r pgx.Rows) error {
			var ix index
			if err := r.Scan(&ix.table, &ix.name, &ix.qualified, &ix.unique, &ix.primary, &ix.valid, &ix.partial,
				&ix.keys, &ix.keyDefs, &ix.constraint, &ix.attached); err != nil {
				return err
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
		 WHERE con.contype = 'f' AND con.conparentid = 0 AND n.nspname = ANY($1)`,
		[]any{schemas}, func(r pgx.Rows) error {
			var fk foreignKey
			if err := r.Scan(&fk.name, &fk.from, &fk.to, &fk.fromKeys, &fk.toKeys, &fk.fromColumns, &fk.toColumns); err != nil {
				return err
			}
			c.fks = append(c.fks, fk)
			return nil
		})
}

func (c *catalog) loadViews(ctx context.Context, conn Querier, schemas []string) error {
	// Views outside the checked schemas are read too: a checked view may reach a tenant table through them.
	err := each(ctx, conn, "views", `
		SELECT v.oid, format('%I.%I', n.nspname, v.relname), v.relkind = 'm', n.nspname = ANY($1),
		       coalesce((SELECT o.option_value::bool FROM pg_options_to_table(v.reloptions) o
		                  WHERE o.option_name = 'security_invoker'), false)
		  FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
		 WHERE v.relkind IN ('v', 'm') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'`,
		[]any{schemas}, func(r pgx.Rows) error {
			var v view
			if err := r.Scan(&v.oid, &v.name, &v.materialized, &v.checked, &v.invoker); err != nil {
				return err
			}
			c.views = append(c.views, v)
			return nil
		})
	if err != nil {
		return err
	}
	return each(ctx, conn, "view dependencies", `
		SELECT DISTINCT rw.ev_class, d.refobjid
		  FROM pg_rewrite rw JOIN pg_class v ON v.oid = rw.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
		  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
		                  AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> rw.ev_class
		 WHERE v.relkind IN ('v', 'm') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'`,
		nil, func(r pgx.Rows) error {
			var from, to uint32
			if err := r.Scan(&from, &to); err != nil {
				return err
			}
			c.viewDeps[from] = append(c.viewDeps[from], to)
			return nil
		})
}

func (c *catalog) loadSecurityDefiners(ctx context.Context, conn Querier, schemas []string) error {
	return each(ctx, conn, "functions", `
		SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), p.prokind = 'p',
		       coalesce(EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search\_path=%'), false),
		       has_function_privilege('public', p.oid, 'EXECUTE')
		  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		 WHERE p.prosecdef AND (n.nspname = ANY($1) OR n.nspname = $2)`,
		[]any{schemas, internalSchema}, func(r pgx.Rows) error {
			var f secdefFunc
			if err := r.Scan(&f.name, &f.procedure, &f.hasSearchPath, &f.publicExecute); err != nil {
				return err
			}
			c.secdefs = append(c.secdefs, f)
			return nil
		})
}

// loadAppRoleReach reads what lets the app role act as someone else: the relations it owns and the
// chain of memberships that leads it to the owner role.
func (c *catalog) loadAppRoleReach(ctx context.Context, conn Querier, schemas []string) error {
	// The internal schema counts here: the app role owning anything of tenantseal's is as bad.
	err := each(ctx, conn, "owned relations", `
		SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relowner = $2::oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
		   AND (n.nspname = ANY($1) OR n.nspname = $3)`,
		[]any{schemas, c.app.oid, internalSchema}, func(r pgx.Rows) error {
			var o ownedRel
			err := r.Scan(&o.name, &o.kind)
			c.owned = append(c.owned, o)
			return err
		})
	if err != nil {
		return err
	}
	// pg_auth_members itself, not pg_has_role: the latter calls a superuser a member of every role,
	// which would blur two different findings.
	return each(ctx, conn, "role memberships", `
		WITH RECURSIVE m(roleid, path) AS (
		    SELECT am.roleid, ARRAY[quote_ident(r.rolname)]
		      FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid
		     WHERE am.member = $1::oid
		    UNION ALL
		    SELECT am.roleid, m.path || quote_ident(r.rolname)
		      FROM m JOIN pg_auth_members am ON am.member = m.roleid JOIN pg_roles r ON r.oid = am.roleid
		     WHERE cardinality(m.path) < 64
		)
		SELECT path FROM m WHERE roleid = $2::oid ORDER BY cardinality(path), path LIMIT 1`,
		[]any{c.app.oid, c.owner.oid}, func(r pgx.Rows) error {
			return r.Scan(&c.ownerPath)
		})
}

// loadPolicyCallees reads the functions and operators that policy expressions call, for TS014.
func (c *catalog) loadPolicyCallees(ctx context.Context, conn Querier, _ []string) error {
	var funcs, ops []uint32
	for _, p := range c.policies {
		for _, e := range []*nodetree.Node{p.qual, p.check} {
			if e != nil {
				f, o := callees(e)
				funcs, ops = append(funcs, f...), append(ops, o...)
			}
		}
	}
	if len(funcs)+len(ops) == 0 {
		return nil
	}
	err := each(ctx, conn, "operators", `
		SELECT o.oid, o.oprcode::oid,
		       format('%s(%s, %s)', o.oprname,
		              CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END,
		              CASE WHEN o.oprright = 0 THEN 'NONE' ELSE format_type(o.oprright, NULL) END)
		  FROM pg_operator o WHERE o.oid = ANY($1::oid[])`,
		[]any{ops}, func(r pgx.Rows) error {
			var oid uint32
			var op opInfo
			if err := r.Scan(&oid, &op.code, &op.name); err != nil {
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
		SELECT p.oid, format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), p.proleakproof
		  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = ANY($1::oid[])`,
		[]any{funcs}, func(r pgx.Rows) error {
			var oid uint32
			var f funcInfo
			if err := r.Scan(&oid, &f.name, &f.leakproof); err != nil {
				return err
			}
			c.funcs[oid] = f
			return nil
		})
}
