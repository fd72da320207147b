package lint

import (
	"fmt"
	"slices"
	"strings"
)

// Rules about tenant tables themselves: row-level security switches, policy coverage, keys, indexes and
// grants.

var commands = []string{"SELECT", "INSERT", "UPDATE", "DELETE"}

// condition is the comparison every tenant policy should make.
func (c *catalog) condition() string {
	return fmt.Sprintf("%s = (SELECT %s)", c.tenantCol, c.tenantCall)
}

// createPolicy is the statement that gives the app role cmd on t for the current tenant only.
func (c *catalog) createPolicy(t *table, cmd string) string {
	name := "tenant_" + strings.ToLower(cmd)
	switch cmd {
	case "INSERT":
		return fmt.Sprintf("CREATE POLICY %s ON %s FOR INSERT TO %s WITH CHECK (%s)", name, t.name, c.app.name, c.condition())
	case "UPDATE":
		return fmt.Sprintf("CREATE POLICY %s ON %s FOR UPDATE TO %s USING (%s) WITH CHECK (%s)", name, t.name, c.app.name, c.condition(), c.condition())
	}
	return fmt.Sprintf("CREATE POLICY %s ON %s FOR %s TO %s USING (%s)", name, t.name, cmd, c.app.name, c.condition())
}

// protectHint is the shortest correct way to put t under tenant policies.
func (c *catalog) protectHint(t *table) string {
	if c.opts.TenantColumn == DefaultTenantColumn && c.tenantCall == "tenantseal.current_tenant()" {
		return fmt.Sprintf("SELECT tenantseal.protect_table('%s')", strings.ReplaceAll(t.name, "'", "''"))
	}
	var stmts []string
	for _, cmd := range commands {
		stmts = append(stmts, c.createPolicy(t, cmd))
	}
	return strings.Join(stmts, "; ")
}

func checkRLSEnabled(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if t.rlsApplies() && !t.rls {
			out = append(out, Finding{Object: t.name,
				Message: "row-level security is disabled: the app role reads and writes every tenant's rows",
				Fix:     fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY", t.name)})
		}
	}
	return out
}

func checkRLSForced(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if t.rlsApplies() && t.rls && !t.force {
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
			covered := slices.ContainsFunc(c.policies, func(p *policy) bool {
				return p.table == t && p.permissive && p.appliesToApp && (p.cmd == "*" || p.command() == cmd)
			})
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

func checkTenantIndex(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if !t.rlsApplies() {
			continue
		}
		led := slices.ContainsFunc(c.indexes, func(ix index) bool {
			return ix.table == t.oid && ix.valid && !ix.partial && len(ix.keys) > 0 && ix.keys[0] == t.tenantAttnum
		})
		if !led {
			out = append(out, Finding{Object: t.name,
				Message: fmt.Sprintf("no index leads with %s: every query filtered by the tenant policy reads the whole table", c.tenantCol),
				Fix:     fmt.Sprintf("CREATE INDEX ON %s (%s), or put %s first in the primary key", t.name, c.tenantCol, c.tenantCol)})
		}
	}
	return out
}

func checkUniqueKeys(c *catalog) []Finding {
	var out []Finding
	for _, ix := range c.indexes {
		t := c.byOID[ix.table]
		// An index attached to a partitioned index is reported once, on the parent.
		if !ix.unique || ix.attached || t == nil || !t.tenant() || slices.Contains(ix.keys, t.tenantAttnum) {
			continue
		}
		// An expression key needs its own parentheses in CREATE INDEX.
		cols := []string{c.tenantCol}
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
				kind, strings.Join(ix.keyDefs, ", "), c.tenantCol),
			Fix: fix})
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
		fix := fmt.Sprintf("make the key map %s to %s: FOREIGN KEY (%s, ...) REFERENCES %s (%s, ...), against a unique key of %s that starts with %s",
			c.tenantCol, c.tenantCol, c.tenantCol, to.name, c.tenantCol, to.name, c.tenantCol)
		if !slices.Contains(fk.fromKeys, from.tenantAttnum) && !slices.Contains(fk.toKeys, to.tenantAttnum) {
			fix = fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s, ADD CONSTRAINT %s FOREIGN KEY (%s, %s) REFERENCES %s (%s, %s)",
				from.name, fk.name, fk.name, c.tenantCol, strings.Join(fk.fromColumns, ", "), to.name, c.tenantCol, strings.Join(fk.toColumns, ", "))
		}
		out = append(out, Finding{Object: fk.name + " on " + from.name,
			Message: fmt.Sprintf("foreign key (%s) REFERENCES %s (%s) does not pair %s with %s: a row can point at another tenant's row",
				strings.Join(fk.fromColumns, ", "), to.name, strings.Join(fk.toColumns, ", "), c.tenantCol, c.tenantCol),
			Fix: fix})
	}
	return out
}

func checkPublicGrants(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if t.tenant() && len(t.publicPrivs) > 0 {
			out = append(out, Finding{Object: t.name,
				Message: fmt.Sprintf("PUBLIC holds %s: every role, present and future, may use the table", strings.Join(t.publicPrivs, ", ")),
				Fix:     fmt.Sprintf("REVOKE ALL ON %s FROM PUBLIC", t.name)})
		}
	}
	return out
}

func checkGlobalWrites(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if t.tenant() || slices.Contains(c.opts.GlobalTables, t.raw) || slices.Contains(c.opts.GlobalTables, t.name) {
			continue
		}
		var writes []string
		for _, p := range []string{"INSERT", "UPDATE", "DELETE", "TRUNCATE"} {
			if t.appPriv[p] {
				writes = append(writes, p)
			}
		}
		if len(writes) == 0 {
			continue
		}
		out = append(out, Finding{Object: t.name,
			Message: fmt.Sprintf("has no %s column, yet %s may %s it: one tenant's writes reach every tenant",
				c.tenantCol, c.app.name, strings.Join(writes, ", ")),
			Fix: fmt.Sprintf("REVOKE %s ON %s FROM %s; or add %s and protect it; or, for shared data the app must write, list it in the global tables",
				strings.Join(writes, ", "), t.name, c.app.name, c.tenantCol)})
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
