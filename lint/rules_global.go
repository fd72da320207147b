package lint

import (
	"fmt"
	"slices"
	"strings"
)

// Rules about tables without a tenant column: shared tables the app role may use (TS015), the
// product's own tables held to the product's expectations, and the tenant registry (TS019).

// productTables says what the app role may do with each of the product's tables that has no tenant
// column, and why anything more is a hole. A product table not listed here may not be used at all.
var productTables = map[string]struct {
	allowed []string // privileges the product grants the app role
	why     string
}{
	"tenantseal.context_keys": {nil, "it holds the signing keys of the tenant context: whoever reads them signs a context for any tenant"},
	"tenantseal.settings":     {nil, "it decides whether unsigned tenant contexts are accepted: whoever writes it names any tenant without a signature"},
	"tenantseal.audit_head":   {nil, "it is the audit chain's head: writing it breaks or forks the chain"},
	"tenantseal.kek_canary":   {[]string{"SELECT"}, "the library only reads it to tell a wrong key-encryption key at startup"},
	"tenantseal.key_settings": {[]string{"SELECT"}, "the library only reads how long it may cache opened keysets"},
	"tenantseal.tenant_tables": {[]string{"SELECT"},
		"the library only reads each table's tenant column; writing it changes which column the repositories filter by"},
	"tenantseal.retention_policies": {nil, "it decides when deleted tenants' keysets are shredded: whoever writes it keeps a tenant's data past its policy, or shreds it early"},
	"tenantseal.retention_rules":    {nil, "it decides which rows the retention job deletes: whoever writes it keeps data past its policy, or has other data deleted"},
	"tenantseal.tenant_governance":  {nil, "it names each tenant's region and retention policy: whoever writes it changes what is kept of a tenant, and the residency on record"},
	"tenantseal.encrypted_columns": {[]string{"SELECT"},
		"the library only reads the registry of encrypted columns; writing it changes what re-encryption and key retirement walk"},
}

var tablePrivileges = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"}

func checkGlobalTables(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		// An owner holds every privilege: TS010 reports the ownership.
		if t.tenant() || t.registry || t.owner == c.app.oid {
			continue
		}
		var held []string
		for _, p := range tablePrivileges {
			if t.appPriv[p] {
				held = append(held, p)
			}
		}
		if t.internal {
			expect, known := productTables[t.raw]
			extra := slices.DeleteFunc(held, func(p string) bool { return slices.Contains(expect.allowed, p) })
			if len(extra) == 0 {
				continue
			}
			why := expect.why
			if !known {
				why = "the product grants the app role nothing on it"
			}
			out = append(out, Finding{Object: t.name,
				Message: fmt.Sprintf("%s may %s tenantseal's own table %s: %s", c.app.name, strings.Join(extra, ", "), t.name, why),
				Fix:     fmt.Sprintf("REVOKE %s ON %s FROM %s", strings.Join(extra, ", "), t.name, c.app.name)})
			continue
		}
		if len(held) == 0 || slices.Contains(c.opts.GlobalTables, t.raw) || slices.Contains(c.opts.GlobalTables, t.name) {
			continue
		}
		reach := "every tenant reads all its rows"
		switch {
		case !t.appPriv["SELECT"]:
			reach = "one tenant's writes reach every tenant"
		case len(held) > 1:
			reach = "every tenant reads all its rows, and one tenant's writes reach every tenant"
		}
		hint := ""
		if col := lookalike(t.columns, c.opts.TenantColumn); col != "" {
			hint = fmt.Sprintf(" (its column %s looks like a misspelt %s: then it is a tenant table without protection)", pgIdent(col), t.tenantCol)
		} else if col := c.tenantColumnOfOthers(t); col != "" {
			hint = fmt.Sprintf(" (its column %s is the tenant column of other tables: then it is a tenant table nobody protected or recorded)", pgIdent(col))
		}
		out = append(out, Finding{Object: t.name,
			Message: fmt.Sprintf("has no %s column, yet %s may %s it: %s%s", t.tenantCol, c.app.name, strings.Join(held, ", "), reach, hint),
			Fix: fmt.Sprintf("REVOKE %s ON %s FROM %s; or add %s and protect it; or, for data every tenant shares, list it as a global table",
				strings.Join(held, ", "), t.name, c.app.name, t.tenantCol)})
	}
	return out
}

// tenantColumnOfOthers returns a column of t that is the tenant column of another table of the user's
// (not a registry, whose key is often just "id"), or "".
func (c *catalog) tenantColumnOfOthers(t *table) string {
	for _, o := range c.tables {
		if o == t || o.internal || o.registry || !o.tenant() {
			continue
		}
		if name := o.columns[slices.Index(o.attnums, o.tenantAttnum)]; slices.Contains(t.columns, name) {
			return name
		}
	}
	return ""
}

// lookalike returns a column of cols that is not want but spelt nearly like it ("tenantid",
// "tennant_id", "tenant_uuid"), or "".
func lookalike(cols []string, want string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "") }
	for _, col := range cols {
		if col == want {
			continue
		}
		if norm(col) == norm(want) || editDistance(col, want) <= 2 && len(want) > 3 {
			return col
		}
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// checkRegistry judges the tenant registry when its key is not the tenant column (then the tenant
// table rules apply to it instead): if the app role may use it, row-level security must be on and every
// permissive policy for the app role must admit the own row only.
func checkRegistry(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if t.registry && !t.tenant() && t.appAny() {
			out = append(out, c.registryFindings(t)...)
		}
	}
	return out
}

func (c *catalog) registryFindings(t *table) []Finding {
	if t.key == 0 {
		return []Finding{{Object: t.name,
			Message: "the tenant registry has no single-column primary key to compare with the verified tenant",
			Fix:     fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (id)", t.name)}}
	}
	if !t.rls {
		return []Finding{{Object: t.name,
			Message: "row-level security is disabled on the tenant registry: " + c.appReach(t, "every tenant's registry row (names, status)"),
			Fix: fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY; CREATE POLICY tenants_select ON %s FOR SELECT TO %s USING (%s = (SELECT %s))",
				t.name, t.name, c.app.name, c.columnName(t, t.key), c.tenantCallOf(t))}}
	}
	var out []Finding
	for _, p := range c.policies {
		if p.table != t || !p.permissive || !p.appliesToApp {
			continue
		}
		problems, fixes := c.policyLeaks(p, t.key, false)
		if len(problems) > 0 {
			out = append(out, Finding{Object: p.object(),
				Message: fmt.Sprintf("permissive FOR %s policy on the tenant registry: %s: the app role reaches other tenants' registry rows through it",
					p.command(), strings.Join(problems, "; ")),
				Fix: fmt.Sprintf("ALTER POLICY %s ON %s %s", p.name, t.name, strings.Join(fixes, " "))})
		}
	}
	return out
}
