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
	// Rule is the rule id, "TS001" and up (see [Rules]).
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// Object names what is wrong: a table ("public.customers"), a policy, index or constraint on a table
	// ("customers_select on public.customers"), a function with its argument types, or a role.
	Object  string `json:"object"`
	Message string `json:"message"`
	// Fix is a hint, usually SQL to review before running it.
	Fix string `json:"fix"`
}

// RuleInfo describes a rule. IDs are stable: a rule keeps its id across releases, and an id is never
// reused.
type RuleInfo struct {
	ID       string
	Severity Severity
	// Title is one line: what the rule finds.
	Title string
	// Why says what the rule checks and what goes wrong when it fires, in a short paragraph.
	Why string
	// HowToFix says how to make the finding go away, in a short paragraph.
	HowToFix string
}

// DocPath is the rule's documentation page, relative to the repository root: "docs/lint/TS001.md".
func (r RuleInfo) DocPath() string { return "docs/lint/" + r.ID + ".md" }

// Options configure [Run].
type Options struct {
	// AppRole is the role the application connects as, e.g. "tenantseal_app". Required.
	AppRole string
	// OwnerRole owns the schema and runs migrations, e.g. "tenantseal_owner". Required.
	OwnerRole string
	// TenantColumn makes a table a tenant table. Default "tenant_id".
	TenantColumn string
	// TenantColumns names the tenant column of single tables where it is not TenantColumn, keyed
	// "schema.table": {"public.companies": "id", "crm.deals": "account_id"}. Each table must exist in
	// the checked schemas and have the column. Tables that tenantseal.protect_table recorded in
	// tenantseal.tenant_tables use the column recorded there unless listed here. A partition uses the
	// column of its root.
	TenantColumns map[string]string
	// TenantFunction is the verifying function that policies must compare the tenant column with:
	// "schema.name" (every overload) or "schema.name(argtypes)". Default "tenantseal.current_tenant".
	// With tenantseal's own, tenantseal.current_tenant_key() verifies too: the policies of tenant
	// columns that are not uuid compare with it, cast to the column's type.
	TenantFunction string
	// Schemas to check. Default: every schema except the system schemas. Each must exist. The product's
	// own schemas (tenantseal, tenantseal_migrations) are always checked, whatever Schemas says, against
	// what the product expects of them: the app role reads no signing key, writes no setting, and its
	// policies on keysets and the audit log admit its own tenant's rows only.
	Schemas []string
	// GlobalTables lists schema-qualified tables without a tenant column that the app role may read and
	// write because every tenant shares them, e.g. "public.plans" (TS015). The product's own tables
	// cannot be listed.
	GlobalTables []string
	// Registry is the schema-qualified table of tenants whose single-column primary key is the tenant
	// id, e.g. "public.accounts" (TS019). Default: tenantseal.tenants, when it exists. A tenant table
	// whose single-column primary key is its tenant column (a row per tenant, e.g. public.companies
	// recorded with tenant column "id") is a registry too, and so is the table tenantseal.adopt_registry
	// adopted.
	Registry string
}

// Defaults of [Options].
const (
	DefaultTenantColumn   = "tenant_id"
	DefaultTenantFunction = "tenantseal.current_tenant"
	DefaultRegistry       = "tenantseal.tenants"
	// productTenantFunction verifies the tenant context for the product's own tables.
	productTenantFunction = "tenantseal.current_tenant()"
	// productKeyFunction is the verified tenant's key as text, for tenant columns of other types than
	// uuid: policies compare with it cast to the column's type.
	productKeyFunction = "tenantseal.current_tenant_key()"
	// tenantTables records the tenant column of each table tenantseal.protect_table protected; lint
	// reads it when it exists.
	tenantTables = "tenantseal.tenant_tables"
	// settingsTable holds tenantseal's settings, among them the registry adopt_registry adopted.
	settingsTable = "tenantseal.settings"
	// protectWithColumn is tenantseal.protect_table with the tenant column as an argument.
	protectWithColumn = "tenantseal.protect_table(regclass, boolean, name)"
	// elevatedFunction is the read-only elevation check of the tenantseal schema: its policies are
	// allowed to call it (TS005, TS014).
	elevatedFunction = "tenantseal.elevated()"
	// bindingLookup is the login lookup of the tenantseal schema: before any tenant is verified it
	// answers the app role, for one issuer and claim value together, the tenant they name, and counts
	// every miss (migration 0023). Reaching every tenant's binding is its job; TS021 does not judge it.
	bindingLookup  = "tenantseal.tenant_binding(text, text)"
	internalSchema = "tenantseal"
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
