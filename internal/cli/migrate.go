package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/migrations"
)

var migrateCommand = command{
	name:    "migrate",
	summary: "apply, revert, inspect, repair or export the schema migrations as the owner",
	run:     runMigrate,
}

const migrateAbout = `
Subcommands:

	up          apply every pending migration
	down [N]    revert the last N migrations (default 1)
	down --all  revert every migration
	status      list the migrations, [x] applied, [ ] pending, and the dirty flag
	version     print the applied version (0: none)
	goto V      migrate up or down to version V (0: revert all)
	force V     mark version V applied and clean without running anything (0 or -1: none applied)
	export DIR  write the embedded migration files into DIR (never over different ones), for the stock
	            migrate CLI: migrate -source file://DIR -database 'pgx5://...' (see 'tenantseal help')

Reverting destroys data in six migrations, and is refused (exit 2, nothing reverted) unless
--confirm-loss names what goes:

	tenants       0001: the tenant registry and the tenantseal schema
	keysets       0003: every tenant's keysets: every encrypted field of every tenant, for good
	audit-log     0004: the audit log (written first to --archive-audit FILE, default
	              tenantseal-audit-archive-<time>.jsonl, as JSON lines)
	tenant-keks   0012: which tenants have a KEK of their own: their keysets no longer open
	tenant-bindings
	              0023: which issuer names which tenant by which claim value (tenants bind):
	              tenant users cannot log in through a database registry until bound again
	retention     0024: the retention policies and the tenants' regions, policies and deletion
	              dates: the retention job deletes nothing until they are set again

The refusal counts what each would destroy in this database. A confirmed revert is recorded in the audit
log first, and runs only once the log holds the record. Every change of version is recorded, with the
operator ($TENANTSEAL_OPERATOR, else user@host): up, down, goto and force need the audit writer's
connection string (--audit-dsn, $TENANTSEAL_AUDIT_WRITER_DSN or the secrets file) whenever the audit
log exists before the change (or, for up and goto, after it).

A migration that fails part-way leaves the database dirty at its version: every subcommand but force then
fails with that version. Repair the schema by hand, run 'tenantseal migrate force <last good version>',
then migrate again. The same migration files work with the stock migrate CLI.

status --format json prints one object, schema tenantseal/migrate-status/v1:

	{"schema": "tenantseal/migrate-status/v1", "version": 12, "dirty": false,
	  "migrations": [{"version": 1, "name": "foundation", "applied": true}]}`

