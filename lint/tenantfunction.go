package lint

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The tenant function given with Options.TenantFunction (TS026) is trusted only when it is tenantseal's
// own verifier, or when its body, and the bodies of the functions of the checked schemas it calls, read
// no setting that a session can set itself. Custom settings ("app.tenant_id", "request.jwt.claims") are
// placeholders any session may SET; so are the built-in settings of context "user". The one exception is
// tenantseal.context, the signed token, when the body hands it to tenantseal's verifier.

const productContextSetting = "tenantseal.context"

var (
	// settingRead captures the first argument of current_setting(...): a literal name or an expression.
	settingRead = regexp.MustCompile(`(?i)\bcurrent_setting\s*\(\s*('(?:[^']|'')*'|[^,)]*)`)
	// settingsView is a read of the settings through the catalog view instead.
	settingsView = regexp.MustCompile(`(?i)\bpg_(?:catalog\s*\.\s*pg_)?settings\b`)
	// productVerification is a call of tenantseal's verifier, which checks the context's signature.
	productVerification = regexp.MustCompile(`(?i)"?tenantseal"?\s*\.\s*"?(?:verify_token|current_tenant|current_tenant_key)"?\s*\(`)
)

// dynamicSetting stands for a setting whose name the body computes at run time.
const dynamicSetting = "(a setting named at run time)"

// settingNames returns the settings src reads, in order, each once, lower case.
func settingNames(src string) []string {
	var out []string
	for _, m := range settingRead.FindAllStringSubmatch(src, -1) {
		name := dynamicSetting
		if arg := strings.TrimSpace(m[1]); strings.HasPrefix(arg, "'") && strings.HasSuffix(arg, "'") && len(arg) > 1 {
			name = strings.ToLower(strings.ReplaceAll(arg[1:len(arg)-1], "''", "'"))
		}
		out = append(out, name)
	}
	if settingsView.MatchString(src) {
		out = append(out, dynamicSetting)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// calledFunctions returns f and the functions of the checked schemas that f calls, directly or
// through others, found by name in the bodies.
func (c *catalog) calledFunctions(f *function) []*function {
	out := []*function{f}
	for i := 0; i < len(out); i++ {
		body := out[i].body()
		for _, g := range c.functions {
			if slices.Contains(out, g) || !strings.Contains(body, g.short) {
				continue
			}
			if regexp.MustCompile(`(?:^|[^a-z0-9_$])"?` + regexp.QuoteMeta(g.short) + `"?\s*\(`).MatchString(body) {
				out = append(out, g)
			}
		}
	}
	return out
}

// tenantFunctions returns the tenant functions to analyse: those of Options.TenantFunction that are not
// tenantseal's own verifier.
func (c *catalog) tenantFunctions() []*function {
	var out []*function
	for id := range c.tenantFuncs {
		if f := c.funcByOID[id]; f != nil && !c.productVerifier(id) {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b *function) int { return strings.Compare(a.name, b.name) })
	return out
}

// loadSettings reads, for every setting a tenant function (or a function it calls) reads, whether the
// app role can set it: a placeholder (a custom setting no module defines) or a setting of context
// "user" can be set by every session; one of context "superuser" only with a SET privilege on it.
func (c *catalog) loadSettings(ctx context.Context, conn Querier, _ []string) error {
	c.settable = map[string]bool{}
	var names []string
	for _, f := range c.tenantFunctions() {
		for _, g := range c.calledFunctions(f) {
			for _, name := range settingNames(g.src) {
				if name != dynamicSetting {
					names = append(names, name)
				}
				c.settable[name] = true
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	return each(ctx, conn, "settings", `
		SELECT s.name, s.context = 'user' OR s.context = 'superuser' AND has_parameter_privilege($2::oid, s.name, 'SET')
		  FROM pg_settings s WHERE lower(s.name) = ANY($1)`,
		[]any{names, c.app.oid}, func(r pgx.Rows) error {
			var name string
			var settable bool
			if err := r.Scan(&name, &settable); err != nil {
				return err
			}
			c.settable[strings.ToLower(name)] = settable
			return nil
		})
}

// trustedSettings returns what f (with the functions it calls) reads that a session can set, each as
// "'name'" or "'name' (through g)"; unreadable names a function whose body lint cannot read.
func (c *catalog) trustedSettings(f *function) (reads []string, unreadable *function) {
	for _, g := range c.calledFunctions(f) {
		// tenantseal's own functions are held to the product's tests, not to this heuristic.
		if c.productVerifier(g.oid) || g != f && slices.Contains(internalSchemas, g.schema) {
			continue
		}
		if g.sqlBody == nil && g.lang != "sql" && g.lang != "plpgsql" {
			return nil, g
		}
		for _, name := range settingNames(g.src) {
			if !c.settable[name] || name == productContextSetting && productVerification.MatchString(g.src) {
				continue
			}
			read := name
			if name != dynamicSetting {
				read = "'" + name + "'"
			}
			if g != f {
				read += " (through " + g.name + ")"
			}
			reads = append(reads, read)
		}
	}
	return reads, nil
}

func checkTenantFunction(c *catalog) []Finding {
	var out []Finding
	for _, f := range c.tenantFunctions() {
		reads, unreadable := c.trustedSettings(f)
		switch {
		case unreadable != nil:
			out = append(out, Finding{Object: f.name,
				Message: fmt.Sprintf("the tenant function is not tenantseal's verifier, and the body of %s (language %s) cannot be read to show that it trusts no setting a session can set itself", unreadable.name, unreadable.lang),
				Fix:     "compare with tenantseal.current_tenant() (or tenantseal.current_tenant_key() cast to the tenant column's type), which verify a signed context: --tenant-function tenantseal.current_tenant"})
		case len(reads) > 0:
			out = append(out, Finding{Object: f.name,
				Message: fmt.Sprintf("the tenant function reads %s, which any session may set itself (SET, set_config), and does not verify it: whoever can run SQL as the app role names any tenant, and the policies compare with a claim nobody checked",
					strings.Join(reads, ", ")),
				Fix: "compare with tenantseal.current_tenant() (or tenantseal.current_tenant_key() cast to the tenant column's type), which verify a signed context (--tenant-function tenantseal.current_tenant), or verify a signature inside " + f.name})
		}
	}
	return out
}
