package migrations_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/migrations"
	"github.com/tenantseal/tenantseal/tenants"
)

// writerDSN connects as the role that appends to d's audit log.
func writerDSN(d *pgtest.Database) string { return d.AuditWriterDSN }

// auditWriter is an audit writer that connects with dsn, as the CLI opens one.
func auditWriter(t *testing.T, dsn string) *audit.Writer {
	t.Helper()
	cfg, err := audit.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SpoolPath = filepath.Join(t.TempDir(), "audit.spool")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.RetryInterval = 50 * time.Millisecond
	w, err := audit.NewWriter(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

func operator(t *testing.T) context.Context {
	return tenantseal.WithPrincipal(testContext(t), tenantseal.OperatorPrincipal("dba@test"))
}

func migrator(t *testing.T, d *pgtest.Database, opts migrations.Options) *migrations.Migrator {
	t.Helper()
	mg, err := migrations.New(testContext(t), d.OwnerDSN, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mg.Close() })
	return mg
}

// A revert that destroys keysets, the audit log or the tenants refuses, running nothing, unless every
// loss is named; one that destroys nothing needs no confirmation.
func TestRevertThatDestroysDataNeedsConfirmation(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := operator(t)
	latest := migrations.Latest()
	// Reverting the newest needs no confirmation while the data it would drop is empty.
	if err := migrator(t, d, migrations.Options{Recorder: auditWriter(t, writerDSN(d))}).Down(ctx, 1); err != nil {
		t.Fatalf("down 1 with no tenant KEK stored: %v, want no confirmation needed", err)
	}
	if err := migrator(t, d, migrations.Options{}).Up(ctx); err != nil {
		t.Fatal(err)
	}
	seedLosses(t, d)
	for _, tc := range []struct {
		name    string
		confirm []migrations.Loss
		revert  func(*migrations.Migrator) error
		want    []migrations.Loss
	}{
		{"down all", nil, func(mg *migrations.Migrator) error { return mg.Down(ctx, 0) },
			[]migrations.Loss{migrations.LossBindings, migrations.LossTenantKEKs, migrations.LossAuditLog, migrations.LossKeysets, migrations.LossTenants}},
		{"down all, keysets confirmed", []migrations.Loss{migrations.LossKeysets}, func(mg *migrations.Migrator) error { return mg.Down(ctx, 0) },
			[]migrations.Loss{migrations.LossBindings, migrations.LossTenantKEKs, migrations.LossAuditLog, migrations.LossTenants}},
		{"goto 3", []migrations.Loss{migrations.LossTenantKEKs}, func(mg *migrations.Migrator) error { return mg.Goto(ctx, 3) },
			[]migrations.Loss{migrations.LossBindings, migrations.LossAuditLog}},
		{"steps down to 2", []migrations.Loss{migrations.LossTenantKEKs, migrations.LossBindings}, func(mg *migrations.Migrator) error { return mg.Steps(ctx, -int(latest)) },
			[]migrations.Loss{migrations.LossAuditLog, migrations.LossKeysets, migrations.LossTenants}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mg := migrator(t, d, migrations.Options{ConfirmLoss: tc.confirm})
			err := tc.revert(mg)
			var le *migrations.LossError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LossError", err)
			}
			var got []migrations.Loss
			for _, u := range le.Unconfirmed {
				got = append(got, u.Loss)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("unconfirmed losses (-want +got):\n%s", diff)
			}
			if v, _, _ := mg.Version(); v != latest {
				t.Errorf("got version %d, want %d: nothing reverted", v, latest)
			}
		})
	}
	// The message counts what would go.
	err := migrator(t, d, migrations.Options{}).Goto(ctx, 3)
	if msg := err.Error(); !strings.Contains(msg, "the audit log (3 entries)") || !strings.Contains(msg, "the tenants' identity bindings (1 bindings)") ||
		!strings.Contains(msg, "confirm with tenant-bindings,tenant-keks,audit-log") {
		t.Errorf("got %q, want the audit log and the binding counted and the confirmation named", msg)
	}
	if err := migrator(t, d, migrations.Options{}).Down(ctx, 0); !strings.Contains(err.Error(), "the tenant registry (1 tenants)") ||
		!strings.Contains(err.Error(), "every tenant's keysets (2 keysets)") {
		t.Errorf("got %q, want the one tenant and its two keysets counted", err)
	}
}

