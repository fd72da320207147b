package lint

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// Rules about function bodies: what SECURITY DEFINER and trigger functions reach (TS021, TS022, TS023,
// TS025), functions marked LEAKPROOF (TS024) and the tenant function itself (TS026). Bodies are read as
// text, except SQL-standard ones, whose stored tree is exact: these rules are heuristics, and say so.

func (f *function) kind() string {
	if f.procedure {
		return "PROCEDURE"
	}
	return "FUNCTION"
}

// body is the function's source in lower case with comments and string literals' contents kept: names
// in dynamic SQL strings count too.
func (f *function) body() string { return strings.ToLower(f.src) }

// appPaths returns how the app role gets f to run: by EXECUTE, through a trigger on a table it may
// change with a command that fires the trigger, or through a view it reads; empty when it cannot.
func (c *catalog) appPaths(f *function) []string {
	var out []string
	if f.appExecute && !f.trigger {
		out = append(out, "the app role may EXECUTE it")
	}
	for _, tg := range c.triggers {
		t := c.byOID[tg.table]
		if tg.fn != f.oid || t == nil {
			continue
		}
		if fired := slices.DeleteFunc(slices.Clone(tg.events), func(e string) bool { return !t.appPriv[e] }); len(fired) > 0 {
			out = append(out, fmt.Sprintf("trigger %s fires on %s at %s, which the app role may run", tg.name, t.name, strings.Join(fired, ", ")))
		}
	}
	for _, v := range c.views {
		if v.appSelect && slices.Contains(c.viewFuncs[v.oid], f.oid) {
			out = append(out, fmt.Sprintf("view %s, which the app role reads, calls it", v.name))
		}
	}
	return out
}

// mentions reports whether body names table t: "schema.name", or the bare name, quoted or not, but
// not the same name in another schema.
func mentions(body string, t *table) bool { return len(mentionsAt(body, t)) > 0 }

// mentionsAt returns where body names table t, as mentions finds it.
func mentionsAt(body string, t *table) []int {
	name := regexp.QuoteMeta(strings.ToLower(t.relname))
	schema := regexp.QuoteMeta(strings.ToLower(t.schema))
	re := regexp.MustCompile(`(^|[^a-z0-9_$"])("?` + schema + `"?\s*\.\s*)?"?` + name + `"?($|[^a-z0-9_$"])`)
	var out []int
	for _, m := range re.FindAllStringSubmatchIndex(body, -1) {
		if m[4] < 0 && m[2] < m[3] && body[m[2]:m[3]] == "." {
			continue // "other.name"
		}
		out = append(out, m[3])
	}
	return out
}

var (
	insertIntoEnd = regexp.MustCompile(`\binsert\s+into\s*$`)
	doUpdate      = regexp.MustCompile(`\bdo\s+update\b`)
)

// onlyInserts reports whether every mention of t in body is the target of an INSERT, none with ON
// CONFLICT DO UPDATE: such a statement writes new rows and reads or changes none of the existing ones.
func onlyInserts(body string, t *table) bool {
	at := mentionsAt(body, t)
	for _, i := range at {
		if !insertIntoEnd.MatchString(body[:i]) {
			return false
		}
	}
	return len(at) > 0 && !doUpdate.MatchString(body)
}

// sqlBodyTables returns the relations an SQL-standard body reads or writes.
func sqlBodyTables(e *nodetree.Node) []uint32 {
	var out []uint32
	nodetree.Walk(e, func(n *nodetree.Node, _ []*nodetree.Node) bool {
		if n.Type == "RANGETBLENTRY" {
			if id, ok := oidOf(n, "relid"); ok && id != 0 {
				out = append(out, id)
			}
		}
		return true
	})
	return out
}

// ownerReach says why f's owner reaches every tenant's rows of t, or "" when the policies confine it.
func (c *catalog) ownerReach(f *function, t *table) string {
	switch {
	case f.owner.super:
		return fmt.Sprintf("its owner %s is a superuser", f.owner.name)
	case f.owner.bypass:
		return fmt.Sprintf("its owner %s has BYPASSRLS", f.owner.name)
	case !t.rls:
		return fmt.Sprintf("%s has no row-level security", t.name)
	case f.owner.oid == t.owner && !t.force:
		return fmt.Sprintf("its owner %s owns %s, whose row-level security is not forced", f.owner.name, t.name)
	}
	attnum := keyAttnum(t)
	privs := c.privsOf[f.owner.oid]
	for _, p := range c.policies {
		if p.table != t || !p.permissive || !slices.ContainsFunc(p.roles, func(r uint32) bool { return privs[r] }) {
			continue
		}
		for _, e := range []*nodetree.Node{usingOf(p), checkOf(p)} {
			if e == nil {
				continue
			}
			if _, leaks := c.admits([]*nodetree.Node{e}, attnum, c.verifiers(t), !t.tenantNotNull, false); leaks {
				return fmt.Sprintf("policy %s admits its owner %s to every tenant's rows", p.object(), f.owner.name)
			}
		}
	}
	return ""
}

