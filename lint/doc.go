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
// [WriteJSON] and [WriteSARIF] write the findings for machines, [WriteFixes] their fix hints as an SQL
// script to review. A [Baseline] accepts the findings of an old schema so that only new ones count;
// [CheckMigration] and [Compare] classify a schema change as safe, breaking or dangerous.
//
// # What it checks
//
// A tenant table is an ordinary or partitioned table in a checked schema with its tenant column: the one
// [Options.TenantColumns] names for it, else the one tenantseal.tenant_tables records for it (where
// tenantseal.protect_table protected it), else [Options.TenantColumn]. Tenant columns may be uuid,
// compared with tenantseal.current_tenant(), or bigint, integer or text, compared with
// tenantseal.current_tenant_key() cast to the column's type. [Rules] lists the rules, each with a page under docs/lint: row-level
// security enabled and forced, one permissive policy per command for the app role whose meaning is
// "this tenant's rows only" (judged by evaluating it on probe rows, not by its shape) and whose tenant
// comparison is an index condition, keys, indexes and foreign keys that lead with or pair the tenant
// column, NOT NULL tenant columns, an app role that cannot become a role that bypasses row-level
// security, SECURITY DEFINER and trigger functions that do not reach other tenants' rows, views that run
// as the caller, no privileges that row-level security does not govern (TRUNCATE, TRIGGER, REFERENCES),
// none that arrive with objects created later (default privileges, CREATE), and no table without a
// tenant column that the app role may read or write unless it is listed in [Options.GlobalTables].
//
// tenantseal's own schemas are always checked, against what the product expects of them: the app role
// never reads the context signing keys, never writes the settings, and its policies on the keysets, the
// audit log and the tenant registry admit its own tenant's rows only.
//
// Policies are judged on the catalog's stored expression trees rather than deparsed SQL; function
// bodies are read as text, which makes the function rules heuristics. A clean report means the known
// mistakes are absent, not that the policies are correct: only isolation tests against a real database
// prove that.
package lint
