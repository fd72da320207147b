package lint

import (
	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// Policies are judged by what they mean, not by their shape: each expression is evaluated symbolically,
// in SQL's three-valued logic, on probe rows. A probe row belongs to tenant A, to tenant B or (for a
// nullable tenant column) to nobody; the session has no tenant context, tenant A's context, or an
// elevation. Everything the evaluator does not model (other columns, other functions, sub-selects that
// read tables) may take any value, so a result is the set of values the expression can have: a policy
// leaks when "true" is among them for a row it must not admit. The over-approximation errs towards
// reporting, never towards silence: "tenant_id = coalesce((SELECT f()), tenant_id)" (true without a
// context), "tenant_id <> (SELECT f())", an EXISTS that never ties the row's tenant to the context and
// "tenant_id IS NOT DISTINCT FROM (SELECT f())" on a nullable column all admit a forbidden probe row.
// The verified tenant is what a verifying function returns, through casts that keep a value's identity:
// "org_id = (SELECT tenantseal.current_tenant_key()::bigint)" is this tenant's rows only, as
// "tenant_id = (SELECT tenantseal.current_tenant())" is; a length-limiting cast (varchar(8)) is not.

// atom is a symbolic scalar: the id of tenant A, of tenant B, NULL, or some other value.
type atom uint8

const (
	atomA atom = 1 << iota
	atomB
	atomNull
	atomOther
)

// vals is a set of atoms; anything is every atom.
type vals uint8

const anything = vals(atomA | atomB | atomNull | atomOther)

// nonNull is what a constant may be: any value, one of the tenants' ids included.
const nonNull = vals(atomA | atomB | atomOther)

// truth is a set of the three truth values.
type truth uint8

const (
	isTrue truth = 1 << iota
	isFalse
	isNull
	unknown = isTrue | isFalse | isNull
)

func (t truth) may(v truth) bool { return t&v != 0 }

// scenario is one probe: the session's context and the row the policy is asked about.
type scenario struct {
	ctx      atom // the verified tenant: atomA, or atomNull without a context (and under elevation)
	elevated bool
	row      atom // the probe row's tenant
}

type evaluator struct {
	c         *catalog
	attnum    int16           // the policy's tenant column (the registry's key for the registry)
	verifiers map[uint32]bool // functions that return the verified tenant
	s         scenario
}

func each3(a, b truth, f func(x, y truth) truth) truth {
	var out truth
	for _, x := range []truth{isTrue, isFalse, isNull} {
		if !a.may(x) {
			continue
		}
		for _, y := range []truth{isTrue, isFalse, isNull} {
			if b.may(y) {
				out |= f(x, y)
			}
		}
	}
	return out
}

func and3(a, b truth) truth {
	return each3(a, b, func(x, y truth) truth {
		switch {
		case x == isFalse || y == isFalse:
			return isFalse
		case x == isNull || y == isNull:
			return isNull
		}
		return isTrue
	})
}

func or3(a, b truth) truth {
	return each3(a, b, func(x, y truth) truth {
		switch {
		case x == isTrue || y == isTrue:
			return isTrue
		case x == isNull || y == isNull:
			return isNull
		}
		return isFalse
	})
}

func not3(a truth) truth {
	var out truth
	if a.may(isTrue) {
		out |= isFalse
	}
	if a.may(isFalse) {
		out |= isTrue
	}
	return out | a&isNull
}

// pairwise combines every atom of l with every atom of r through f.
func pairwise(l, r vals, f func(a, b atom) truth) truth {
	var out truth
	for _, a := range []atom{atomA, atomB, atomNull, atomOther} {
		for _, b := range []atom{atomA, atomB, atomNull, atomOther} {
			if l&vals(a) != 0 && r&vals(b) != 0 {
				out |= f(a, b)
			}
		}
	}
	return out
}

// equal compares two sets of atoms with "=": NULL makes NULL, two different tenants or a tenant and an
// other value are unequal, two other values may be either.
func equal(l, r vals) truth {
	return pairwise(l, r, func(a, b atom) truth {
		switch {
		case a == atomNull || b == atomNull:
			return isNull
		case a == atomOther && b == atomOther:
			return isTrue | isFalse
		case a == b:
			return isTrue
		}
		return isFalse
	})
}

// distinct is "l IS DISTINCT FROM r": never NULL.
func distinct(l, r vals) truth {
	return pairwise(l, r, func(a, b atom) truth {
		switch {
		case a == atomOther && b == atomOther:
			return isTrue | isFalse
		case a == b:
			return isFalse
		}
		return isTrue
	})
}

// opaque is the result of a strict operator the evaluator does not model: NULL in, NULL out.
func opaque(args ...vals) truth {
	out := isTrue | isFalse
	for _, a := range args {
		if a == vals(atomNull) {
			return isNull
		}
		if a&vals(atomNull) != 0 {
			out |= isNull
		}
	}
	return out
}

// simpleSelect returns the one target expression of "(SELECT expr)" without FROM, WHERE or anything
// else, or nil.
func simpleSelect(sublink *nodetree.Node) *nodetree.Node {
	q := sublink.Child("subselect")
	if q == nil || q.Type != "QUERY" {
		return nil
	}
	for _, f := range []string{"rtable", "cteList", "setOperations", "havingQual", "groupClause",
		"limitCount", "limitOffset", "distinctClause"} {
		if !q.IsNull(f) {
			return nil
		}
	}
	if j := q.Child("jointree"); j != nil && (!j.IsNull("fromlist") || !j.IsNull("quals")) {
		return nil
	}
	tl := q.Nodes("targetList")
	if len(tl) != 1 {
		return nil
	}
	return tl[0].Child("expr")
}

// scalar evaluates e as a value; depth counts the sub-selects around it (a reference to the policy's
// row inside k of them carries varlevelsup k).
func (ev *evaluator) scalar(e *nodetree.Node, depth int64) vals {
	if e == nil {
		return anything
	}
	switch e.Type {
	case "VAR":
		varno, _ := e.Int("varno")
		attno, _ := e.Int("varattno")
		up, _ := e.Int("varlevelsup")
		if varno == 1 && up == depth && attno == int64(ev.attnum) {
			return vals(ev.s.row)
		}
	case "CONST":
		if e.Token("constisnull") == "true" {
			return vals(atomNull)
		}
		return nonNull
	case "RELABELTYPE", "COERCEVIAIO", "COLLATEEXPR":
		// A cast keeps a value's identity (and NULL stays NULL).
		return ev.scalar(e.Child("arg"), depth)
	case "FUNCEXPR":
		id, _ := oidOf(e, "funcid")
		if ev.verifiers[id] {
			return vals(ev.s.ctx)
		}
		if f := e.Token("funcformat"); (f == "1" || f == "2") && len(e.Nodes("args")) == 1 {
			return ev.scalar(e.Nodes("args")[0], depth)
		}
	case "SUBLINK":
		if e.Token("subLinkType") == "4" {
			if t := simpleSelect(e); t != nil {
				return ev.scalar(t, depth+1)
			}
		}
	case "COALESCEEXPR":
		var out vals
		for _, a := range e.Nodes("args") {
			v := ev.scalar(a, depth)
			out |= v &^ vals(atomNull)
			if v&vals(atomNull) == 0 {
				return out
			}
		}
		return out | vals(atomNull)
	case "NULLIFEXPR":
		if args := e.Nodes("args"); len(args) == 2 {
			return ev.scalar(args[0], depth) | vals(atomNull)
		}
	case "CASEEXPR":
		out := vals(atomNull)
		if d := e.Child("defresult"); d != nil {
			out = ev.scalar(d, depth)
		}
		for _, w := range e.Nodes("args") {
			out |= ev.scalar(w.Child("result"), depth)
		}
		return out
	}
	return anything
}

// truth evaluates e as a condition.
func (ev *evaluator) truth(e *nodetree.Node, depth int64) truth {
	if e == nil {
		return unknown
	}
	if v, ok := boolConst(e); ok {
		if e.Token("constisnull") == "true" {
			return isNull
		}
		if v {
			return isTrue
		}
		return isFalse
	}
	switch e.Type {
	case "BOOLEXPR":
		args := e.Nodes("args")
		switch e.Token("boolop") {
		case "and":
			out := isTrue
			for _, a := range args {
				out = and3(out, ev.truth(a, depth))
			}
			return out
		case "or":
			out := isFalse
			for _, a := range args {
				out = or3(out, ev.truth(a, depth))
			}
			return out
		case "not":
			if len(args) == 1 {
				return not3(ev.truth(args[0], depth))
			}
		}
	case "OPEXPR":
		args := e.Nodes("args")
		if len(args) != 2 {
			break
		}
		l, r := ev.scalar(args[0], depth), ev.scalar(args[1], depth)
		id, _ := oidOf(e, "opno")
		switch ev.c.ops[id].op {
		case "=":
			return equal(l, r)
		case "<>":
			return not3(equal(l, r))
		}
		return opaque(l, r)
	case "DISTINCTEXPR":
		if args := e.Nodes("args"); len(args) == 2 {
			return distinct(ev.scalar(args[0], depth), ev.scalar(args[1], depth))
		}
	case "SCALARARRAYOPEXPR":
		return ev.arrayOp(e, depth)
	case "NULLTEST":
		v := ev.scalar(e.Child("arg"), depth)
		var out truth
		if v&vals(atomNull) != 0 {
			out |= isTrue
		}
		if v&^vals(atomNull) != 0 {
			out |= isFalse
		}
		if e.Token("nulltesttype") == "1" { // IS NOT NULL
			out = not3(out)
		}
		return out
	case "BOOLEANTEST":
		return booleanTest(ev.truth(e.Child("arg"), depth), e.Token("booltesttype"))
	case "FUNCEXPR":
		if id, _ := oidOf(e, "funcid"); id != 0 && id == ev.c.elevated {
			if ev.s.elevated {
				return isTrue
			}
			return isFalse
		}
	case "SUBLINK":
		switch e.Token("subLinkType") {
		case "0": // EXISTS
			return isTrue | isFalse
		case "4":
			if t := simpleSelect(e); t != nil {
				return ev.truth(t, depth+1)
			}
		}
	case "CASEEXPR":
		out := isNull
		if d := e.Child("defresult"); d != nil {
			out = ev.truth(d, depth)
		}
		for _, w := range e.Nodes("args") {
			out |= ev.truth(w.Child("result"), depth)
		}
		return out
	case "COALESCEEXPR":
		out := truth(0)
		for _, a := range e.Nodes("args") {
			v := ev.truth(a, depth)
			out |= v &^ isNull
			if !v.may(isNull) {
				return out
			}
		}
		return out | isNull
	}
	return unknown
}

// arrayOp is "x op ANY (ARRAY[...])" or "x op ALL (...)": an OR or AND of the comparisons when the
// array is written out, unknown otherwise.
func (ev *evaluator) arrayOp(e *nodetree.Node, depth int64) truth {
	args := e.Nodes("args")
	id, _ := oidOf(e, "opno")
	op := ev.c.ops[id].op
	if len(args) != 2 || args[1].Type != "ARRAYEXPR" || op != "=" && op != "<>" {
		return unknown
	}
	l := ev.scalar(args[0], depth)
	useOr := e.Token("useOr") == "true"
	out := isTrue
	if useOr {
		out = isFalse
	}
	for _, el := range args[1].Nodes("elements") {
		t := equal(l, ev.scalar(el, depth))
		if op == "<>" {
			t = not3(t)
		}
		if useOr {
			out = or3(out, t)
		} else {
			out = and3(out, t)
		}
	}
	return out
}

func booleanTest(v truth, kind string) truth {
	var out truth
	test := func(x truth) bool {
		switch kind {
		case "0":
			return x == isTrue
		case "1":
			return x != isTrue
		case "2":
			return x == isFalse
		case "3":
			return x != isFalse
		case "4":
			return x == isNull
		case "5":
			return x != isNull
		}
		return false
	}
	for _, x := range []truth{isTrue, isFalse, isNull} {
		if v.may(x) {
			if test(x) {
				out |= isTrue
			} else {
				out |= isFalse
			}
		}
	}
	if out == 0 {
		return unknown
	}
	return out
}

// leak names a way a policy expression admits a row it must not.
type leak struct {
	scenario
	what string
}

// probes are the scenarios a tenant policy must refuse: no context, another tenant's row, a row of
// nobody's (only when the column can be NULL) and, for clauses that let rows be written, an elevated
// session (elevation is read-only).
func probes(nullable, write bool) []leak {
	out := []leak{
		{scenario{ctx: atomNull, row: atomA}, "with no tenant context it admits rows"},
		{scenario{ctx: atomA, row: atomB}, "with one tenant's context it admits another tenant's rows"},
	}
	if nullable {
		out = append(out,
			leak{scenario{ctx: atomNull, row: atomNull}, "with no tenant context it admits rows whose tenant is NULL"},
			leak{scenario{ctx: atomA, row: atomNull}, "it admits rows whose tenant is NULL to every tenant"})
	}
	if write {
		out = append(out, leak{scenario{ctx: atomNull, elevated: true, row: atomA}, "it lets an elevated, read-only session write"})
	}
	return out
}

// admits returns the first probe under which every one of conds (ANDed: a permissive policy and the
// restrictive ones beside it) may be true, or ok false when none is.
func (c *catalog) admits(conds []*nodetree.Node, attnum int16, verifiers map[uint32]bool, nullable, write bool) (leak, bool) {
	for _, p := range probes(nullable, write) {
		ev := &evaluator{c: c, attnum: attnum, verifiers: verifiers, s: p.scenario}
		t := isTrue
		for _, e := range conds {
			t = and3(t, ev.truth(e, 0))
		}
		if t.may(isTrue) {
			return p, true
		}
	}
	return leak{}, false
}
