package lint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// Rules about tenant tables themselves: row-level security switches, policy coverage, keys, indexes and
// grants.

var commands = []string{"SELECT", "INSERT", "UPDATE", "DELETE"}

// condition is the comparison every tenant policy of t should make.
func (c *catalog) condition(t *table) string {
	return fmt.Sprintf("%s = (SELECT %s)", c.tenantColOf(t), c.tenantCallOf(t))
}

// createPolicy is the statement that gives the app role cmd on t for the current tenant only.
func (c *catalog) createPolicy(t *table, cmd string) string {
	name := "tenant_" + strings.ToLower(cmd)
	switch cmd {
	case "INSERT":
		return fmt.Sprintf("CREATE POLICY %s ON %s FOR INSERT TO %s WITH CHECK (%s)", name, t.name, c.app.name, c.condition(t))
	case "UPDATE":
		return fmt.Sprintf("CREATE POLICY %s ON %s FOR UPDATE TO %s USING (%s) WITH CHECK (%s)", name, t.name, c.app.name, c.condition(t), c.condition(t))
	}
	return fmt.Sprintf("CREATE POLICY %s ON %s FOR %s TO %s USING (%s)", name, t.name, cmd, c.app.name, c.condition(t))
}

// protectHint is the shortest correct way to put t under tenant policies.
func (c *catalog) protectHint(t *table) string {
	literal := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	call := c.tenantCallOf(t)
	switch {
	case t.tenantCol == DefaultTenantColumn && t.tenantType == "uuid" && call == productTenantFunction:
		return fmt.Sprintf("SELECT tenantseal.protect_table(%s)", literal(t.name))
	case c.protectColumn && (call == productTenantFunction || strings.HasPrefix(call, productKeyFunction)):
		return fmt.Sprintf("SELECT tenantseal.protect_table(%s, tenant_column => %s)", literal(t.name), literal(t.tenantName))
	}
	stmts := []string{fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY", t.name)}
	for _, cmd := range commands {
		stmts = append(stmts, c.createPolicy(t, cmd))
	}
	return strings.Join(stmts, "; ")
}

func checkRLSEnabled(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if t.rlsApplies() && !t.rls {
			fix := fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY", t.name)
			if t.policiesCount == 0 {
				fix = c.protectHint(t)
			}
			out = append(out, Finding{Object: t.name,
				Message: "row-level security is disabled: " + c.appReach(t, "every tenant's rows"),
				Fix:     fix})
		}
	}
	return out
}

// appReach says what the app role can do with rows of t: "the app role reads every tenant's rows",
// "... reads and writes ...", or, without privileges, what any role granted access would.
func (c *catalog) appReach(t *table, rows string) string {
	reads, writes := t.appPriv["SELECT"], t.appWrites()
	switch {
	case reads && writes:
		return "the app role reads and writes " + rows
	case reads:
		return "the app role reads " + rows
	case writes:
		return "the app role writes " + rows
	}
	return "every role granted access to it, now or later, reaches " + rows + " (the app role holds no privilege on it yet)"
}

func checkRLSForced(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		// The product's own tables are administered by the owner through its SECURITY DEFINER functions:
		// not forcing them is by design (TS021 judges what those functions reach).
		if t.rlsApplies() && t.rls && !t.force && !t.internal {
			out = append(out, Finding{Object: t.name,
				Message: "row-level security is enabled but not forced: the table owner, and everything that runs with its rights (SECURITY DEFINER functions, views), skips the policies",
				Fix:     fmt.Sprintf("ALTER TABLE %s FORCE ROW LEVEL SECURITY", t.name)})
		}
	}
	return out
}

// checkCommandCoverage looks only at commands the app role holds the privilege for (without it the
// statement fails loudly) and only at tables with some policy (TS016 reports tables with none). Only
// permissive policies count: restrictive ones can narrow access but never grant it.
func checkCommandCoverage(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if !t.rlsApplies() || t.policiesCount == 0 {
			continue
		}
		var missing, fixes []string
		for _, cmd := range commands {
			if !t.appPriv[cmd] {
				continue
			}
			covered := len(c.appPolicies(t, cmd, true)) > 0
			if !covered {
				missing = append(missing, cmd)
				fixes = append(fixes, c.createPolicy(t, cmd))
			}
		}
		if len(missing) > 0 {
			out = append(out, Finding{Object: t.name,
				Message: fmt.Sprintf("no permissive policy for %s covers %s, which it is granted: such statements silently find no rows",
					c.app.name, strings.Join(missing, ", ")),
				Fix: strings.Join(fixes, "; ") + fmt.Sprintf(" (or REVOKE %s ON %s FROM %s)", strings.Join(missing, ", "), t.name, c.app.name)})
		}
	}
	return out
}

