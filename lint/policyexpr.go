package lint

import (
	"strconv"

	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// Policy expressions are judged on their stored node trees (pg_policy.polqual and polwithcheck), not on
// the text pg_get_expr deparses: the tree says which function oid is called and whether the call sits
// inside a sub-select, where a text search would be fooled by string literals, casts, schema-qualified
// look-alikes and "(SELECT 1 WHERE x = f())".

// oidOf returns the integer field name of n as an oid.
func oidOf(n *nodetree.Node, name string) (uint32, bool) {
	v, err := strconv.ParseUint(n.Token(name), 10, 32)
	return uint32(v), err == nil
}

// perRowCalls returns the calls of fns in e that are not inside a sub-select. Only a sub-select makes
// the planner evaluate the call once per statement (an InitPlan); a bare call runs for every row.
//
// With tenantCol, the attnum of a Citus-distributed table's tenant column, a call compared directly
// with that column (tenant_col = f(), or = f()::type) is not one: Citus refuses sub-selects in the
// policies of distributed tables, and the workers' planner makes that comparison an index condition
// or a one-time filter, evaluated once per scan.
func perRowCalls(e *nodetree.Node, fns map[uint32]bool, tenantCol int16) []uint32 {
	var out []uint32
	nodetree.Walk(e, func(n *nodetree.Node, anc []*nodetree.Node) bool {
		switch n.Type {
		case "SUBLINK":
			return false
		case "FUNCEXPR":
			if id, ok := oidOf(n, "funcid"); ok && fns[id] && !(tenantCol != 0 && comparedWithColumn(n, anc, tenantCol)) {
				out = append(out, id)
			}
		}
		return true
	})
	return out
}

// comparedWithColumn reports whether call, under its ancestors anc, is one side of an operator whose
// other side is the row's column attnum, through casts only.
func comparedWithColumn(call *nodetree.Node, anc []*nodetree.Node, attnum int16) bool {
	side := call
	for i := len(anc) - 1; i >= 0; i-- {
		a := anc[i]
		switch a.Type {
		case "FUNCEXPR", "RELABELTYPE", "COERCEVIAIO":
			if a.Type == "FUNCEXPR" && !isCast(a) {
				return false
			}
			side = a
			continue
		case "OPEXPR":
			args := a.Nodes("args")
			if len(args) != 2 {
				return false
			}
			other := args[0]
			if other == side {
				other = args[1]
			}
			varno, _ := other.Int("varno")
			att, _ := other.Int("varattno")
			up, _ := other.Int("varlevelsup")
			return other.Type == "VAR" && varno == 1 && up == 0 && att == int64(attnum)
		}
		return false
	}
	return false
}

// isCast reports whether a FUNCEXPR is an explicit or implicit cast (funcformat 1 or 2).
func isCast(n *nodetree.Node) bool {
	f, _ := n.Int("funcformat")
	return f == 1 || f == 2
}

// walkVars calls fn for every VAR of e that refers to the policy's own row: range table entry 1 of the
// expression, which inside k nested sub-selects carries varlevelsup k. fn returns false to stop.
func walkVars(e *nodetree.Node, fn func(v *nodetree.Node) bool) {
	stop := false
	nodetree.Walk(e, func(n *nodetree.Node, anc []*nodetree.Node) bool {
		if stop || n.Type != "VAR" {
			return !stop
		}
		depth := int64(0)
		for _, a := range anc {
			if a.Type == "QUERY" {
				depth++
			}
		}
		varno, _ := n.Int("varno")
		if up, _ := n.Int("varlevelsup"); varno == 1 && up == depth {
			stop = !fn(n)
		}
		return !stop
	})
}

// boolConst returns the value of a boolean constant; ok is false for anything else. NULL reads as false:
// as a policy it grants nothing.
func boolConst(e *nodetree.Node) (value, ok bool) {
	if e.Type != "CONST" || e.Token("consttype") != "16" {
		return false, false
	}
	if e.Token("constisnull") == "true" {
		return false, true
	}
	v, _ := e.Get("constvalue") // "1 [ 1 0 0 0 0 0 0 0 ]": length, then the datum's bytes
	for _, b := range v.Tokens[min(2, len(v.Tokens)):] {
		if b != "0" && b != "[" && b != "]" {
			return true, true
		}
	}
	return false, true
}

// callees returns the functions and the operators that e calls, sub-selects included.
func callees(e *nodetree.Node) (funcs, ops []uint32) {
	nodetree.Walk(e, func(n *nodetree.Node, _ []*nodetree.Node) bool {
		field := ""
		switch n.Type {
		case "FUNCEXPR":
			field = "funcid"
		case "AGGREF":
			field = "aggfnoid"
		case "WINDOWFUNC":
			field = "winfnoid"
		case "OPEXPR", "DISTINCTEXPR", "NULLIFEXPR", "SCALARARRAYOPEXPR":
			// opno, not opfuncid: the parser always sets opno, and pg_operator.oprcode names the function.
			if id, ok := oidOf(n, "opno"); ok && id != 0 {
				ops = append(ops, id)
			}
			return true
		default:
			return true
		}
		if id, ok := oidOf(n, field); ok && id != 0 {
			funcs = append(funcs, id)
		}
		return true
	})
	return funcs, ops
}

// refsRow reports whether e reads any column of the policy's own row (at any sub-select depth).
func refsRow(e *nodetree.Node) bool {
	found := false
	walkVars(e, func(*nodetree.Node) bool {
		found = true
		return false
	})
	return found
}
