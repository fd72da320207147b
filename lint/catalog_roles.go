package lint

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// The parts of the catalog about who runs what: functions and triggers, the roles the app role can
// act as, and the privileges it will receive on objects not created yet.

func (c *catalog) loadFunctions(ctx context.Context, conn Querier, schemas []string) error {
	var tenantFuncs []uint32
	for id := range c.tenantFuncs {
		tenantFuncs = append(tenantFuncs, id)
	}
	// Members of extensions are the extension's business, not the schema's: their owners cannot fix them.
	err := each(ctx, conn, "functions", `
		SELECT p.oid, format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
		       lower(p.proname), n.nspname, p.prokind = 'p', p.prosecdef, p.proleakproof,
		       p.prorettype = 'trigger'::regtype, l.lanname::text,
		       coalesce(CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid) ELSE p.prosrc END, ''), p.prosqlbody::text,
		       coalesce(EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search\_path=%'), false),
		       has_function_privilege('public', p.oid, 'EXECUTE'), has_function_privilege($2::oid, p.oid, 'EXECUTE'),
		       r.oid, quote_ident(r.rolname), r.rolsuper, r.rolbypassrls, r.rolcreaterole,
		       ARRAY(SELECT lower(coalesce(p.proargnames[i], '')) FROM generate_series(1, p.pronargs) i)
		  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
		  JOIN pg_roles r ON r.oid = p.proowner
		 WHERE (n.nspname = ANY($1) OR p.oid = ANY($3::oid[])) AND p.prokind IN ('f', 'p')
		   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
		 ORDER BY 2`,
		[]any{schemas, c.app.oid, tenantFuncs}, func(r pgx.Rows) error {
			f := &function{}
			var body *string
			if err := r.Scan(&f.oid, &f.name, &f.short, &f.schema, &f.procedure, &f.secdef, &f.leakproof, &f.trigger,
				&f.lang, &f.src, &body, &f.hasSearchPath, &f.publicExecute, &f.appExecute,
				&f.owner.oid, &f.owner.name, &f.owner.super, &f.owner.bypass, &f.owner.createRole, &f.args); err != nil {
				return err
			}
			// A RETURN body is one Query node; a BEGIN ATOMIC body is a list of them, judged as opaque.
			if body != nil && strings.HasPrefix(*body, "{") {
				var err error
				if f.sqlBody, err = nodetree.Parse(*body); err != nil {
					return fmt.Errorf("function %s: body: %w", f.name, err)
				}
			}
			c.functions = append(c.functions, f)
			c.funcByOID[f.oid] = f
			return nil
		})
	if err != nil {
		return err
	}
	// The roles whose privileges each definer's owner has: a policy TO one of them applies to its body.
	return each(ctx, conn, "function owners", `
		SELECT o.proowner, ARRAY(SELECT r.oid FROM pg_roles r WHERE pg_has_role(o.proowner, r.oid, 'USAGE'))
		  FROM (SELECT DISTINCT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		         WHERE p.prosecdef AND n.nspname = ANY($1)) o`,
		[]any{schemas}, func(r pgx.Rows) error {
			var owner uint32
			var roles []uint32
			if err := r.Scan(&owner, &roles); err != nil {
				return err
			}
			set := map[uint32]bool{0: true} // PUBLIC
			for _, id := range roles {
				set[id] = true
			}
			c.privsOf[owner] = set
			return nil
		})
}

func (c *catalog) loadTriggers(ctx context.Context, conn Querier, schemas []string) error {
	return each(ctx, conn, "triggers", `
		SELECT quote_ident(t.tgname), t.tgrelid, t.tgfoid,
		       ARRAY(SELECT e.name FROM (VALUES (4, 'INSERT'), (8, 'DELETE'), (16, 'UPDATE'), (32, 'TRUNCATE')) e(bit, name)
		              WHERE t.tgtype::int & e.bit <> 0)
		  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE NOT t.tgisinternal AND n.nspname = ANY($1)
		 ORDER BY n.nspname, c.relname, t.tgname`,
		[]any{schemas}, func(r pgx.Rows) error {
			var tg trigger
			if err := r.Scan(&tg.name, &tg.table, &tg.fn, &tg.events); err != nil {
				return err
			}
			c.triggers = append(c.triggers, tg)
			return nil
		})
}

