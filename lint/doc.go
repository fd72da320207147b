// Package lint checks that a PostgreSQL schema lets row-level security keep tenants apart: it reads the
// system catalog and reports each table, policy, key, view, function or role grant that would let one
// tenant reach another's rows (errors) or make the policies slow (warnings).
//
// # Usage
//
// Connect as the owner role or a superuser and call [Run]; the `tenantseal lint` command does this:
//
//	conn, err := pgx.Connect(ctx, ownerDSN)
//	...
//	findings, err := lint.Run(ctx, conn, lint.Options{AppRole: "tenantseal_app", OwnerRole: "tenantseal_owner"})
//	...
//	lint.WriteText(os.Stdout, findings)
//	if lint.HasErrors(findings) {
//		os.Exit(1)
//	}
//
// # What it checks
//
// A tenant table is an ordinary or partitioned table in a checked schema with the tenant column
// ([Options.TenantColumn]). [Rules] lists the rules TS001 to TS016: row-level security enabled and
// forced, a permissive policy for the app role per granted command, policies that compare the tenant
// column with the verifying tenant function once per statement, with explicit WITH CHECK and only
// leakproof functions, keys and foreign keys that include the tenant column, an index led by it, an app
// role that cannot bypass row-level security, safe SECURITY DEFINER functions, views that run as the
// caller, no grants to PUBLIC, and no tenant-less table the app role may write unless it is listed in
// [Options.GlobalTables].
//
// The schema tenantseal is the product's own: its tables are exempt from the table rules, its SECURITY
// DEFINER functions are checked like any other.
//
// The checks read the catalog's stored expression trees rather than deparsed SQL, so they see which
// function a policy calls and whether the call is wrapped in a sub-select. They are structural checks,
// not proofs: a clean report means the known mistakes are absent, not that the policies are correct;
// only isolation tests against a real database prove that.
package lint
