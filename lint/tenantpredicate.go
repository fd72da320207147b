package lint

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// The tenant predicate in a function body: the table's tenant column compared with the verified
// tenant. The verified tenant is a call of a verifying function (tenantseal.current_tenant(),
// tenantseal.current_tenant_key(), the tenant function's), a variable assigned from one, an argument
// that the body compares with one (an argument alone is whatever the caller passes), or in a trigger
// the tenant of the row that fired it, which the caller's policies admitted. Bodies are read as text,
// lower case: this is a heuristic that a comparison in a comment or in a statement on another table
// also satisfies. SQL-standard bodies are judged on their stored tree.

const (
	bodyIdent = `[a-z_][a-z0-9_$]*`
	// bodyName is an identifier, quoted or not.
	bodyName = `"?` + bodyIdent + `"?`
)

// verifierCallPattern matches a call of a function that returns t's verified tenant, qualified or not,
// with or without a cast.
func (c *catalog) verifierCallPattern(t *table) string {
	names := []string{"current_tenant", "current_tenant_key"}
	for id := range c.verifiers(t) {
		if g := c.funcByOID[id]; g != nil {
			names = append(names, regexp.QuoteMeta(g.short))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	return `(?:` + bodyName + `\s*\.\s*)?"?(?:` + strings.Join(names, "|") + `)"?\s*\(\s*\)(?:\s*::\s*[a-z_][a-z0-9_ ]*)?`
}

// verifiedVariables returns the variables body assigns a verified call to: "me uuid :=
// tenantseal.current_tenant()", "me := ...", "DEFAULT ..." and "SELECT ... INTO me".
func verifiedVariables(body, call string) []string {
	var out []string
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?:^|[^a-z0-9_$."])(` + bodyIdent + `)(?:\s+(?:constant\s+)?[a-z_][a-z0-9_.]*(?:\s*\([0-9, ]*\))?(?:\[\])?)?\s*(?::=|\bdefault\b)[^;]*?` + call),
		regexp.MustCompile(`\bselect\b[^;]*?` + call + `[^;]*?\binto\s+(?:strict\s+)?(` + bodyIdent + `)`),
	} {
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// Comparison operators for comparedWith: the tenant predicate selects by equality; a check of an
// argument may be written either way ("IF tenant <> current_tenant() THEN RAISE").
const (
	equalOp   = `\s*(?:=|\bin\s*\()\s*[(\s]*(?:select\s+)?`
	compareOp = `\s*(?:=|<>|!=|\bin\s*\(|\bis\s+(?:not\s+)?distinct\s+from\b)\s*[(\s]*(?:select\s+)?`
)

// comparedWith returns a pattern matching "left op right" either way round, left and right patterns.
func comparedWith(left, op, right string) string {
	return `(?:(?:^|[^a-z0-9_$])(?:` + left + `)` + op + `(?:` + right + `)|(?:` + right + `)[\s)]*` + op + `(?:` + left + `)(?:$|[^a-z0-9_$]))`
}

// tenantPredicate reports whether f's body compares t's tenant column with the verified tenant; when
// it does not, unverified names an argument it compares the column with instead ("" when none).
func (c *catalog) tenantPredicate(f *function, t *table) (found bool, unverified string) {
	attnum := keyAttnum(t)
	if f.sqlBody != nil {
		return c.treePredicate(f.sqlBody, attnum, c.verifiers(t)), ""
	}
	body := f.body()
	call := c.verifierCallPattern(t)
	verified := []string{call}
	for _, v := range verifiedVariables(body, call) {
		verified = append(verified, `\b`+regexp.QuoteMeta(v)+`\b`)
	}
	var args []string
	for i, a := range f.args {
		alts := `\$` + strconv.Itoa(i+1) + `\b`
		if a != "" {
			alts = `\b` + regexp.QuoteMeta(a) + `\b|` + alts
		}
		args = append(args, alts)
	}
	var unchecked []string
	for i, a := range args {
		if regexp.MustCompile(comparedWith(a, compareOp, strings.Join(verified, "|"))).MatchString(body) {
			verified = append(verified, a)
		} else if f.args[i] != "" {
			unchecked = append(unchecked, f.args[i])
		}
	}
	col := strings.ToLower(strings.Trim(c.columnName(t, attnum), `"`))
	column := `(?:` + bodyName + `\s*\.\s*)?"?` + regexp.QuoteMeta(col) + `"?`
	if f.trigger {
		verified = append(verified, `\b(?:new|old)\s*\.\s*"?`+regexp.QuoteMeta(col)+`\b`)
	}
	if regexp.MustCompile(comparedWith(column, equalOp, strings.Join(verified, "|"))).MatchString(body) {
		return true, ""
	}
	for _, a := range unchecked {
		if regexp.MustCompile(comparedWith(column, equalOp, `\b`+regexp.QuoteMeta(a)+`\b`)).MatchString(body) {
			return false, a
		}
	}
	return false, ""
}

// treePredicate reports whether an SQL-standard body holds "column = <verified call>" (either way
// round) for a column numbered attnum of any table it reads.
func (c *catalog) treePredicate(e *nodetree.Node, attnum int16, verifiers map[uint32]bool) bool {
	isColumn := func(n *nodetree.Node) bool {
		for n != nil && (n.Type == "RELABELTYPE" || n.Type == "COERCEVIAIO") {
			n = n.Child("arg")
		}
		if n == nil || n.Type != "VAR" {
			return false
		}
		attno, _ := n.Int("varattno")
		return attno == int64(attnum)
	}
	callsVerifier := func(n *nodetree.Node) bool {
		found := false
		nodetree.Walk(n, func(m *nodetree.Node, _ []*nodetree.Node) bool {
			if id, ok := oidOf(m, "funcid"); ok && m.Type == "FUNCEXPR" && verifiers[id] {
				found = true
			}
			return !found
		})
		return found
	}
	found := false
	nodetree.Walk(e, func(n *nodetree.Node, _ []*nodetree.Node) bool {
		id, _ := oidOf(n, "opno")
		if args := n.Nodes("args"); n.Type == "OPEXPR" && len(args) == 2 && c.ops[id].op == "=" {
			found = found || isColumn(args[0]) && callsVerifier(args[1]) || isColumn(args[1]) && callsVerifier(args[0])
		}
		return !found
	})
	return found
}
