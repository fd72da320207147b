package lint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// Rules about policy expressions. TS004 and TS005 judge the policies of tenant tables that apply to
// the app role; TS006 and TS014 are about how any policy in a checked schema is evaluated, whoever it is
// for.

func checkWithCheck(c *catalog) []Finding {
	var out []Finding
	for _, p := range c.policies {
		t := p.table
		if !t.tenant() || !p.appliesToApp || p.check != nil {
			continue
		}
		switch {
		case p.cmd == "a" && t.appPriv["INSERT"]:
			out = append(out, Finding{Object: p.object(),
				Message: "FOR INSERT policy has no WITH CHECK: it admits no row, and the intended check is nowhere written down",
				Fix:     fmt.Sprintf("ALTER POLICY %s ON %s WITH CHECK (%s)", p.name, t.name, c.condition(t))})
		case p.qual != nil && (p.cmd == "w" && t.appPriv["UPDATE"] || p.cmd == "*" && (t.appPriv["INSERT"] || t.appPriv["UPDATE"])):
			// PostgreSQL checks new rows against USING then; flagged anyway so that a later change of USING
			// cannot silently change what may be written.
			out = append(out, Finding{Object: p.object(),
				Message: fmt.Sprintf("FOR %s policy has USING but no WITH CHECK: new rows are checked only through the implicit fallback to USING", p.command()),
				Fix:     fmt.Sprintf("ALTER POLICY %s ON %s WITH CHECK (%s)", p.name, t.name, p.qualSQL)})
		}
	}
	return out
}

// appPolicies returns the policies of t for cmd that apply to the app role, permissive or restrictive.
func (c *catalog) appPolicies(t *table, cmd string, permissive bool) []*policy {
	var out []*policy
	for _, p := range c.policies {
		if p.table == t && p.appliesToApp && p.permissive == permissive && p.covers(cmd) {
			out = append(out, p)
		}
	}
	return out
}

// usingOf and checkOf return the clause PostgreSQL applies to rows read (USING) and to rows written
// (WITH CHECK, which falls back to USING for UPDATE and ALL policies); nil when there is none.
func usingOf(p *policy) *nodetree.Node { return p.qual }

func checkOf(p *policy) *nodetree.Node {
	if p.check == nil && (p.cmd == "w" || p.cmd == "*") {
		return p.qual
	}
	return p.check
}

// clauseLeak evaluates one clause of the permissive policy p, ANDed with the same clause of the
// restrictive policies for each command p covers, and returns the first way it admits a row it must not.
func (c *catalog) clauseLeak(p *policy, e *nodetree.Node, write bool, attnum int16, nullable bool) (leak, bool) {
	cmds := []string{"SELECT", "INSERT", "UPDATE", "DELETE"}
	if p.cmd != "*" {
		cmds = []string{p.command()}
	}
	for _, cmd := range cmds {
		if cmd == "INSERT" && !write || cmd == "SELECT" && write {
			continue // INSERT has no USING, SELECT no WITH CHECK
		}
		conds := []*nodetree.Node{e}
		for _, r := range c.appPolicies(p.table, cmd, false) {
			clause := usingOf(r)
			if write {
				clause = checkOf(r)
			}
			if clause != nil {
				conds = append(conds, clause)
			}
		}
		// Reading rows to UPDATE or DELETE them is writing: an elevated session must not get them.
		if l, ok := c.admits(conds, attnum, c.verifiers(p.table), nullable, write || cmd != "SELECT"); ok {
			return l, true
		}
	}
	return leak{}, false
}

// policyLeaks returns what is wrong with the permissive policy p, judged with attnum as the tenant
// column: one problem per clause that admits a forbidden probe row.
func (c *catalog) policyLeaks(p *policy, attnum int16, nullable bool) (problems, fixes []string) {
	cond := fmt.Sprintf("%s = (SELECT %s)", c.columnName(p.table, attnum), c.tenantCallOf(p.table))
	for _, clause := range []struct {
		name  string
		e     *nodetree.Node
		write bool
	}{
		{"USING", p.qual, false},
		{"WITH CHECK", p.check, true},
	} {
		if clause.e == nil {
			continue
		}
		l, ok := c.clauseLeak(p, clause.e, clause.write, attnum, nullable)
		if !ok {
			continue
		}
		what := l.what
		if v, isConst := boolConst(clause.e); isConst && v {
			what = "is always true"
		}
		problems = append(problems, clause.name+" "+what)
		fixes = append(fixes, fmt.Sprintf("%s (%s)", clause.name, cond))
	}
	return problems, fixes
}

// tenantCallOf is the verifying call for t's policies, for fix hints: with tenantseal's verifier, its
// key cast to the column's type for tenant columns that are not uuid.
func (c *catalog) tenantCallOf(t *table) string {
	if t.internal {
		return productTenantFunction
	}
	typ := ""
	if i := slices.Index(t.attnums, keyAttnum(t)); i >= 0 {
		typ = t.types[i]
	}
	if c.tenantFuncs[c.productKey] && typ != "" && typ != "uuid" {
		return productKeyFunction + "::" + typ
	}
	return c.tenantCall
}