// seedLosses gives d a tenant with keysets wrapped by a KEK of its own and an identity binding, and the
// audit log entries of its keys: their creation and the move to its own KEK.
func seedLosses(t *testing.T, d *pgtest.Database) {
	t.Helper()
	ctx := operator(t)
	kek := func() (*keys.KEK, string) {
		uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := keys.OpenKEK(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		return k, uri
	}
	shared, _ := kek()
	own, uri := kek()
	w := auditWriter(t, writerDSN(d))
	admin := pgstore.NewAdmin(mustConn(t, d.OwnerDSN), shared).WithRecorder(w)
	id, err := admin.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.UseTenantKEK(ctx, id, uri, own); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Bind(ctx, mustConn(t, d.OwnerDSN), id, "https://idp.example.com/", "org_acme"); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Flush(ctx); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
}

// The record of a destructive revert reaches the audit log before anything is reverted, and the audit
// log, the record included, is archived before it is dropped. A record that cannot be stored stops it.
func TestDestructiveRevertIsRecordedFirst(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := operator(t)
	confirm := migrations.Losses()
	seedLosses(t, d)

	// A writer whose database never answers: a closed port.
	cfg, err := audit.ParseConfig(writerDSN(d))
	if err != nil {
		t.Fatal(err)
	}
	cfg.PoolConfig.ConnConfig.Port = 1
	cfg.PoolConfig.ConnConfig.Host = "127.0.0.1"
	cfg.SpoolPath, cfg.Logger = filepath.Join(t.TempDir(), "spool"), slog.New(slog.NewTextHandler(io.Discard, nil))
	down, err := audit.NewWriter(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { down.Close(context.Background()) })
	var archive bytes.Buffer
	err = migrator(t, d, migrations.Options{ConfirmLoss: confirm, Recorder: down, AuditArchive: &archive}).Goto(ctx, 3)
	if !errors.Is(err, migrations.ErrNotRecorded) {
		t.Fatalf("with an audit writer that cannot write: got %v, want ErrNotRecorded", err)
	}
	if v, _, _ := migrator(t, d, migrations.Options{}).Version(); v != migrations.Latest() || archive.Len() != 0 {
		t.Fatalf("got version %d and %d archived bytes, want nothing reverted or archived", v, archive.Len())
	}
	if err := migrator(t, d, migrations.Options{ConfirmLoss: confirm}).Goto(ctx, 3); !errors.Is(err, migrations.ErrNotRecorded) {
		t.Fatalf("without a Recorder: got %v, want ErrNotRecorded", err)
	}

	w := auditWriter(t, writerDSN(d))
	if err := migrator(t, d, migrations.Options{ConfirmLoss: confirm, Recorder: w}).Goto(ctx, 3); err == nil || !strings.Contains(err.Error(), "AuditArchive") {
		t.Fatalf("without an archive: got %v, want a refusal naming AuditArchive", err)
	}
	archive.Reset()
	if err := migrator(t, d, migrations.Options{ConfirmLoss: confirm, Recorder: w, AuditArchive: &archive}).Goto(ctx, 3); err != nil {
		t.Fatal(err)
	}
	var last audit.Entry
	for sc := bufio.NewScanner(&archive); sc.Scan(); {
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatal(err)
		}
	}
	if last.Kind != tenantseal.EventMigrate || last.Subject == nil || *last.Subject != "dba@test" || last.TenantID != nil ||
		last.Detail == nil || !strings.Contains(*last.Detail, "destroying tenant-bindings (0023: the tenants' identity bindings (1 bindings)), tenant-keks (0012: the tenants' own KEKs (1 tenants)") ||
		!strings.Contains(*last.Detail, "audit-log (0004: the audit log (3 entries))") {
		t.Errorf("last archived entry: got %+v (%s), want the operator's revert, destroying the bindings, the tenant KEKs and the audit log, under no tenant", last, deref(last.Detail))
	}
	var exists bool
	if err := mustConn(t, d.OwnerDSN).QueryRow(ctx, "SELECT to_regclass('tenantseal.audit_log') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("audit log still there: %v (%v)", exists, err)
	}
}

// A change that destroys nothing is recorded after the fact.
func TestMigrationsAreRecorded(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := operator(t)
	w := auditWriter(t, writerDSN(d))
	mg := migrator(t, d, migrations.Options{Recorder: w})
	latest := migrations.Latest()
	if err := mg.Down(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := mg.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mg.Force(ctx, int(latest)); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Flush(ctx); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}
	entries, err := audit.Query(ctx, mustConn(t, d.AuditorDSN), audit.Filter{Kind: tenantseal.EventMigrate})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, *e.Operation+": "+strings.Split(*e.Detail, " as ")[0]+" by "+*e.Subject)
	}
	all := migrations.List(latest)
	prev := all[len(all)-2].Version
	want := []string{
		"revert: from version " + itoa(latest) + " to " + itoa(prev) + " by dba@test",
		"up: from version " + itoa(prev) + " to " + itoa(latest) + " by dba@test",
		"force: from version " + itoa(latest) + " to " + itoa(latest) + " by dba@test",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded migrations (-want +got):\n%s", diff)
	}
}

func TestExportWritesTheEmbeddedFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "sql")
	written, err := migrations.Export(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	fs.WalkDir(migrations.FS(), ".", func(p string, e fs.DirEntry, _ error) error {
		if !e.IsDir() {
			want = append(want, p)
			b, _ := fs.ReadFile(migrations.FS(), p)
			if got, err := os.ReadFile(filepath.Join(dir, p)); err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s: exported file differs (%v)", p, err)
			}
		}
		return nil
	})
	if !slices.Equal(written, want) || len(want) < 12 {
		t.Errorf("got %v written, want every embedded file %v", written, want)
	}
	if again, err := migrations.Export(dir); err != nil || len(again) != 0 {
		t.Errorf("again: got %v (%v), want nothing to write", again, err)
	}
	if err := os.WriteFile(filepath.Join(dir, want[0]), []byte("-- edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Export(dir); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("over an edited file: got %v, want a refusal", err)
	}
}

func itoa(v uint) string { return strconv.FormatUint(uint64(v), 10) }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