func checkDefinerReach(c *catalog) []Finding {
	var out []Finding
	for _, f := range c.functions {
		// The verifying functions define the tenant predicate: they read the registry and the keys to
		// decide which tenant the context names (TS026 judges a tenant function of the user's). The
		// login lookup runs before any tenant is verified, by design (bindingLookup).
		if !f.secdef || c.productVerifier(f.oid) || f.oid == c.elevated || (f.oid != 0 && f.oid == c.lookup) || c.tenantFuncs[f.oid] {
			continue
		}
		paths := c.appPaths(f)
		if len(paths) == 0 {
			continue
		}
		var reached []string
		var first *table
		for _, t := range c.tables {
			if !t.tenant() && !t.registry {
				continue
			}
			named := mentions(f.body(), t)
			if f.sqlBody != nil {
				named = slices.Contains(sqlBodyTables(f.sqlBody), t.oid)
			}
			if !named {
				continue
			}
			// A trigger that only inserts into t reads and changes none of its existing rows; the heuristic
			// takes the new rows to be made of the one that fired it, which the caller's policies admitted.
			found, arg := c.tenantPredicate(f, t)
			if found || f.trigger && f.sqlBody == nil && onlyInserts(f.body(), t) {
				continue
			}
			if why := c.ownerReach(f, t); why != "" {
				if arg != "" {
					why += fmt.Sprintf("; it compares %s with its argument %s, which the caller chooses, and never checks that against the verified tenant", c.columnName(t, keyAttnum(t)), pgIdent(arg))
				}
				reached = append(reached, fmt.Sprintf("%s (%s)", t.name, why))
				if first == nil {
					first = t
				}
			}
		}
		if len(reached) == 0 {
			continue
		}
		out = append(out, Finding{Object: f.name,
			Message: fmt.Sprintf("SECURITY DEFINER and reachable by the app role (%s): its body uses %s without the tenant predicate, with rights that reach every tenant's rows",
				strings.Join(paths, "; "), strings.Join(reached, ", ")),
			Fix: fmt.Sprintf("filter by (SELECT %s) in the body, or ALTER %s %s SECURITY INVOKER, or REVOKE EXECUTE ON %s %s FROM %s",
				c.tenantCallOf(first), f.kind(), f.name, f.kind(), f.name, c.app.name)})
	}
	return out
}

var (
	// safeOperand is a concatenated piece that cannot carry SQL of the caller's.
	safeOperand = regexp.MustCompile(`(?is)^\s*('([^']|'')*'|quote_(ident|literal|nullable)\s*\(.*\))\s*$`)
	formatS     = regexp.MustCompile(`(?is)^format\s*\(\s*'([^']|'')*%s`)
	executeWord = regexp.MustCompile(`(?i)^execute\s`)
	ddlExecute  = regexp.MustCompile(`(?i)^execute\s+(function|procedure)\b`)
)

