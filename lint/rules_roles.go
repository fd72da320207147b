package lint

import (
	"fmt"
	"strings"
)

// Rules about who can step around the policies: the app and owner roles (TS010), SECURITY DEFINER
// functions (TS011) and views that run with their owner's rights (TS012).

func checkAppRole(c *catalog) []Finding {
	app := c.app.name
	var out []Finding
	add := func(msg, fix string) {
		out = append(out, Finding{Object: app, Message: msg, Fix: fix})
	}
	if c.app.super {
		add("the app role is a superuser: row-level security never applies to it", "ALTER ROLE "+app+" NOSUPERUSER")
	}
	if c.app.bypass {
		add("the app role has BYPASSRLS: row-level security never applies to it", "ALTER ROLE "+app+" NOBYPASSRLS")
	}
	if c.app.createRole {
		add("the app role has CREATEROLE: it can create roles and, before PostgreSQL 16, grant itself the owner role",
			"ALTER ROLE "+app+" NOCREATEROLE")
	}
	if c.app.oid == c.owner.oid {
		add("the app role is the owner role: it can disable row-level security and rewrite the policies",
			"connect the application as a separate role without ownership (tenantseal bootstrap creates one)")
	}
	owns := map[uint32]string{}
	for _, t := range c.tables {
		if (t.tenant() || t.registry) && owns[t.owner] == "" {
			owns[t.owner] = t.name
		}
	}
	for _, m := range c.memberships {
		how := ""
		if len(m.path) > 1 {
			how = " (through " + strings.Join(m.path[:len(m.path)-1], ", ") + ")"
		}
		var what string
		switch {
		case m.oid == c.owner.oid:
			what = fmt.Sprintf("the owner role %s%s: it can SET ROLE to it and then disable row-level security", m.name, how)
		case m.super:
			what = fmt.Sprintf("the superuser role %s%s: it can SET ROLE to it, and row-level security never applies to a superuser", m.name, how)
		case m.bypass:
			what = fmt.Sprintf("the role %s%s, which has BYPASSRLS: it can SET ROLE to it and read every tenant's rows", m.name, how)
		case owns[m.oid] != "":
			what = fmt.Sprintf("the role %s%s, which owns tenant table %s: it can SET ROLE to it and then disable row-level security", m.name, how, owns[m.oid])
		default:
			continue
		}
		add("the app role is a member of "+what, fmt.Sprintf("REVOKE %s FROM %s", m.path[0], app))
	}
	if c.owner.oid != c.app.oid {
		if c.owner.super {
			out = append(out, Finding{Object: c.owner.name,
				Message: "the owner role is a superuser: FORCE ROW LEVEL SECURITY does not bind it, so every SECURITY DEFINER function and view it owns reads every tenant's rows",
				Fix:     "ALTER ROLE " + c.owner.name + " NOSUPERUSER"})
		}
		if c.owner.bypass {
			out = append(out, Finding{Object: c.owner.name,
				Message: "the owner role has BYPASSRLS: FORCE ROW LEVEL SECURITY does not bind it, so every SECURITY DEFINER function and view it owns reads every tenant's rows",
				Fix:     "ALTER ROLE " + c.owner.name + " NOBYPASSRLS"})
		}
	}
	for _, o := range c.owned {
		verb := map[string]string{"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE", "S": "SEQUENCE"}[o.kind]
		if verb == "" {
			verb = "TABLE"
		}
		out = append(out, Finding{Object: o.name,
			Message: fmt.Sprintf("owned by the app role %s: an owner can disable row-level security, change policies and grant itself anything on it", app),
			Fix:     fmt.Sprintf("ALTER %s %s OWNER TO %s", verb, o.name, c.owner.name)})
	}
	return out
}

func checkSecurityDefiner(c *catalog) []Finding {
	var out []Finding
	for _, f := range c.functions {
		if !f.secdef {
			continue
		}
		kind := f.kind()
		if !f.hasSearchPath {
			out = append(out, Finding{Object: f.name,
				Message: "SECURITY DEFINER without a fixed search_path: whoever can create objects in a schema on the caller's path can make it run their code with its owner's rights",
				Fix:     fmt.Sprintf("ALTER %s %s SET search_path = pg_catalog, pg_temp", kind, f.name)})
		}
		if f.publicExecute {
			out = append(out, Finding{Object: f.name,
				Message: "SECURITY DEFINER and executable by PUBLIC: every role runs it with its owner's rights",
				Fix:     fmt.Sprintf("REVOKE EXECUTE ON %s %s FROM PUBLIC, then GRANT EXECUTE to the roles that need it", kind, f.name)})
		}
	}
	return out
}

// checkViews follows view dependencies through other views: a view over a view over a tenant table
// reads the table with the outer view owner's rights all the same.
func checkViews(c *catalog) []Finding {
	isView := map[uint32]bool{}
	for _, v := range c.views {
		isView[v.oid] = true
	}
	// reach returns the first tenant table (by name) that rel reads, directly or through views.
	var reach func(rel uint32, seen map[uint32]bool) string
	reach = func(rel uint32, seen map[uint32]bool) string {
		if seen[rel] {
			return ""
		}
		seen[rel] = true
		if t := c.byOID[rel]; t != nil && t.tenant() {
			return t.name
		}
		if !isView[rel] {
			return ""
		}
		best := ""
		for _, dep := range c.viewDeps[rel] {
			if n := reach(dep, seen); n != "" && (best == "" || n < best) {
				best = n
			}
		}
		return best
	}
	var out []Finding
	for _, v := range c.views {
		if !v.checked || (v.invoker && !v.materialized) {
			continue
		}
		tbl := reach(v.oid, map[uint32]bool{})
		if tbl == "" {
			continue
		}
		if v.materialized {
			if !v.appSelect {
				// Not readable by the app role: no way to other tenants' rows (a view the app role
				// reads over it is reported itself).
				continue
			}
			out = append(out, Finding{Object: v.name,
				Message: fmt.Sprintf("materialized view over tenant table %s: it stores rows as its owner saw them, and row-level security does not apply to it", tbl),
				Fix:     fmt.Sprintf("DROP MATERIALIZED VIEW %s; use a view WITH (security_invoker = true) instead", v.name)})
			continue
		}
		out = append(out, Finding{Object: v.name,
			Message: fmt.Sprintf("view over tenant table %s without security_invoker: it reads with its owner's rights and policies, not the caller's", tbl),
			Fix:     fmt.Sprintf("ALTER VIEW %s SET (security_invoker = true)", v.name)})
	}
	return out
}
