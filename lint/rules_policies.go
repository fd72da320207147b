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
				Fix:     fmt.Sprintf("ALTER POLICY %s ON %s WITH CHECK (%s)", p.name, t.name, c.condition())})
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

func checkPolicyRestricts(c *catalog) []Finding {
	var out []Finding
	for _, p := range c.policies {
		t := p.table
		if !t.tenant() || !p.permissive || !p.appliesToApp {
			continue
		}
		var problems, fixes []string
		for _, clause := range []struct {
			name          string
			e             *nodetree.Node
			allowElevated bool
		}{
			// The elevation read policies are "FOR SELECT USING ((SELECT tenantseal.elevated()))".
			{"USING", p.qual, p.cmd == "r"},
			{"WITH CHECK", p.check, false},
		} {
			if clause.e == nil || c.restricts(clause.e, t.tenantAttnum, clause.allowElevated) {
				continue
			}
			what := fmt.Sprintf("does not compare %s with %s in every branch", c.tenantCol, c.tenantCall)
			if v, ok := boolConst(clause.e); ok && v {
				what = "is always true"
			}
			problems = append(problems, clause.name+" "+what)
			fixes = append(fixes, fmt.Sprintf("%s (%s)", clause.name, c.condition()))
		}
		if len(problems) > 0 {
			out = append(out, Finding{Object: p.object(),
				Message: fmt.Sprintf("permissive FOR %s policy: %s: the app role reaches other tenants' rows through it",
					p.command(), strings.Join(problems, "; ")),
				Fix: fmt.Sprintf("ALTER POLICY %s ON %s %s, or DROP POLICY %s ON %s", p.name, t.name, strings.Join(fixes, " "), p.name, t.name)})
		}
	}
	return out
}

func checkPerRowCall(c *catalog) []Finding {
	verifiers := map[uint32]bool{}
	for id := range c.tenantFuncs {
		verifiers[id] = true
	}
	if c.elevated != 0 {
		verifiers[c.elevated] = true
	}
	var out []Finding
	for _, p := range c.policies {
		var names []string
		for _, e := range []*nodetree.Node{p.qual, p.check} {
			if e == nil {
				continue
			}
			for _, id := range perRowCalls(e, verifiers) {
				names = append(names, c.funcs[id].name)
			}
		}
		if len(names) == 0 {
			continue
		}
		slices.Sort(names)
		names = slices.Compact(names)
		out = append(out, Finding{Object: p.object(),
			Message: fmt.Sprintf("calls %s outside a sub-select: it verifies the signed tenant context once per row instead of once per statement",
				strings.Join(names, ", ")),
			Fix: fmt.Sprintf("write each call as (SELECT %s) in ALTER POLICY %s ON %s ...", names[0], p.name, p.table.name)})
	}
	return out
}

// checkLeakproof matters because a policy's clauses are not evaluated in a fixed order: a function
// beside the tenant comparison may run on other tenants' rows before the comparison rejects them, and
// a non-leakproof one can reveal its arguments in an error message.
func checkLeakproof(c *catalog) []Finding {
	allowed := func(id uint32) bool { return c.tenantFuncs[id] || (c.elevated != 0 && id == c.elevated) }
	var out []Finding
	for _, p := range c.policies {
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
