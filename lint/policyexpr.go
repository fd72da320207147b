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

// calls reports whether e calls one of fns anywhere, sub-selects included.
func calls(e *nodetree.Node, fns map[uint32]bool) bool {
	found := false
	nodetree.Walk(e, func(n *nodetree.Node, _ []*nodetree.Node) bool {
		if n.Type == "FUNCEXPR" {
			if id, ok := oidOf(n, "funcid"); ok && fns[id] {
				found = true
			}
		}
		return !found
	})
	return found
}

// perRowCalls returns the calls of fns in e that are not inside a sub-select. Only a sub-select makes
// the planner evaluate the call once per statement (an InitPlan); a bare call runs for every row.
func perRowCalls(e *nodetree.Node, fns map[uint32]bool) []uint32 {
	var out []uint32
	nodetree.Walk(e, func(n *nodetree.Node, _ []*nodetree.Node) bool {
		switch n.Type {
		case "SUBLINK":
			return false
		case "FUNCEXPR":
			if id, ok := oidOf(n, "funcid"); ok && fns[id] {
				out = append(out, id)
			}
		}
		return true
	})
	return out
}

// refsColumn reports whether e reads column attnum of the policy's own table. The table is range table
// entry 1 of the expression; inside k nested sub-selects a reference to it carries varlevelsup k.
func refsColumn(e *nodetree.Node, attnum int16) bool {
	found := false
	nodetree.Walk(e, func(n *nodetree.Node, anc []*nodetree.Node) bool {
		if n.Type != "VAR" {
			return !found
		}
		depth := int64(0)
		for _, a := range anc {
			if a.Type == "QUERY" {
				depth++
			}
		}
		varno, _ := n.Int("varno")
		attno, _ := n.Int("varattno")
		up, _ := n.Int("varlevelsup")
		if varno == 1 && attno == int64(attnum) && up == depth {
			found = true
		}
		return !found
	})
	return found
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

// isCallOf reports whether e is exactly a call of fn without arguments, bare or as "(SELECT fn())".
func isCallOf(e *nodetree.Node, fn uint32) bool {
	switch e.Type {
	case "FUNCEXPR":
		id, ok := oidOf(e, "funcid")
		return ok && id == fn && e.IsNull("args")
	case "SUBLINK":
		if e.Token("subLinkType") != "4" { // EXPR_SUBLINK: a scalar sub-select
			return false
		}
		q := e.Child("subselect")
		if q == nil || q.Type != "QUERY" {
			return false
		}
		for _, f := range []string{"rtable", "cteList", "setOperations", "havingQual", "groupClause",
			"limitCount", "limitOffset", "distinctClause"} {
			if !q.IsNull(f) {
				return false
			}
		}
		if j := q.Child("jointree"); j != nil && (!j.IsNull("fromlist") || !j.IsNull("quals")) {
			return false
		}
		tl := q.Nodes("targetList")
		if len(tl) != 1 || tl[0].Child("expr") == nil {
			return false
		}
		return isCallOf(tl[0].Child("expr"), fn)
	}
	return false
}

// restricts reports whether the permissive policy expression e admits only rows of the verified
// tenant: an AND needs one restricting arm, an OR needs every arm to restrict, and any other expression
// must both read the tenant column and call the tenant function. It is a structural check, not a proof
// ("tenant_id <> (SELECT f())" passes); it catches the common mistakes: "true", an unverified setting
// in place of the function, "... OR true". allowElevated admits an arm that is exactly the elevation
// check, for the read-only elevation policies.
func (c *catalog) restricts(e *nodetree.Node, attnum int16, allowElevated bool) bool {
	if v, ok := boolConst(e); ok {
		return !v
	}
	if e.Type == "BOOLEXPR" {
		args := e.Nodes("args")
		switch e.Token("boolop") {
		case "and":
			for _, a := range args {
				if c.restricts(a, attnum, allowElevated) {
					return true
				}
			}
			return false
		case "or":
			for _, a := range args {
				if !c.restricts(a, attnum, allowElevated) {
					return false
				}
			}
			return len(args) > 0
		}
	}
	if allowElevated && c.elevated != 0 && isCallOf(e, c.elevated) {
		return true
	}
	return refsColumn(e, attnum) && calls(e, c.tenantFuncs)
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