// checkTenantIndex reports every index of a tenant table that does not lead with the tenant column, and
// tables without any index that does. Unique keys without the tenant column at all are TS008's.
func checkTenantIndex(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		// Without a privilege that scans rows, the app role runs no query the planner could serve.
		scans := t.appPriv["SELECT"] || t.appPriv["UPDATE"] || t.appPriv["DELETE"]
		if !t.rlsApplies() || t.registry || !scans {
			continue
		}
		led := false
		for _, ix := range c.indexes {
			if ix.table != t.oid || !ix.valid {
				continue
			}
			if len(ix.keys) > 0 && ix.keys[0] == t.tenantAttnum {
				led = led || !ix.partial
				continue
			}
			if c.spansTenants(t, ix) || c.unconfinedExclusion(t, ix) || ix.partial && onlyNullTenant(ix.pred, t.tenantAttnum) {
				continue // TS008's, or on rows of no tenant only
			}
			cols := []string{c.tenantColOf(t)}
			for i, d := range ix.keyDefs {
				if i < len(ix.keys) && ix.keys[i] != t.tenantAttnum {
					cols = append(cols, d)
				}
			}
			fix := fmt.Sprintf("DROP INDEX %s; CREATE INDEX %s ON %s (%s) (for GIN or GiST indexes through btree_gin or btree_gist)",
				ix.qualified, ix.name, t.name, strings.Join(cols, ", "))
			switch {
			case ix.primary && ix.constraint != "":
				fix = fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, ADD PRIMARY KEY (%s)", t.name, ix.constraint, strings.Join(cols, ", "))
			case ix.unique && ix.constraint != "":
				fix = fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, ADD CONSTRAINT %s UNIQUE (%s)", t.name, ix.constraint, ix.constraint, strings.Join(cols, ", "))
			}
			out = append(out, Finding{Object: ix.name + " on " + t.name,
				Message: fmt.Sprintf("index (%s) does not lead with %s: a query of the app role whose condition matches it visits other tenants' rows before the policy filters them, and EXPLAIN (ANALYZE) counts them (Rows Removed by Filter)",
					strings.Join(ix.keyDefs, ", "), c.tenantColOf(t)),
				Fix: fix})
		}
		if !led {
			out = append(out, Finding{Object: t.name,
				Message: fmt.Sprintf("no index leads with %s: every query filtered by the tenant policy reads the whole table, and any other index lets the app role visit other tenants' rows", c.tenantColOf(t)),
				Fix:     fmt.Sprintf("CREATE INDEX ON %s (%s), or put %s first in the primary key", t.name, c.tenantColOf(t), c.tenantColOf(t))})
		}
	}
	return out
}

// tenantColOf is t's tenant column, quoted (see assignTenantColumns): the product's own tables
// always use tenant_id.
func (c *catalog) tenantColOf(t *table) string { return t.tenantCol }

// spansTenants reports whether TS008 reports ix: a unique index of a tenant table without the tenant
// column, on a table whose uniqueness the app role can probe.
func (c *catalog) spansTenants(t *table, ix index) bool {
	if !ix.unique || ix.attached || !t.tenant() || t.registry || slices.Contains(ix.keys, t.tenantAttnum) {
		return false
	}
	if ix.partial && onlyNullTenant(ix.pred, t.tenantAttnum) {
		return false // it constrains rows of no tenant only
	}
	// The product's own unique keys are probed only by writes, which the app role may not make.
	return !t.internal || t.appPriv["INSERT"] || t.appPriv["UPDATE"]
}

// unconfinedExclusion reports whether ix backs an exclusion constraint that TS008 reports.
func (c *catalog) unconfinedExclusion(t *table, ix index) bool {
	for _, x := range c.excls {
		if x.table == t.oid && x.name == ix.constraint {
			return !exclusionConfined(x, t.tenantAttnum)
		}
	}
	return false
}

// exclusionConfined reports whether x compares the tenant column with =, so that it is checked within
// one tenant only.
func exclusionConfined(x exclusion, attnum int16) bool {
	for i, k := range x.keys {
		if k == attnum && i < len(x.ops) && x.ops[i] == "=" {
			return true
		}
	}
	return false
}

// onlyNullTenant reports whether the index predicate pred holds only for rows whose tenant column is
// NULL: "tenant_id IS NULL", alone or as one arm of an AND.
func onlyNullTenant(pred *nodetree.Node, attnum int16) bool {
	if pred == nil {
		return false
	}
	if pred.Type == "BOOLEXPR" && pred.Token("boolop") == "and" {
		return slices.ContainsFunc(pred.Nodes("args"), func(a *nodetree.Node) bool { return onlyNullTenant(a, attnum) })
	}
	if pred.Type != "NULLTEST" || pred.Token("nulltesttype") != "0" {
		return false
	}
	v := pred.Child("arg")
	for v != nil && v.Type == "RELABELTYPE" {
		v = v.Child("arg")
	}
	if v == nil || v.Type != "VAR" {
		return false
	}
	attno, _ := v.Int("varattno")
	return attno == int64(attnum)
}