func checkPolicyRestricts(c *catalog) []Finding {
	var out []Finding
	for _, p := range c.policies {
		t := p.table
		if !t.tenant() || !p.permissive || !p.appliesToApp {
			continue
		}
		problems, fixes := c.policyLeaks(p, t.tenantAttnum, !t.tenantNotNull)
		if len(problems) > 0 {
			out = append(out, Finding{Object: p.object(),
				Message: fmt.Sprintf("permissive FOR %s policy: %s: the app role reaches other tenants' rows through it",
					p.command(), strings.Join(problems, "; ")),
				Fix: fmt.Sprintf("ALTER POLICY %s ON %s %s, or DROP POLICY %s ON %s", p.name, t.name, strings.Join(fixes, " "), p.name, t.name)})
		}
	}
	return out
}

// checkIndexablePredicate requires, for every command the app role may run that reads rows, an
// effective predicate with a conjunct "tenant_id = <no reference to the row>" whose operator is
// leakproof: an index condition. Restrictive policies are ANDed to the permissive ones, so their
// conjuncts count whatever the permissive ones are; a single permissive policy contributes its own.
func checkIndexablePredicate(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		attnum := keyAttnum(t)
		if !t.registry && !t.rlsApplies() {
			continue
		}
		if attnum == 0 || !t.rls {
			continue
		}
		byReason := map[string][]string{}
		var reasons []string
		for _, cmd := range []string{"SELECT", "UPDATE", "DELETE"} {
			perm := c.appPolicies(t, cmd, true)
			if !t.appPriv[cmd] || len(perm) == 0 {
				continue
			}
			var conds []*nodetree.Node
			for _, r := range c.appPolicies(t, cmd, false) {
				conds = append(conds, r.qual)
			}
			if len(perm) == 1 {
				conds = append(conds, perm[0].qual)
			}
			if slices.ContainsFunc(conds, func(e *nodetree.Node) bool { return c.hasIndexCondition(e, attnum) }) {
				continue
			}
			// A policy that admits other tenants' rows is TS005's (TS019's on the registry): fixing it
			// comes first.
			leaky := slices.ContainsFunc(perm, func(p *policy) bool {
				problems, _ := c.policyLeaks(p, attnum, !t.tenantNotNull && t.tenant())
				return len(problems) > 0
			})
			if leaky {
				continue
			}
			reason := "its tenant comparison is not an index condition: it must read " + c.columnName(t, attnum) + " = <an expression that does not read the row>, with a leakproof = and no cast or function around the column"
			if len(perm) > 1 {
				var names []string
				for _, p := range perm {
					names = append(names, p.name)
				}
				reason = fmt.Sprintf("permissive policies %s are ORed by PostgreSQL, and an OR is no index condition", strings.Join(names, ", "))
			}
			if _, seen := byReason[reason]; !seen {
				reasons = append(reasons, reason)
			}
			byReason[reason] = append(byReason[reason], cmd)
		}
		for _, reason := range reasons {
			out = append(out, Finding{Object: t.name,
				Message: fmt.Sprintf("the app role's %s predicate is applied as a filter after the attacker's own index conditions, so other tenants' rows are visited and EXPLAIN (ANALYZE) counts them: %s",
					strings.Join(byReason[reason], ", "), reason),
				Fix: fmt.Sprintf("keep one permissive policy per command for %s, USING (%s = (SELECT %s)); put other conditions in restrictive policies",
					c.app.name, c.columnName(t, attnum), c.tenantCallOf(t))})
		}
	}
	return out
}

// columnName is the quoted name of t's column attnum (the tenant column, or the registry's key).
func (c *catalog) columnName(t *table, attnum int16) string {
	if attnum == t.tenantAttnum {
		return c.tenantColOf(t)
	}
	if i := slices.Index(t.attnums, attnum); i >= 0 {
		return pgIdent(t.columns[i])
	}
	return "id"
}

// pgIdent quotes name unless it is a plain lower-case identifier.
func pgIdent(name string) string {
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '$')) {
			return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		}
	}
	return name
}

