package bootstrap_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

// A bootstrap stopped after any step completes when run again with what Save received, without
// resetting a password, and the saved connection strings are the ones that work.
func TestInterruptedRunCompletes(t *testing.T) {
	t.Parallel()
	for _, step := range bootstrap.Steps {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			prefix, database := freshNames(t)
			var store snapshot
			opts := bootstrap.Options{Database: database, RolePrefix: prefix, Save: store.save}
			stop := errors.New("stopped")
			ctx := bootstrap.WithStepHook(testContext(t), func(s string) error {
				if s == step {
					return stop
				}
				return nil
			})
			if _, err := bootstrap.Run(ctx, superDSN(t), opts); !errors.Is(err, stop) {
				t.Fatalf("got %v, want the run stopped after %s", err, step)
			}
			saved := store.last(t)
			mustResume(t, opts, saved)
		})
	}
}

// mustResume runs bootstrap again with the passwords of saved, as the CLI does with its secrets file,
// and checks that it completes with exactly those connection strings, no password reset.
func mustResume(t *testing.T, opts bootstrap.Options, saved *bootstrap.Result) {
	t.Helper()
	ctx := testContext(t)
	var again snapshot
	opts.Save = again.save
	opts.Passwords = passwordsOf(t, saved)
	res, err := bootstrap.Run(ctx, superDSN(t), opts)
	if err != nil {
		t.Fatalf("run again: %v", err)
	}
	if len(again.saved) != 0 {
		t.Errorf("run again: got %d saves, want none (no password is new)", len(again.saved))
	}
	for _, a := range res.Actions {
		if len(a) > 5 && a[:5] == "reset" {
			t.Errorf("run again: got action %q, want no password reset", a)
		}
	}
	if diff := cmp.Diff([]string{saved.OwnerDSN, saved.AppDSN, saved.AuditorDSN, saved.AuditWriterDSN},
		[]string{res.OwnerDSN, res.AppDSN, res.AuditorDSN, res.AuditWriterDSN}); diff != "" {
		t.Errorf("run again: connection strings differ from the saved ones (-saved +again):\n%s", diff)
	}
	if err := bootstrap.CheckLogins(ctx, saved); err != nil {
		t.Errorf("CheckLogins with the saved connection strings: %v", err)
	}
	saved.ContextKey = res.ContextKey
	mustSmoke(t, saved)
}

// The connection strings are saved before any role exists, and a failing Save changes nothing.
func TestSaveComesFirst(t *testing.T) {
	t.Parallel()
	prefix, database := freshNames(t)
	ctx := testContext(t)
	super := mustConn(t, superDSN(t))
	roles := 0
	failing := errors.New("disk full")
	_, err := bootstrap.Run(ctx, superDSN(t), bootstrap.Options{Database: database, RolePrefix: prefix, Save: func(ctx context.Context, res *bootstrap.Result) error {
		if err := super.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", prefix+`\_%`).Scan(&roles); err != nil {
			return err
		}
		if res.OwnerDSN == "" || res.AppDSN == "" || res.AuditorDSN == "" || res.AuditWriterDSN == "" {
			t.Errorf("saved %v without every connection string", res)
		}
		return failing
	}})
	if !errors.Is(err, failing) {
		t.Fatalf("got %v, want the Save error", err)
	}
	var left, dbs int
	if err := super.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE $1), (SELECT count(*) FROM pg_database WHERE datname = $2)`,
		prefix+`\_%`, database).Scan(&left, &dbs); err != nil {
		t.Fatal(err)
	}
	if roles != 0 || left != 0 || dbs != 0 {
		t.Errorf("got %d roles when saving, %d roles and %d databases after the failed Save, want none", roles, left, dbs)
	}
}

// A step that fails for real, a migration meeting an object in its way, stops bootstrap; once the object
// is gone, bootstrap run again completes, with the passwords saved.
func TestRunAfterAFailedMigration(t *testing.T) {
	t.Parallel()
	prefix, database := freshNames(t)
	super := mustConn(t, superDSN(t))
	mustExec(t, super, "CREATE DATABASE "+database)
	in := mustConn(t, pgtest.WithDatabase(superDSN(t), database))
	mustExec(t, in, "CREATE SCHEMA tenantseal")

	var store snapshot
	opts := bootstrap.Options{Database: database, RolePrefix: prefix, Save: store.save}
	_, err := bootstrap.Run(testContext(t), superDSN(t), opts)
	var me *migrations.MigrationError
	if !errors.As(err, &me) || me.File != "0001_foundation.up.sql" || me.Statement != "CREATE SCHEMA tenantseal" || !me.RolledBack {
		t.Fatalf("got %v, want a rolled back MigrationError of CREATE SCHEMA tenantseal in 0001_foundation.up.sql", err)
	}
	mustExec(t, in, "DROP SCHEMA tenantseal")
	mustResume(t, opts, store.last(t))
}
