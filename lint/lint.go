package lint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Severity says whether a finding breaks tenant isolation ("error") or costs performance or clarity
// ("warning").
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Finding is one problem in the schema.
type Finding struct {
	// Rule is the rule id, "TS001" to "TS016" (see [Rules]).
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// Object names what is wrong: a table ("public.customers"), a policy, index or constraint on a table
	// ("customers_select on public.customers"), a function with its argument types, or a role.
	Object  string `json:"object"`
	Message string `json:"message"`
	// Fix is a hint, usually SQL to review before running it.
	Fix string `json:"fix"`
}

// RuleInfo describes a rule.
type RuleInfo struct {
	ID       string
	Severity Severity
	Title    string
}

// Options configure [Run].
type Options struct {
	// AppRole is the role the application connects as, e.g. "tenantseal_app". Required.
	AppRole string
	// OwnerRole owns the schema and runs migrations, e.g. "tenantseal_owner". Required.
	OwnerRole string
	// TenantColumn makes a table a tenant table. Default "tenant_id".
	TenantColumn string
	// TenantFunction is the verifying function that policies must compare the tenant column with:
	// "schema.name" (every overload) or "schema.name(argtypes)". Default "tenantseal.current_tenant".
	TenantFunction string
	// Schemas to check. Default: every schema except the system schemas and "tenantseal". The
	// tenantseal schema is never subject to the table rules, whatever Schemas says; its SECURITY DEFINER
	// functions are always checked (TS011).
	Schemas []string
	// GlobalTables lists schema-qualified tables without a tenant column that the app role may write,
	// e.g. "public.plans" (TS015).
	GlobalTables []string
}

// Defaults of [Options].
const (
	DefaultTenantColumn   = "tenant_id"
	DefaultTenantFunction = "tenantseal.current_tenant"
	// elevatedFunction is the read-only elevation check of the tenantseal schema: its policies are
	// allowed to call it (TS005, TS014).
	elevatedFunction = "tenantseal.elevated()"
	internalSchema   = "tenantseal"
)

// Querier is what [Run] needs from a connection: *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it. The
// catalog is read with several statements; pass a REPEATABLE READ transaction for one consistent
// snapshot while other sessions run DDL.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ErrOptions is returned (wrapped) when [Options] are incomplete or name something that does not exist.
// Use errors.Is.
var ErrOptions = errors.New("lint: invalid options")

// Run reads the system catalog through conn and returns the findings, sorted by rule, object and
// message. It only reads; connect as the owner role or a superuser (the app role cannot see every
// object it must check, and should not be trusted to report on itself).
func Run(ctx context.Context, conn Querier, opts Options) ([]Finding, error) {
	if opts.AppRole == "" || opts.OwnerRole == "" {
		return nil, fmt.Errorf("%w: AppRole and OwnerRole are required", ErrOptions)
	}
	if opts.TenantColumn == "" {
		opts.TenantColumn = DefaultTenantColumn
	}
	if opts.TenantFunction == "" {
		opts.TenantFunction = DefaultTenantFunction
	}
	c, err := load(ctx, conn, opts)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, r := range rules {
		for _, f := range r.check(c) {
			f.Rule, f.Severity = r.ID, r.Severity
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Object, b.Object), cmp.Compare(a.Message, b.Message))
	})
	return out, nil
}

// HasErrors reports whether any finding has severity error: the CLI exits non-zero then.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == SeverityError })
}

// Rules lists every rule, by id.
func Rules() []RuleInfo {
	out := make([]RuleInfo, len(rules))
	for i, r := range rules {
		out[i] = r.RuleInfo
	}
	return out
}

type rule struct {
	RuleInfo
	// check returns the findings without Rule and Severity, which Run fills in from RuleInfo.
	check func(*catalog) []Finding
}

// rules in id order. Each check lives next to its kind: rules_tables.go, rules_policies.go,
// rules_roles.go.
var rules = []rule{
	{RuleInfo{"TS001", SeverityError, "tenant table with row-level security disabled"}, checkRLSEnabled},
	{RuleInfo{"TS002", SeverityError, "tenant table with row-level security not forced"}, checkRLSForced},
	{RuleInfo{"TS003", SeverityError, "command without a policy for the app role"}, checkCommandCoverage},
	{RuleInfo{"TS004", SeverityError, "policy that writes without an explicit WITH CHECK"}, checkWithCheck},
	{RuleInfo{"TS005", SeverityError, "permissive policy that does not restrict to the verified tenant"}, checkPolicyRestricts},
	{RuleInfo{"TS006", SeverityWarning, "tenant function called per row"}, checkPerRowCall},
	{RuleInfo{"TS007", SeverityWarning, "no index led by the tenant column"}, checkTenantIndex},
	{RuleInfo{"TS008", SeverityError, "primary key or unique index without the tenant column"}, checkUniqueKeys},
	{RuleInfo{"TS009", SeverityError, "foreign key between tenant tables without paired tenant columns"}, checkForeignKeys},
	{RuleInfo{"TS010", SeverityError, "app role can bypass row-level security"}, checkAppRole},
	{RuleInfo{"TS011", SeverityError, "unsafe SECURITY DEFINER function"}, checkSecurityDefiner},
	{RuleInfo{"TS012", SeverityError, "view over a tenant table that does not run as the caller"}, checkViews},
	{RuleInfo{"TS013", SeverityError, "tenant table privileges granted to PUBLIC"}, checkPublicGrants},
	{RuleInfo{"TS014", SeverityError, "non-leakproof function or operator in a policy"}, checkLeakproof},
	{RuleInfo{"TS015", SeverityError, "app role can write a table without a tenant column"}, checkGlobalWrites},
	{RuleInfo{"TS016", SeverityError, "tenant table with row-level security and no policy"}, checkNoPolicies},
}
