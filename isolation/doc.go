// Package isolation attacks a live database as its application role and reports every way one tenant
// can reach another's rows, keys or context: the suite behind `tenantseal isolation-check`, for this
// schema or your own.
//
// [Check] finds the tenant tables in the catalog (those tenantseal.tenant_tables lists, each with its own
// tenant column, every other table with a column of such a name, and the tenant registry their foreign
// keys name or adopt_registry adopted), seeds rows for throwaway tenants whose keys are of the
// deployment's type (uuid, bigint, integer or text) from column types, enums, checks and foreign keys,
// and runs each case against each table as the app role. A superuser connection reads the ground truth
// after every write, restores it, and removes everything the run created, also when the run is
// cancelled; what a killed run left (its tenants are named "tenantseal-isolation run <id>") the next one
// removes. [LoadConfigFile] reads exclusions, shared tables and seeding values. The [Report] is a case x
// table matrix, written as text, JSON or JUnit XML:
//
//	rep, err := isolation.Check(ctx, isolation.Config{SuperDSN: super, AppDSN: app, ContextKey: key})
//	if err != nil {
//		return err // the suite could not run
//	}
//	if !rep.OK() {
//		rep.WriteText(os.Stdout) // names each leak by case and table
//	}
//
// The cases come in groups, one file each: direct row access (cases_rows.go: select, update, delete,
// insert, move, upsert, RETURNING, and the indirect ones: foreign keys, joins, subqueries, CTEs,
// aggregates, window counts, unique violations, COPY TO, cursors), what else the app role reaches
// (cases_reach.go: partitions by their own names, tables without a tenant column, custom settings such as
// app.tenant or request.jwt.claims that a policy might trust), the tenant context
// (cases_context.go: missing, forged, altered, expired, replayed and wrong-key tokens, RESET, SET ROLE,
// SECURITY DEFINER functions called with arguments of their declared types, views (materialized ones
// refreshed first), the owner's own access, reused prepared statements, tokens of
// suspended and deleted tenants, elevations beyond their tenant, session state left in a pooled
// connection), keys (cases_keys.go: ciphertexts and keysets moved between rows, columns and tenants),
// side channels (cases_side.go: pg_stat_activity, tokens in statement text in every exec mode,
// LISTEN/NOTIFY, pg_stats, the planner: EXPLAIN ANALYZE row counts and estimates for other tenants'
// values) and the app role beyond rows (cases_role.go: writing the audit log, signalling the sessions of
// other roles, the session limits of the role, ALTER ROLE on itself). [CaseNames] lists them.
//
// From Go tests, package [github.com/tenantseal/tenantseal/isolation/isolationtest] runs each case and
// table as a subtest; this package itself does not import "testing".
package isolation
