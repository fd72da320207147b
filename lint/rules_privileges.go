package lint

import (
	"fmt"
	"strings"
)

// Rules about privileges that row-level security does not govern (TS020), that arrive with objects
// created later (TS027, TS028), and about tables it cannot protect at all (TS029).

func checkUngovernedPrivileges(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		// An owner holds every privilege: TS010 reports the ownership.
		if !t.tenant() && !t.registry || t.kind == "f" || t.owner == c.app.oid {
			continue
		}
		var held []string
		for _, p := range []string{"TRUNCATE", "TRIGGER", "REFERENCES"} {
			if t.appPriv[p] {
				held = append(held, p)
			}
		}
		if len(held) == 0 {
			continue
		}
		out = append(out, Finding{Object: t.name,
			Message: fmt.Sprintf("%s holds %s, which row-level security does not govern: TRUNCATE empties the table for every tenant, a trigger of its own sees every tenant's new rows, a foreign key of its own checks other tenants' keys",
				c.app.name, strings.Join(held, ", ")),
			Fix: fmt.Sprintf("REVOKE %s ON %s FROM %s", strings.Join(held, ", "), t.name, c.app.name)})
	}
	return out
}

func checkDefaultPrivileges(c *catalog) []Finding {
	var out []Finding
	kinds := map[string]string{"r": "TABLES", "f": "FUNCTIONS", "n": "SCHEMAS"}
	for _, d := range c.defaultACLs {
		where, in := "every schema", ""
		if d.schema != "" {
			where, in = "schema "+pgIdent(d.schema), " IN SCHEMA "+pgIdent(d.schema)
		}
		object := fmt.Sprintf("default privileges of %s in %s", d.owner, where)
		privs := strings.Join(d.privileges, ", ")
		var why string
		switch d.objtype {
		case "r":
			why = "every table it creates there is granted at once, before row-level security is enabled or any policy written"
		case "f":
			why = "every function it creates there is callable at once, SECURITY DEFINER ones included"
		case "n":
			why = "every schema it creates is open to them at once"
		}
		out = append(out, Finding{Object: object,
			Message: fmt.Sprintf("%s receives %s on future %s of %s: %s", d.grantee, privs, strings.ToLower(kinds[d.objtype]), d.owner, why),
			Fix: fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s%s REVOKE %s ON %s FROM %s",
				d.owner, in, privs, kinds[d.objtype], d.grantee)})
	}
	return out
}

func checkCreatePrivileges(c *catalog) []Finding {
	var out []Finding
	for _, where := range c.creatable {
		out = append(out, Finding{Object: where,
			Message: fmt.Sprintf("%s may create objects in %s: objects it owns escape the policies (it can reference tenant tables from its own tables, shadow functions on another role's search_path, and own views and triggers)", c.app.name, where),
			Fix:     fmt.Sprintf("REVOKE CREATE ON %s FROM %s, PUBLIC", strings.ToUpper(where[:strings.IndexByte(where, ' ')])+where[strings.IndexByte(where, ' '):], c.app.name)})
	}
	return out
}

func checkForeignTables(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if t.kind != "f" || !t.tenant() {
			continue
		}
		reach := "no policy can ever guard it"
		if t.appAny() || len(t.publicPrivs) > 0 {
			reach = c.appReach(t, "every tenant's rows")
		}
		out = append(out, Finding{Object: t.name,
			Message: fmt.Sprintf("foreign table with the tenant column %s: PostgreSQL cannot apply row-level security to foreign tables, so %s", c.tenantColOf(t), reach),
			Fix:     fmt.Sprintf("REVOKE ALL ON %s FROM %s, PUBLIC, and reach it only through a function that filters by (SELECT %s); or keep the rows in an ordinary table", t.name, c.app.name, c.tenantCallOf(t))})
	}
	return out
}