func runMigrate(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "migrate", "[flags] up | down [N | --all] [--confirm-loss LOSSES] | status | version | goto V | force V | export DIR", migrateAbout)
	conn := f.ownerConn()
	out := f.output("text", "json")
	all := f.Bool("all", false, "with down: revert every migration")
	var confirm listFlag
	f.Var(&confirm, "confirm-loss", "with down, goto: what the revert may destroy, comma-separated: "+lossNames())
	archive := f.String("archive-audit", "", "with down, goto: where the audit log goes before a revert drops it (default tenantseal-audit-archive-<time>.jsonl)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("migrate: missing subcommand: up, down, status, version, goto, force or export (see 'tenantseal migrate -h')")
	}
	sub, rest := pos[0], pos[1:]
	if *all && sub != "down" {
		return usageErrorf("migrate: --all goes with down only")
	}
	if (f.set("confirm-loss") || f.set("archive-audit")) && sub != "down" && sub != "goto" {
		return usageErrorf("migrate %s: --confirm-loss and --archive-audit go with down and goto only", sub)
	}
	if out.json() && sub != "status" {
		return usageErrorf("migrate %s: --format json goes with status only", sub)
	}
	if err := out.check(); err != nil {
		return err
	}
	var losses []migrations.Loss
	for _, c := range confirm {
		l, ok := migrations.ParseLoss(c)
		if !ok {
			return usageErrorf("migrate %s: --confirm-loss %q: want %s", sub, c, lossNames())
		}
		losses = append(losses, l)
	}

	// Check the arguments before connecting.
	var n int
	switch sub {
	case "up", "status", "version":
		if len(rest) > 0 {
			return usageErrorf("migrate %s: unexpected argument %q", sub, rest[0])
		}
	case "export":
		if len(rest) != 1 {
			return usageErrorf("migrate export: needs exactly one directory: 'tenantseal migrate export DIR'")
		}
		return exportMigrations(s, rest[0])
	case "down":
		switch {
		case len(rest) > 1:
			return usageErrorf("migrate down: unexpected argument %q", rest[1])
		case *all && len(rest) == 1:
			return usageErrorf("migrate down: give N or --all, not both")
		case *all:
			n = 0
		case len(rest) == 0:
			n = 1
		default:
			if n, err = strconv.Atoi(rest[0]); err != nil || n < 1 {
				return usageErrorf("migrate down: N must be a positive number, got %q (--all reverts everything)", rest[0])
			}
		}
	case "goto", "force":
		if len(rest) != 1 {
			return usageErrorf("migrate %s: needs exactly one version, e.g. 'tenantseal migrate %s %d'", sub, sub, migrations.Latest())
		}
		if n, err = strconv.Atoi(rest[0]); err != nil || n < -1 || (sub == "goto" && n < 0) {
			return usageErrorf("migrate %s: version must be a number of a migration, got %q", sub, rest[0])
		}
	default:
		return usageErrorf("migrate: unknown subcommand %q: want up, down, status, version, goto, force or export", sub)
	}

	dsn, err := conn.ownerDSN()
	if err != nil {
		return err
	}
	// A migration that keeps something it would otherwise remove says so with a NOTICE or WARNING: the
	// operator must see it.
	notice := func(n *pgconn.Notice) {
		fmt.Fprintf(s.stderr, "tenantseal: %s: %s\n", n.Severity, s.redact(oneLine(n.Message)))
	}
	opts := migrations.Options{OnNotice: notice, ConfirmLoss: losses}
	mg, err := migrations.New(ctx, dsn, opts)
	if err != nil {
		return err
	}
	before, dirty, err := mg.Version()
	if err != nil {
		mg.Close()
		return err
	}
	if dirty && sub != "force" && sub != "status" && sub != "version" {
		mg.Close()
		return &migrations.DirtyError{Version: int(before)}
	}
	switch sub {
	case "status":
		defer mg.Close()
		return migrateStatus(s, before, dirty, out.json())
	case "version":
		defer mg.Close()
		if dirty {
			s.printf("%d (dirty)\n", before)
			return &migrations.DirtyError{Version: int(before)}
		}
		s.printf("%d\n", before)
		return nil
	}
	if sub == "down" {
		applied := 0
		for _, m := range migrations.List(before) {
			if m.Applied {
				applied++
			}
		}
		if n > applied {
			mg.Close()
			return fmt.Errorf("migrate down: only %d migration(s) applied, cannot revert %d", applied, n)
		}
	}

	// Every change of version is recorded, in the audit log that exists before it or, for an up, after.
	var log *auditLog
	if sub == "up" || (sub == "goto" && n >= 4) || hasAuditLog(ctx, dsn) {
		if log, err = openAuditLog(ctx, s, conn, "migrate "+sub); err != nil {
			mg.Close()
			return err
		}
	}
	mg.Close()
	if log != nil {
		opts.Recorder = log.w
	}
	var archiveFile *os.File
	defer func() {
		if archiveFile != nil {
			archiveFile.Close()
		}
	}()
	if sub == "down" || sub == "goto" {
		path := *archive
		if path == "" {
			path = "tenantseal-audit-archive-" + time.Now().UTC().Format("20060102T150405Z") + ".jsonl"
		}
		opts.AuditArchive = &lazyArchive{path: path, file: &archiveFile}
	}
	if mg, err = migrations.New(ctx, dsn, opts); err != nil {
		return closeLog(ctx, log, err)
	}
	defer mg.Close()
	octx := asOperator(ctx)
	switch sub {
	case "force":
		if err := mg.Force(octx, n); err != nil {
			return closeLog(ctx, log, err)
		}
		s.printf("forced version %d (clean); nothing was run\n", max(n, 0))
		return closeLog(ctx, log, nil)
	case "up":
		err = mg.Up(octx)
	case "down":
		err = mg.Down(octx, n)
	case "goto":
		err = mg.Goto(octx, uint(n))
	}
	var le *migrations.LossError
	if errors.As(err, &le) {
		return closeLog(ctx, log, usageErrorf("migrate %s: %s", sub, strings.TrimPrefix(strings.Replace(err.Error(), "confirm with", "confirm with --confirm-loss", 1), "migrations: ")))
	}
	if err != nil {
		return closeLog(ctx, log, err)
	}
	if archiveFile != nil {
		s.printf("archived the audit log to %s before dropping it\n", archiveFile.Name())
	}
	after, _, err := mg.Version()
	if err != nil {
		return closeLog(ctx, log, err)
	}
	if after == before {
		s.printf("at version %d: nothing to do\n", after)
	} else {
		s.printf("migrated from version %d to %d\n", before, after)
	}
	return closeLog(ctx, log, nil)
}