// executeCommands returns the command expressions of plpgsql's EXECUTE statements in src: the text
// after EXECUTE up to INTO, USING or the end of the statement, outside string literals, comments and
// parentheses.
func executeCommands(src string) []string {
	var out []string
	inWord := func(i int) bool {
		if i < 0 || i >= len(src) {
			return false
		}
		ch := src[i]
		return ch == '_' || ch == '$' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9'
	}
	// skip returns the index after the literal or comment starting at i, or i when there is none.
	skip := func(i int) int {
		switch {
		case src[i] == '\'':
			for j := i + 1; j < len(src); j++ {
				if src[j] == '\'' {
					if j+1 < len(src) && src[j+1] == '\'' {
						j++
						continue
					}
					return j + 1
				}
			}
			return len(src)
		case strings.HasPrefix(src[i:], "--"):
			if k := strings.IndexByte(src[i:], '\n'); k >= 0 {
				return i + k + 1
			}
			return len(src)
		case strings.HasPrefix(src[i:], "/*"):
			if k := strings.Index(src[i+2:], "*/"); k >= 0 {
				return i + 2 + k + 2
			}
			return len(src)
		}
		return i
	}
	for i := 0; i < len(src); {
		if j := skip(i); j != i {
			i = j
			continue
		}
		if inWord(i-1) || !executeWord.MatchString(src[i:]) || ddlExecute.MatchString(src[i:]) {
			i++
			continue
		}
		start := i + len("execute")
		depth, j := 0, start
	scan:
		for j < len(src) {
			if k := skip(j); k != j {
				j = k
				continue
			}
			switch ch := src[j]; {
			case ch == '(':
				depth++
			case ch == ')':
				depth--
			case ch == ';' && depth == 0:
				break scan
			case depth == 0 && !inWord(j-1) && (hasWordAt(src, j, "into") || hasWordAt(src, j, "using")):
				break scan
			}
			j++
		}
		out = append(out, strings.TrimSpace(src[start:j]))
		i = j
	}
	return out
}

func hasWordAt(s string, i int, word string) bool {
	end := i + len(word)
	if end > len(s) || !strings.EqualFold(s[i:end], word) {
		return false
	}
	return end == len(s) || !(s[end] == '_' || s[end] >= 'a' && s[end] <= 'z' || s[end] >= 'A' && s[end] <= 'Z' || s[end] >= '0' && s[end] <= '9')
}

// unsafeDynamicSQL returns the first EXECUTE command of src that is built from pieces that are not
// quoted (concatenation of anything but literals and quote_* calls, or format's %s), or "".
func unsafeDynamicSQL(src string) string {
	for _, expr := range executeCommands(src) {
		if formatS.MatchString(expr) {
			return expr
		}
		if strings.Contains(expr, "||") {
			for _, part := range strings.Split(expr, "||") {
				if !safeOperand.MatchString(part) {
					return expr
				}
			}
		}
	}
	return ""
}

func checkDynamicSQL(c *catalog) []Finding {
	var out []Finding
	for _, f := range c.functions {
		if !f.secdef || f.lang != "plpgsql" {
			continue
		}
		paths := c.appPaths(f)
		if len(paths) == 0 {
			continue
		}
		stmt := unsafeDynamicSQL(f.src)
		if stmt == "" {
			continue
		}
		if len(stmt) > 120 {
			stmt = stmt[:117] + "..."
		}
		out = append(out, Finding{Object: f.name,
			Message: fmt.Sprintf("SECURITY DEFINER, reachable by the app role (%s), and runs dynamic SQL built from unquoted pieces (EXECUTE %s): a caller can inject SQL that runs with the rights of %s",
				strings.Join(paths, "; "), stmt, f.owner.name),
			Fix: fmt.Sprintf("build the statement with format('%%I', ...) and %%L, pass values with EXECUTE ... USING, or REVOKE EXECUTE ON %s %s FROM %s",
				f.kind(), f.name, c.app.name)})
	}
	return out
}

// settingsWrite finds a statement that changes tenantseal's settings or signing keys.
var settingsWrite = regexp.MustCompile(`(?is)\b(insert\s+into|update|delete\s+from|truncate(\s+table)?|merge\s+into|copy)\s+(only\s+)?"?tenantseal"?\s*\.\s*"?(settings|context_keys)\b`)

func checkSettingsWriters(c *catalog) []Finding {
	var out []Finding
	for _, f := range c.functions {
		if !f.secdef {
			continue
		}
		paths := c.appPaths(f)
		m := settingsWrite.FindStringSubmatch(f.src)
		if len(paths) == 0 || m == nil {
			continue
		}
		out = append(out, Finding{Object: f.name,
			Message: fmt.Sprintf("SECURITY DEFINER, reachable by the app role (%s), and writes tenantseal.%s: the app role can accept unsigned tenant contexts or plant a signing key through it",
				strings.Join(paths, "; "), strings.ToLower(m[4])),
			Fix: fmt.Sprintf("REVOKE EXECUTE ON %s %s FROM %s, PUBLIC; change settings and keys only as the owner", f.kind(), f.name, c.app.name)})
	}
	return out
}

