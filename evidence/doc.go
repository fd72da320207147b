// Package evidence writes one bundle that an auditor can read: what tenantseal enforces in a database,
// as the database itself reports it, and whether its checks hold.
//
// # Exporting
//
//	res, err := evidence.Export(ctx, "evidence-2026-q4", evidence.Config{
//		OwnerDSN:    ownerDSN,   // lint, key status, context-key ids, the list of protected tables
//		AuditorDSN:  auditorDSN, // roles, grants, policies, the audit log, TLS
//		Since:       start,      // the range of elevations and operator actions
//		ToolVersion: "v1.4.0",
//	})
//	if err != nil { ... }           // nothing was written
//	if !res.OK() { ... }            // the bundle was written; res.Failed() names the checks that failed
//
// The bundle is a directory of files, each JSON one naming its schema in a "schema" field:
//
//	manifest.json        tenantseal/evidence/v1: tool version, time, database, server version, the
//	                     roles read as, the outcome of every check, the SHA-256 of every other file
//	summary.md           the same for a person, in Markdown
//	roles.json           tenantseal/evidence/roles/v1: tenantseal's roles (attributes, settings),
//	                     memberships, superuser and BYPASSRLS roles, database and schema privileges,
//	                     tables (RLS enabled, forced, privileges, policies) and functions
//	lint.json            tenantseal/evidence/lint/v1: the findings of package lint on the live catalog
//	keys.json            tenantseal/evidence/keys/v1: keysets, key ids, states and last rotation per
//	                     tenant, the KEK each is wrapped with (its id and URI, never key material), the
//	                     key cache bounds, the context signing keys (ids, not_after: never the key)
//	audit.json           tenantseal/evidence/audit/v1: the hash chain verified, the checkpoint check
//	                     when one is configured, entries per kind, elevations with their reasons and
//	                     operator actions in the range
//	tls.json             tenantseal/evidence/tls/v1: the server's TLS settings and pg_stat_ssl of the
//	                     export's own sessions
//	isolation.junit.xml  the isolation suite's result, JUnit XML (only when Config.Isolation is set)
//	isolation.json       the same as package isolation's JSON report
//
// # What it never holds
//
// No connection string, password, token, key or plaintext of an encrypted field: the export reads no
// tenant data, no signing key and no keyset, only the catalog, the key ids Tink stores beside wrapped
// keysets, and the audit log (whose entries carry none by design). Role and database settings whose names
// speak of a password, secret, token or key are written as [Redacted]. Before anything is written, every
// file is searched for the passwords of the connection strings in the Config and for the context key's
// secret, in every spelling a connection string or message gives them, and Export refuses to write a
// bundle that holds one.
//
// # Roles
//
// The auditor role reads the catalog (which every role may read), the audit log and the TLS settings.
// The owner is needed only for what no other role may read: the linter's view of tenantseal's own
// tables, the key status, the context keys' ids and the list of protected tables. Both sessions run in
// read-only, repeatable-read transactions: the export changes nothing. The isolation suite, when it runs,
// writes throwaway tenants and removes them, as a superuser and as the app role (package isolation):
// run it against a staging copy, not production.
package evidence