// hasAuditLog reports whether the database of the owner's dsn holds the audit log.
func hasAuditLog(ctx context.Context, dsn string) bool {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	defer c.Close(context.WithoutCancel(ctx))
	var ok bool
	return c.QueryRow(ctx, "SELECT to_regclass('tenantseal.audit_log') IS NOT NULL").Scan(&ok) == nil && ok
}

// closeLog closes log, if there is one, with the command's result err.
func closeLog(ctx context.Context, log *auditLog, err error) error {
	if log == nil {
		return err
	}
	return log.close(ctx, err)
}

// lazyArchive creates the audit archive file on its first write, mode 0600, never over an existing one:
// a revert that drops no audit log leaves no file.
type lazyArchive struct {
	path string
	file **os.File
}

func (a *lazyArchive) Write(p []byte) (int, error) {
	if *a.file == nil {
		f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return 0, fmt.Errorf("audit archive: %w", err)
		}
		*a.file = f
	}
	return (*a.file).Write(p)
}

// Sync makes the archive durable before the audit log is dropped.
func (a *lazyArchive) Sync() error {
	if *a.file == nil {
		f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("audit archive: %w", err)
		}
		*a.file = f
	}
	return (*a.file).Sync()
}

// migrationJSON is one migration of `migrate status --format json`, schema tenantseal/migrate-status/v1.
type migrationJSON struct {
	Version uint   `json:"version"`
	Name    string `json:"name"`
	Applied bool   `json:"applied"`
}

func migrateStatus(s *session, version uint, dirty, asJSON bool) error {
	list := migrations.List(version)
	if asJSON {
		doc := struct {
			Schema     string          `json:"schema"`
			Version    uint            `json:"version"`
			Dirty      bool            `json:"dirty"`
			Migrations []migrationJSON `json:"migrations"`
		}{Schema: "tenantseal/migrate-status/v1", Version: version, Dirty: dirty}
		for _, m := range list {
			doc.Migrations = append(doc.Migrations, migrationJSON{m.Version, m.Name, m.Applied})
		}
		if err := writeJSON(s, doc); err != nil {
			return err
		}
	} else {
		for _, m := range list {
			mark := " "
			if m.Applied {
				mark = "x"
			}
			s.printf("[%s] %04d %s\n", mark, m.Version, m.Name)
		}
		s.printf("version %d, dirty: %s\n", version, yesNo(dirty))
	}
	if dirty {
		return &migrations.DirtyError{Version: int(version)}
	}
	return nil
}

func exportMigrations(s *session, dir string) error {
	written, err := migrations.Export(dir)
	if err != nil {
		return fmt.Errorf("migrate export: %s", strings.TrimPrefix(err.Error(), "migrations: export: "))
	}
	for _, name := range written {
		s.detail("wrote %s\n", name)
	}
	s.printf("wrote %d migration files to %s (%d there already)\n", len(written), dir, len(migrations.List(0))*2-len(written))
	s.info("run them with the stock migrate CLI: migrate -source file://%s -database 'pgx5://<owner>@<host>/<db>?x-migrations-table=%%22%s%%22.%%22%s%%22&x-migrations-table-quoted=1' up\n",
		dir, migrations.Schema, migrations.Table)
	return nil
}

// lossNames lists what --confirm-loss accepts.
func lossNames() string {
	var names []string
	for _, l := range migrations.Losses() {
		names = append(names, string(l))
	}
	return strings.Join(names, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
