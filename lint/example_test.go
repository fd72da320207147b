package lint_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/lint"
)

// Lint a database as its owner and fail on errors, as `tenantseal lint` does.
func ExampleRun() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("TENANTSEAL_OWNER_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer conn.Close(ctx)
	findings, err := lint.Run(ctx, conn, lint.Options{
		AppRole:      "tenantseal_app",
		OwnerRole:    "tenantseal_owner",
		GlobalTables: []string{"public.plans"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	lint.WriteText(os.Stdout, findings)
	if lint.HasErrors(findings) {
		os.Exit(1)
	}
}

func ExampleWriteText() {
	lint.WriteText(os.Stdout, []lint.Finding{{
		Rule:     "TS002",
		Severity: lint.SeverityError,
		Object:   "public.invoices",
		Message:  "row-level security is enabled but not forced",
		Fix:      "ALTER TABLE public.invoices FORCE ROW LEVEL SECURITY",
	}})
	// Output:
	// TS002 error public.invoices: row-level security is enabled but not forced
	// 	fix: ALTER TABLE public.invoices FORCE ROW LEVEL SECURITY
	// 1 finding: 1 error, 0 warnings
}

func ExampleRules() {
	for _, r := range lint.Rules()[:3] {
		fmt.Println(r.ID, r.Severity, r.Title)
	}
	// Output:
	// TS001 error tenant table with row-level security disabled
	// TS002 error tenant table with row-level security not forced
	// TS003 error command without a policy for the app role
}