// hasIndexCondition reports whether a top-level conjunct of e is "column = expr" (either way round)
// with a leakproof operator and an expr that does not read the row.
func (c *catalog) hasIndexCondition(e *nodetree.Node, attnum int16) bool {
	if e == nil {
		return false
	}
	if e.Type == "BOOLEXPR" && e.Token("boolop") == "and" {
		return slices.ContainsFunc(e.Nodes("args"), func(a *nodetree.Node) bool { return c.hasIndexCondition(a, attnum) })
	}
	if e.Type != "OPEXPR" && e.Type != "SCALARARRAYOPEXPR" {
		return false
	}
	args := e.Nodes("args")
	id, _ := oidOf(e, "opno")
	op := c.ops[id]
	if len(args) != 2 || op.op != "=" || !c.funcs[op.code].leakproof {
		return false
	}
	isColumn := func(n *nodetree.Node) bool {
		for n != nil && n.Type == "RELABELTYPE" {
			n = n.Child("arg")
		}
		if n == nil || n.Type != "VAR" {
			return false
		}
		varno, _ := n.Int("varno")
		attno, _ := n.Int("varattno")
		up, _ := n.Int("varlevelsup")
		return varno == 1 && up == 0 && attno == int64(attnum)
	}
	readsRow := func(n *nodetree.Node) bool { return refsRow(n) }
	if isColumn(args[0]) && !readsRow(args[1]) {
		return true
	}
	return e.Type == "OPEXPR" && isColumn(args[1]) && !readsRow(args[0])
}

// checkNullableTenant reports tenant columns without NOT NULL. The product's audit log records events
// of sessions without a tenant, and the app role cannot write it: its tables are exempt.
func checkNullableTenant(c *catalog) []Finding {
	var out []Finding
	for _, t := range c.tables {
		if !t.tenant() || t.tenantNotNull || t.internal || t.partition {
			continue
		}
		out = append(out, Finding{Object: t.name,
			Message: fmt.Sprintf("%s may be NULL: a row without a tenant escapes composite foreign keys and unique keys, and policies written with IS NOT DISTINCT FROM or coalesce admit it without any context", c.tenantColOf(t)),
			Fix:     fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL (after giving the rows without a tenant one, or moving them out)", t.name, c.tenantColOf(t))})
	}
	return out
}

func checkPerRowCall(c *catalog) []Finding {
	var out []Finding
	for _, p := range c.policies {
		verifiers := map[uint32]bool{}
		for id := range c.verifiers(p.table) {
			verifiers[id] = true
		}
		if c.elevated != 0 {
			verifiers[c.elevated] = true
		}
		var names []string
		for _, e := range []*nodetree.Node{p.qual, p.check} {
			if e == nil {
				continue
			}
			var direct int16 // on a distributed table: the tenant column, which a call may be compared with
			if p.table.distributed {
				direct = p.table.tenantAttnum
			}
			for _, id := range perRowCalls(e, verifiers, direct) {
				names = append(names, c.funcs[id].name)
			}
		}
		if len(names) == 0 {
			continue
		}
		slices.Sort(names)
		names = slices.Compact(names)
		fix := fmt.Sprintf("write each call as (SELECT %s) in ALTER POLICY %s ON %s ...", names[0], p.name, p.table.name)
		if p.table.distributed {
			fix = fmt.Sprintf("compare the tenant column with the call itself, %s = %s, and nothing else with it (Citus refuses sub-selects in the policies of distributed tables): tenantseal.protect_table writes that form",
				p.table.tenantCol, names[0])
		}
		out = append(out, Finding{Object: p.object(),
			Message: fmt.Sprintf("calls %s outside a sub-select: it verifies the signed tenant context once per row instead of once per statement",
				strings.Join(names, ", ")),
			Fix: fix})
	}
	return out
}

// checkLeakproof matters because a policy's clauses are not evaluated in a fixed order: a function
// beside the tenant comparison may run on other tenants' rows before the comparison rejects them, and
// a non-leakproof one can reveal its arguments in an error message.
func checkLeakproof(c *catalog) []Finding {
	var out []Finding
	for _, p := range c.policies {
		allowed := func(id uint32) bool { return c.verifiers(p.table)[id] || (c.elevated != 0 && id == c.elevated) }
		var leaky []string
		for _, e := range []*nodetree.Node{p.qual, p.check} {
			if e == nil {
				continue
			}
			funcs, ops := callees(e)
			for _, id := range funcs {
				if f, ok := c.funcs[id]; ok && !f.leakproof && !allowed(id) {
					leaky = append(leaky, "function "+f.name)
				}
			}
			for _, id := range ops {
				op, ok := c.ops[id]
				if f, fok := c.funcs[op.code]; ok && fok && !f.leakproof && !allowed(op.code) {
					leaky = append(leaky, fmt.Sprintf("operator %s (%s)", op.name, f.name))
				}
			}
		}
		if len(leaky) == 0 {
			continue
		}
		slices.Sort(leaky)
		leaky = slices.Compact(leaky)
		out = append(out, Finding{Object: p.object(),
			Message: fmt.Sprintf("uses %s, not leakproof: it may run on other tenants' rows before the tenant comparison rejects them, and its errors can reveal their values",
				strings.Join(leaky, ", ")),
			Fix: "use only leakproof functions and operators (pg_proc.proleakproof) in policies besides the tenant comparison, or move the logic into the sub-select"})
	}
	return out
}