// loadAppRoleReach reads what lets the app role act as someone else: the relations it owns and the
// roles it is a member of.
func (c *catalog) loadAppRoleReach(ctx context.Context, conn Querier, schemas []string) error {
	err := each(ctx, conn, "owned relations", `
		SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relowner = $2::oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND n.nspname = ANY($1)
		 ORDER BY 1`,
		[]any{schemas, c.app.oid}, func(r pgx.Rows) error {
			var o ownedRel
			err := r.Scan(&o.name, &o.kind)
			c.owned = append(c.owned, o)
			return err
		})
	if err != nil {
		return err
	}
	// pg_auth_members itself, not pg_has_role: the latter calls a superuser a member of every role,
	// which would blur two different findings. The shortest path to each role is kept.
	return each(ctx, conn, "role memberships", `
		WITH RECURSIVE m(roleid, path) AS (
		    SELECT am.roleid, ARRAY[quote_ident(r.rolname)]
		      FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid
		     WHERE am.member = $1::oid
		    UNION ALL
		    SELECT am.roleid, m.path || quote_ident(r.rolname)
		      FROM m JOIN pg_auth_members am ON am.member = m.roleid JOIN pg_roles r ON r.oid = am.roleid
		     WHERE cardinality(m.path) < 16 AND NOT quote_ident(r.rolname) = ANY(m.path)
		)
		SELECT DISTINCT ON (m.roleid) m.roleid, quote_ident(r.rolname), r.rolsuper, r.rolbypassrls, r.rolcreaterole, m.path
		  FROM m JOIN pg_roles r ON r.oid = m.roleid
		 ORDER BY m.roleid, cardinality(m.path), m.path`,
		[]any{c.app.oid}, func(r pgx.Rows) error {
			var m membership
			if err := r.Scan(&m.oid, &m.name, &m.super, &m.bypass, &m.createRole, &m.path); err != nil {
				return err
			}
			c.memberships = append(c.memberships, m)
			return nil
		})
}

// loadPrivilegesToCome reads the grants that objects not created yet will carry (default privileges)
// and where the app role may create objects of its own.
func (c *catalog) loadPrivilegesToCome(ctx context.Context, conn Querier, schemas []string) error {
	// The owner's own entry in its default ACL is no grant to anyone else.
	err := each(ctx, conn, "default privileges", `
		SELECT quote_ident(o.rolname), coalesce(n.nspname, ''), d.defaclobjtype::text,
		       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END,
		       array_agg(a.privilege_type::text ORDER BY a.privilege_type)
		  FROM pg_default_acl d JOIN pg_roles o ON o.oid = d.defaclrole
		  LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
		  CROSS JOIN LATERAL aclexplode(d.defaclacl) a
		  LEFT JOIN pg_roles g ON g.oid = a.grantee
		 WHERE a.grantee <> d.defaclrole AND (d.defaclnamespace = 0 OR n.nspname = ANY($1))
		   AND d.defaclobjtype IN ('r', 'f', 'n')
		   AND (a.grantee = 0 AND d.defaclobjtype <> 'f' OR a.grantee <> 0 AND pg_has_role($2::oid, a.grantee, 'USAGE'))
		 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
		[]any{schemas, c.app.oid}, func(r pgx.Rows) error {
			var d defaultACL
			if err := r.Scan(&d.owner, &d.schema, &d.objtype, &d.grantee, &d.privileges); err != nil {
				return err
			}
			c.defaultACLs = append(c.defaultACLs, d)
			return nil
		})
	if err != nil {
		return err
	}
	return each(ctx, conn, "create privileges", `
		SELECT 'schema ' || quote_ident(nspname) FROM pg_namespace
		 WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' AND has_schema_privilege($1::oid, oid, 'CREATE')
		UNION ALL
		SELECT 'database ' || quote_ident(current_database()) WHERE has_database_privilege($1::oid, current_database(), 'CREATE')
		ORDER BY 1`,
		[]any{c.app.oid}, func(r pgx.Rows) error {
			var s string
			err := r.Scan(&s)
			c.creatable = append(c.creatable, s)
			return err
		})
}
