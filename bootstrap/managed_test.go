package bootstrap_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// The administrator role of managed PostgreSQL (CREATEROLE and CREATEDB, no superuser) bootstraps a
// database it created: the application works, and what needs a superuser is named in a warning.
func TestManagedAdministrator(t *testing.T) {
	t.Parallel()
	admin := freshRole(t, "admin")
	mustRole(t, admin, "CREATEROLE CREATEDB NOSUPERUSER", "admin-password")
	prefix, database := freshNames(t)
	ctx := testContext(t)
	adminDSN := roleDSN(t, admin, "admin-password", "postgres")
	mustExec(t, mustConn(t, adminDSN), "CREATE DATABASE "+database)

	var store snapshot
	opts := bootstrap.Options{Database: database, RolePrefix: prefix, Save: store.save}
	res, err := bootstrap.Run(ctx, adminDSN, opts)
	if err != nil {
		t.Fatalf("bootstrap as a CREATEROLE CREATEDB role: %v", err)
	}
	store.last(t)
	if err := bootstrap.CheckLogins(ctx, res); err != nil {
		t.Fatal(err)
	}
	mustSmoke(t, res)
	if !slices.ContainsFunc(res.Warnings, func(w string) bool {
		return strings.Contains(w, "telling a foreign row from a missing one needs a superuser") && strings.Contains(w, res.Roles.Probe)
	}) {
		t.Errorf("got warnings %q, want one naming the feature the probe role's missing BYPASSRLS costs", res.Warnings)
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool {
		return strings.Contains(w, "recording DDL in the audit log as it happens needs a superuser")
	}) {
		t.Errorf("got warnings %q, want one saying the event triggers that record DDL need a superuser", res.Warnings)
	}
	super := mustConn(t, superDSN(t))
	var bad []string
	rows, err := super.Query(ctx, `SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)
		AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication)`,
		[]string{res.Roles.Owner, res.Roles.App, res.Roles.Auditor, res.Roles.AuditWriter, res.Roles.Probe})
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r string
		rows.Scan(&r)
		bad = append(bad, r)
	}
	if len(bad) > 0 {
		t.Errorf("got roles %q with attributes beyond LOGIN, want none", bad)
	}

	// Statistics collected before a table was hidden stay without a superuser: the warning says so. The
	// owner role keeps its tables in a schema of its own: public is the administrator's.
	owner := mustConn(t, res.OwnerDSN)
	mustExec(t, owner, `CREATE SCHEMA app; CREATE TABLE app.notes (tenant_id uuid NOT NULL, id uuid NOT NULL DEFAULT gen_random_uuid(), body text, PRIMARY KEY (tenant_id, id));
		SELECT tenantseal.protect_table('app.notes');
		ALTER TABLE app.notes ADD COLUMN later text;
		INSERT INTO tenantseal.tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'a');`)
	in := mustConn(t, pgtest.WithDatabase(superDSN(t), database))
	mustExec(t, in, `INSERT INTO app.notes (tenant_id, body, later) SELECT '00000000-0000-0000-0000-000000000001', 'b' || i, 'l' || i FROM generate_series(1, 50) i;
		ANALYZE app.notes`)
	opts.Passwords = passwordsOf(t, res)
	opts.ContextKey = &res.ContextKey
	again, err := bootstrap.Run(ctx, adminDSN, opts)
	if err != nil {
		t.Fatalf("bootstrap again as the administrator: %v", err)
	}
	if len(again.Actions) != 0 {
		t.Errorf("got actions %q, want none", again.Actions)
	}
	if !slices.ContainsFunc(again.Warnings, func(w string) bool {
		return strings.Contains(w, "removing column statistics collected before a table was hidden needs a superuser") && strings.Contains(w, "app.notes")
	}) {
		t.Errorf("got warnings %q, want one naming the statistics of app.notes that stay", again.Warnings)
	}
	var kept, target int
	if err := in.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_statistic WHERE starelid = 'app.notes'::regclass),
		(SELECT attstattarget FROM pg_attribute WHERE attrelid = 'app.notes'::regclass AND attname = 'later')`).Scan(&kept, &target); err != nil {
		t.Fatal(err)
	}
	if kept != 1 || target != 0 {
		t.Errorf("got %d column statistics and target %d on the added column, want the 1 collected kept and no more collected", kept, target)
	}

	// The superuser completes what the administrator could not.
	full, err := bootstrap.Run(ctx, superDSN(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(full.Warnings, func(w string) bool { return strings.Contains(w, "needs a superuser") }) ||
		!slices.Contains(full.Actions, "removed 1 column statistics of tenant tables that collect none") ||
		!slices.ContainsFunc(full.Actions, func(a string) bool { return strings.HasPrefix(a, "created event trigger tenantseal_audit_ddl") }) {
		t.Errorf("as the superuser: got actions %q, warnings %q, want the statistics removed and nothing left that needs a superuser", full.Actions, full.Warnings)
	}
}