func checkUniqueKeys(c *catalog) []Finding {
	var out []Finding
	for _, ix := range c.indexes {
		t := c.byOID[ix.table]
		// An index attached to a partitioned index is reported once, on the parent.
		if t == nil || !c.spansTenants(t, ix) {
			continue
		}
		// An expression key needs its own parentheses in CREATE INDEX.
		cols := []string{c.tenantColOf(t)}
		for i, d := range ix.keyDefs {
			if i < len(ix.keys) && ix.keys[i] == 0 {
				d = "(" + d + ")"
			}
			cols = append(cols, d)
		}
		newCols := strings.Join(cols, ", ")
		kind, name, fix := "unique index", ix.name, fmt.Sprintf("DROP INDEX %s; CREATE UNIQUE INDEX %s ON %s (%s)", ix.qualified, ix.name, t.name, newCols)
		if ix.partial {
			fix += " WHERE <the same predicate>"
		}
		switch {
		case ix.primary && ix.constraint != "":
			kind, name = "primary key", ix.constraint
			fix = fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, ADD PRIMARY KEY (%s)", t.name, ix.constraint, newCols)
		case ix.constraint != "":
			kind, name = "unique constraint", ix.constraint
			fix = fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, ADD CONSTRAINT %s UNIQUE (%s)", t.name, ix.constraint, ix.constraint, newCols)
		}
		out = append(out, Finding{Object: name + " on " + t.name,
			Message: fmt.Sprintf("%s (%s) does not include %s: uniqueness spans tenants, so a duplicate-key error tells one tenant what another stores, and foreign keys cannot pair the tenant column",
				kind, strings.Join(ix.keyDefs, ", "), c.tenantColOf(t)),
			Fix: fix})
	}
	// An exclusion constraint is a uniqueness of its own: "no two rows overlap" across tenants says as
	// much as a duplicate key. Only "tenant_id WITH =" confines it to one tenant.
	for _, x := range c.excls {
		t := c.byOID[x.table]
		if t == nil || !t.tenant() || t.registry {
			continue
		}
		if exclusionConfined(x, t.tenantAttnum) {
			continue
		}
		var parts []string
		for i, col := range x.columns {
			if i < len(x.ops) {
				parts = append(parts, col+" WITH "+x.ops[i])
			}
		}
		out = append(out, Finding{Object: x.name + " on " + t.name,
			Message: fmt.Sprintf("exclusion constraint (%s) does not compare %s with =: it is checked across tenants, so a conflict error tells one tenant what another stores",
				strings.Join(parts, ", "), c.tenantColOf(t)),
			Fix: fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, ADD CONSTRAINT %s EXCLUDE USING gist (%s WITH =, %s) (tenant_id WITH = needs btree_gist)",
				t.name, x.name, x.name, c.tenantColOf(t), strings.Join(parts, ", "))})
	}
	return out
}

func checkForeignKeys(c *catalog) []Finding {
	var out []Finding
	for _, fk := range c.fks {
		from, to := c.byOID[fk.from], c.byOID[fk.to]
		if from == nil || to == nil || !from.tenant() || !to.tenant() {
			continue
		}
		paired := false
		for i := range fk.fromKeys {
			if i < len(fk.toKeys) && fk.fromKeys[i] == from.tenantAttnum && fk.toKeys[i] == to.tenantAttnum {
				paired = true
			}
		}
		if paired {
			continue
		}
		fromCol, toCol := c.tenantColOf(from), c.tenantColOf(to)
		fix := fmt.Sprintf("make the key map %s to %s: FOREIGN KEY (%s, ...) REFERENCES %s (%s, ...), against a unique key of %s that starts with %s",
			fromCol, toCol, fromCol, to.name, toCol, to.name, toCol)
		if !slices.Contains(fk.fromKeys, from.tenantAttnum) && !slices.Contains(fk.toKeys, to.tenantAttnum) {
			fix = fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, ADD CONSTRAINT %s FOREIGN KEY (%s, %s) REFERENCES %s (%s, %s)",
				from.name, fk.name, fk.name, fromCol, strings.Join(fk.fromColumns, ", "), to.name, toCol, strings.Join(fk.toColumns, ", "))
		}
		out = append(out, Finding{Object: fk.name + " on " + from.name,
			Message: fmt.Sprintf("foreign key (%s) REFERENCES %s (%s) does not pair %s with %s: a row can point at another tenant's row",
				strings.Join(fk.fromColumns, ", "), to.name, strings.Join(fk.toColumns, ", "), fromCol, toCol),
			Fix: fix})
	}
	return out
}

func checkPublicGrants(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if (t.tenant() || t.registry) && len(t.publicPrivs) > 0 {
			out = append(out, Finding{Object: t.name,
				Message: fmt.Sprintf("PUBLIC holds %s: every role, present and future, may use the table", strings.Join(t.publicPrivs, ", ")),
				Fix:     fmt.Sprintf("REVOKE ALL ON %s FROM PUBLIC", t.name)})
		}
	}
	return out
}

func checkNoPolicies(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if t.rlsApplies() && t.rls && t.policiesCount == 0 {
			out = append(out, Finding{Object: t.name,
				Message: "row-level security is on but no policy exists: the app role silently sees no rows and every write fails",
				Fix:     c.protectHint(t)})
		}
	}
	return out
}