func checkLeakproofFunctions(c *catalog) []Finding {
	var out []Finding
	for _, f := range c.functions {
		if !f.leakproof || c.provablyLeakproof(f) {
			continue
		}
		out = append(out, Finding{Object: f.name,
			Message: fmt.Sprintf("user-defined %s %s marked LEAKPROOF: PostgreSQL lets it run on other tenants' rows before the policies filter them, and trusts that it reveals nothing (an error, a notice, a side effect would)",
				f.lang, strings.ToLower(f.kind())),
			Fix: fmt.Sprintf("ALTER %s %s NOT LEAKPROOF", f.kind(), f.name)})
	}
	return out
}

// provablyLeakproof accepts an SQL-standard body that reads no table and calls only the system's own
// leakproof functions and operators.
func (c *catalog) provablyLeakproof(f *function) bool {
	if f.sqlBody == nil || len(sqlBodyTables(f.sqlBody)) > 0 {
		return false
	}
	funcs, ops := callees(f.sqlBody)
	for _, id := range ops {
		op, ok := c.ops[id]
		if !ok {
			return false
		}
		funcs = append(funcs, op.code)
	}
	for _, id := range funcs {
		fi, ok := c.funcs[id]
		if !ok || !fi.leakproof || fi.schema != "pg_catalog" {
			return false
		}
	}
	return true
}

// writeTargets find the table an INSERT, MERGE or UPDATE writes to; an UPDATE only when SET follows
// the name (and an alias), which "FOR UPDATE", "ON UPDATE" and "DO UPDATE SET" do not have.
var writeTargets = []*regexp.Regexp{
	regexp.MustCompile(`(?is)\b(?:insert|merge)\s+into\s+((?:"[^"]+"|[a-z_][a-z0-9_$]*)(?:\s*\.\s*(?:"[^"]+"|[a-z_][a-z0-9_$]*))?)`),
	regexp.MustCompile(`(?is)(?:^|[^a-z0-9_$.])update\s+(?:only\s+)?((?:"[^"]+"|[a-z_][a-z0-9_$]*)(?:\s*\.\s*(?:"[^"]+"|[a-z_][a-z0-9_$]*))?)(?:\s+(?:as\s+)?[a-z_][a-z0-9_$]*)?\s+set\b`),
}

// writtenTables returns the tables src inserts into, merges into or updates, in order, each once.
func (c *catalog) writtenTables(src string) []*table {
	var out []*table
	for _, re := range writeTargets {
		for _, m := range re.FindAllStringSubmatch(src, -1) {
			if strings.EqualFold(m[1], "set") {
				continue
			}
			if t := c.resolveTable(m[1]); t != nil && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// resolveTable finds the table a name in a function body means: a qualified name exactly, a bare one in
// the user's schemas (public first).
func (c *catalog) resolveTable(name string) *table {
	unquote := func(s string) string {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, `"`) {
			return strings.ReplaceAll(strings.Trim(s, `"`), `""`, `"`)
		}
		return strings.ToLower(s)
	}
	if schema, rel, ok := strings.Cut(name, "."); ok {
		for _, t := range c.tables {
			if t.schema == unquote(schema) && t.relname == unquote(rel) {
				return t
			}
		}
		return nil
	}
	var found *table
	for _, t := range c.tables {
		if t.relname == unquote(name) && !t.internal && (found == nil || t.schema == "public") {
			found = t
		}
	}
	return found
}

func checkTriggerCopies(c *catalog) []Finding {
	var out []Finding
	for _, tg := range c.triggers {
		src, f := c.byOID[tg.table], c.funcByOID[tg.fn]
		if src == nil || f == nil || !src.tenant() {
			continue
		}
		for _, dst := range c.writtenTables(f.src) {
			// A registry under row-level security is guarded by its key (TS019 judges its policies).
			if dst == src || dst.rls && (dst.rlsApplies() || dst.registry) {
				continue
			}
			why := "has no row-level security"
			if !dst.tenant() {
				why = fmt.Sprintf("has no %s column", c.tenantColOf(dst))
			}
			out = append(out, Finding{Object: tg.name + " on " + src.name,
				Message: fmt.Sprintf("trigger function %s copies rows of tenant table %s into %s, which %s: no policy guards the copies, so whoever may read %s reads every tenant's rows",
					f.name, src.name, dst.name, why, dst.name),
				Fix: fmt.Sprintf("give %s the tenant column and SELECT tenantseal.protect_table('%s'), or drop trigger %s",
					dst.name, strings.ReplaceAll(dst.name, "'", "''"), tg.name)})
		}
	}
	return out
}
