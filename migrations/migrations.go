package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tenantseal/tenantseal"
)

//go:embed sql/*.sql
var files embed.FS

// Schema holds the golang-migrate tables of tenantseal's migrations and of sets applied beside them
// (Options.Table): nothing of tenantseal lives in public, so an application's own schema_migrations
// there stays its own.
const Schema = "tenantseal_migrations"

// Table records which of tenantseal's own migrations are applied: Schema.Table.
const Table = "schema_migrations"

// FS returns the migration files, named NNNN_name.up.sql and NNNN_name.down.sql as golang-migrate
// expects. The same files run with the stock migrate CLI, once bootstrap (or a [Migrator]) has created
// [Schema]:
//
//	migrate -source file://migrations/sql \
//	    -database 'pgx5://<owner>@host/db?x-migrations-table="tenantseal_migrations"."schema_migrations"&x-migrations-table-quoted=1' up
func FS() fs.FS {
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}

// DirtyError reports a migration that failed part-way and left the schema_migrations table dirty.
type DirtyError struct {
	Version int
}

func (e *DirtyError) Error() string {
	return fmt.Sprintf("migrations: database is dirty at version %d (a migration failed part-way): repair the schema, then run `tenantseal migrate force %d` to mark the last good version and migrate again", e.Version, e.LastGood())
}

// LastGood is the version of tenantseal's migration before Version (versions need not be contiguous),
// 0 when there is none: what `migrate force` marks after a repair.
func (e *DirtyError) LastGood() int {
	last := 0
	for _, m := range List(0) {
		if int(m.Version) < e.Version {
			last = int(m.Version)
		}
	}
	return last
}

// MigrationError is returned when a statement of a migration file fails: it names the file, the
// statement and its line, not the whole file. Use errors.As; Err is the server's error
// (a *pgconn.PgError).
type MigrationError struct {
	// File is the migration file, as named in the set (NNNN_name.up.sql or .down.sql); "" when unknown.
	File string
	// Line is the line in File of the statement, and ErrorLine that of the character the server points
	// at (0 when it points at none).
	Line, ErrorLine int
	// Statement is the failing statement, "" when it cannot be told.
	Statement string
	// RolledBack reports that nothing of the file was applied, and that the database is not left dirty:
	// the file runs as one transaction. Fix it (or what it conflicts with) and migrate again. A file
	// the server rolled back to resolve a deadlock or a serialization conflict with another session
	// has already been run again a few times before this is returned.
	RolledBack bool
	Err        error
}

func (e *MigrationError) Error() string {
	var b strings.Builder
	b.WriteString("migrations: ")
	if e.File == "" {
		b.WriteString("a migration")
	}
	b.WriteString(e.File)
	switch {
	case e.Statement == "":
		b.WriteString(" (statement unknown)")
	case e.ErrorLine > 0 && e.ErrorLine != e.Line:
		fmt.Fprintf(&b, ", statement at line %d (error at line %d)", e.Line, e.ErrorLine)
	default:
		fmt.Fprintf(&b, ", statement at line %d", e.Line)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.Statement != "" {
		fmt.Fprintf(&b, ": %s", excerpt(e.Statement, 160))
	}
	switch {
	case e.RolledBack && conflict(e.Err):
		b.WriteString("; nothing of it was applied: it conflicted with another session, again each time it was run: migrate again when the database is quieter")
	case e.RolledBack:
		b.WriteString("; nothing of it was applied: fix it and migrate again")
	case e.File != "":
		b.WriteString("; it may be applied in part: the database is left dirty")
	}
	return b.String()
}

func (e *MigrationError) Unwrap() error { return e.Err }

// excerpt is s on one line, cut after n characters. The string literals of a statement that names a
// password are left out: the excerpt goes into logs.
func excerpt(s string, n int) string {
	if strings.Contains(strings.ToUpper(s), "PASSWORD") {
		s = elideLiterals(s)
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}

// Options configure a [Migrator].
type Options struct {
	// RolePrefix names the roles that grants and policies refer to. Empty: the database's
	// tenantseal.role_prefix setting (bootstrap stores it), else the owner's name without "_owner".
	RolePrefix string
	// Source holds other migration files than tenantseal's own [FS], named as golang-migrate expects
	// (NNNN_name.up.sql, NNNN_name.down.sql) at its root: an application's set, or the examples'
	// (examples/reference), applied beside tenantseal's. A Source needs its own Table.
	Source fs.FS
	// Table is the golang-migrate table in [Schema] that records which migrations of Source are
	// applied (the stock CLI's x-migrations-table, quoted with the schema). Empty: [Table], which records
	// tenantseal's own.
	Table string
	// OnNotice receives the NOTICE and WARNING messages that migrations raise, for the operator: a
	// migration that keeps something it would otherwise remove says so this way. Nil: they are dropped.
	OnNotice func(*pgconn.Notice)
	// ConfirmLoss names the data that reverts may destroy (see [Loss]): a Down, Goto or Steps that would
	// revert a migration destroying anything not named here fails with a [*LossError] before it runs
	// anything.
	ConfirmLoss []Loss
	// Recorder, if set, receives a tenantseal.EventMigrate for every change of version, with the
	// Principal of the ctx (tenantseal.OperatorPrincipal) as who did it. A revert that destroys data
	// requires it while the database has an audit log, records first, and, when the Recorder is a
	// [Flusher] (audit.Writer), runs only once the record is stored ([ErrNotRecorded] otherwise).
	Recorder tenantseal.Recorder
	// AuditArchive receives the whole audit log as JSON lines (audit.Export), the record of its own end
	// included, before a revert of migration 0004 drops it: required for such a revert.
	AuditArchive io.Writer
}

// Migrator applies a set of migrations: tenantseal's own, or those of Options.Source. Connect as the
// owner role.
type Migrator struct {
	m     *migrate.Migrate
	src   source.Driver
	files fs.FS
	own   bool   // tenantseal's own set
	table string // its golang-migrate table in Schema
	opts  Options
	cc    *pgx.ConnConfig
	conn  *pgx.Conn // for counts, records and the archive; opened on first use
}

// owner runs fn on a connection of the Migrator's own (not golang-migrate's), opened on first use.
func (mg *Migrator) owner(ctx context.Context, fn func(*pgx.Conn) error) error {
	if mg.conn == nil || mg.conn.IsClosed() {
		c, err := pgx.ConnectConfig(ctx, mg.cc)
		if err != nil {
			return fmt.Errorf("migrations: connect: %w", err)
		}
		mg.conn = c
	}
	return fn(mg.conn)
}

// New connects to ownerDSN and prepares the migrations. Close it when done.
func New(ctx context.Context, ownerDSN string, opts Options) (*Migrator, error) {
	cc, err := pgx.ParseConfig(ownerDSN)
	if err != nil {
		return nil, fmt.Errorf("migrations: parse connection string: %w", err)
	}
	return NewWithConfig(ctx, cc, opts)
}

// NewWithConfig is [New] with a parsed connection configuration, which it does not modify.
func NewWithConfig(ctx context.Context, cc *pgx.ConnConfig, opts Options) (*Migrator, error) {
	files := opts.Source
	table := opts.Table
	switch {
	case files == nil && (table == "" || table == Table):
		files, table = FS(), Table
	case files == nil:
		return nil, errors.New("migrations: Options.Table names another set's table: give its Source too")
	case table == "" || table == Table:
		return nil, fmt.Errorf("migrations: a Source of migrations needs its own Table (not %s)", Table)
	}
	cc = cc.Copy()
	if opts.RolePrefix != "" {
		cc.RuntimeParams["tenantseal.role_prefix"] = opts.RolePrefix
	}
	if opts.Source == nil {
		// On Citus every node holds tenantseal's schema of its own, migrated node by node: the
		// coordinator's DDL is not to be sent to the workers (a placeholder setting elsewhere).
		cc.RuntimeParams["citus.enable_ddl_propagation"] = "off"
	}
	if opts.OnNotice != nil {
		cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { opts.OnNotice(n) }
	}
	sqlDB := stdlib.OpenDB(*cc)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("migrations: connect: %w", err)
	}
	if err := prepareSchema(ctx, sqlDB, opts.Source == nil); err != nil {
		sqlDB.Close()
		return nil, err
	}
	drv, err := pgxmigrate.WithInstance(sqlDB, &pgxmigrate.Config{SchemaName: Schema, MigrationsTable: table})
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	src, err := iofs.New(files, ".")
	if err != nil {
		drv.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		drv.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	// A second reader of the same files: golang-migrate's own is busy while it migrates.
	src2, err := iofs.New(files, ".")
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return &Migrator{m: m, src: src2, files: files, own: opts.Source == nil, table: table, opts: opts, cc: cc}, nil
}

// Close releases the connections.
func (mg *Migrator) Close() error {
	srcErr, dbErr := mg.m.Close()
	var connErr error
	if mg.conn != nil {
		connErr = mg.conn.Close(context.Background())
	}
	return errors.Join(srcErr, dbErr, connErr)
}

// Retries of a migration file that lost a deadlock or a serialization conflict with another session
// (the audit writer's security watch reading the audit tables while a revert drops them, say): the
// server rolled the file back whole, so running it again is the change the caller asked for, not a
// repair. Other failures are the file's, and are returned at once.
const (
	conflictRetries = 4
	conflictBackoff = 200 * time.Millisecond
)

// conflict reports whether err is the server cancelling a transaction to resolve a conflict between
// sessions, which running it again can get past.
func conflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") // deadlock_detected, serialization_failure
}

// run runs f, which migrates to target, asking golang-migrate to stop after the current migration when
// ctx is done. A file rolled back whole by a conflict with another session is run again, up to
// conflictRetries times, after a pause: migrating on toward target from the version it left.
func (mg *Migrator) run(ctx context.Context, target uint, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := mg.run1(ctx, f)
		var me *MigrationError
		if attempt > conflictRetries || !errors.As(err, &me) || !me.RolledBack || !conflict(me.Err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * conflictBackoff):
		}
		f = mg.toward(target)
	}
}

// toward migrates from the current version to target, up or down.
func (mg *Migrator) toward(target uint) func() error {
	if target == 0 {
		return mg.m.Down
	}
	return func() error { return mg.m.Migrate(target) }
}

// run1 runs f once (see run).
func (mg *Migrator) run1(ctx context.Context, f func() error) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			select {
			case mg.m.GracefulStop <- true:
			default:
			}
		case <-done:
		}
	}()
	err := f()
	if errors.Is(err, migrate.ErrNoChange) {
		return nil
	}
	var dirty migrate.ErrDirty
	if errors.As(err, &dirty) {
		return &DirtyError{Version: dirty.Version}
	}
	var failed database.Error
	if errors.As(err, &failed) {
		return mg.migrationError(ctx, failed)
	}
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return ctx.Err()
}

// migrationError names the file, statement and line of a failed migration. When the file ran as one
// transaction, nothing of it was applied: the version golang-migrate left dirty is set back to the one
// before, so that migrating again (after a fix) needs no force.
func (mg *Migrator) migrationError(ctx context.Context, failed database.Error) error {
	body := string(failed.Query)
	e := &MigrationError{Err: failed.OrigErr}
	if e.Err == nil {
		e.Err = errors.New(failed.Err)
	}
	// The file is the one with this text whose run leaves the version golang-migrate marked dirty: an up
	// marks its own version, a down the one below.
	dirtyAt, dirty, verr := mg.m.Version()
	if errors.Is(verr, migrate.ErrNilVersion) {
		dirtyAt, dirty, verr = 0, true, nil
	}
	var version uint // of the failed file; 0 when it is not known for sure
	var up bool
	entries, _ := fs.ReadDir(mg.files, ".")
	for _, f := range entries {
		b, err := fs.ReadFile(mg.files, f.Name())
		if err != nil || string(b) != body {
			continue
		}
		num, _, _ := strings.Cut(f.Name(), "_")
		v, _ := strconv.ParseUint(num, 10, 64)
		isUp := strings.HasSuffix(f.Name(), ".up.sql")
		marks := uint(v)
		if !isUp {
			marks = mg.before(uint(v))
		}
		if e.File == "" || (verr == nil && dirty && marks == dirtyAt) {
			e.File, version, up = f.Name(), uint(v), isUp
			if verr != nil || !dirty || marks != dirtyAt {
				version = 0
			}
		}
	}
	var pe *pgconn.PgError
	if errors.As(e.Err, &pe) && pe.Position > 0 {
		if st, line, ok := statementAt(body, int(pe.Position)); ok {
			e.Statement, e.Line, e.ErrorLine = st.text, st.line, line
		}
	}
	if version == 0 || !atomic(body) {
		return e
	}
	if e.Statement == "" && !conflict(e.Err) {
		// The server named no position (an error raised inside a function or DO block): run the statements
		// again one by one in a transaction that is rolled back, until one fails. Not for a conflict with
		// another session, which is no statement's fault and which the run again would only repeat.
		_ = mg.owner(ctx, func(c *pgx.Conn) error {
			tx, err := c.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(context.WithoutCancel(ctx)) // always: this run only looks
			for _, st := range splitStatements(body) {
				if _, err := tx.Exec(ctx, st.text); err != nil {
					e.Statement, e.Line = st.text, st.line
					return err
				}
			}
			return nil
		})
	}
	// Applied before the failing file: for an up, the version below it; for a down, its own.
	restore := int(version)
	if up {
		restore = int(mg.before(version))
		if restore == 0 {
			restore = -1 // golang-migrate's "no version"
		}
	}
	if err := mg.m.Force(restore); err == nil {
		e.RolledBack = true
	}
	return e
}

// before returns the version of the set's migration below v, 0 when there is none.
func (mg *Migrator) before(v uint) uint {
	var last uint
	for _, m := range list(mg.files, 0) {
		if m.Version < v {
			last = m.Version
		}
	}
	return last
}

// Up applies every pending migration.
func (mg *Migrator) Up(ctx context.Context) error {
	return mg.forward(ctx, "up", mg.last(), mg.m.Up)
}

// last is the highest version of the set.
func (mg *Migrator) last() uint {
	l := list(mg.files, 0)
	if len(l) == 0 {
		return 0
	}
	return l[len(l)-1].Version
}

// forward runs f, a change to target that reverts nothing, and records it.
func (mg *Migrator) forward(ctx context.Context, op string, target uint, f func() error) error {
	before, _, err := mg.Version()
	if err != nil {
		return err
	}
	if err := mg.run(ctx, target, f); err != nil {
		return err
	}
	mg.recorded(ctx, before, op)
	return nil
}

// Down reverts n migrations; n <= 0 reverts all. A migration that destroys data is reverted only as
// Options.ConfirmLoss allows (see [Loss]).
func (mg *Migrator) Down(ctx context.Context, n int) error {
	if n <= 0 {
		return mg.revert(ctx, 0, mg.m.Down)
	}
	target, err := mg.below(n)
	if err != nil {
		return err
	}
	return mg.revert(ctx, target, func() error { return mg.m.Steps(-n) })
}

// below returns the version left after reverting the n newest applied migrations.
func (mg *Migrator) below(n int) (uint, error) {
	cur, _, err := mg.Version()
	if err != nil {
		return 0, err
	}
	var applied []uint
	for _, m := range list(mg.files, cur) {
		if m.Applied {
			applied = append(applied, m.Version)
		}
	}
	if n >= len(applied) {
		return 0, nil
	}
	return applied[len(applied)-n-1], nil
}

// Steps applies n migrations up, or -n down when n is negative.
func (mg *Migrator) Steps(ctx context.Context, n int) error {
	if n < 0 {
		return mg.Down(ctx, -n)
	}
	cur, _, err := mg.Version()
	if err != nil {
		return err
	}
	// The version n migrations up (or the last, where there are fewer).
	target, left := cur, n
	for _, m := range list(mg.files, cur) {
		if !m.Applied && left > 0 {
			target, left = m.Version, left-1
		}
	}
	return mg.forward(ctx, "up", target, func() error { return mg.m.Steps(n) })
}

// Goto migrates up or down to version v; 0 reverts every migration.
func (mg *Migrator) Goto(ctx context.Context, v uint) error {
	if v == 0 {
		return mg.Down(ctx, 0)
	}
	if _, _, err := mg.src.ReadUp(v); err != nil {
		return fmt.Errorf("migrations: no migration with version %d", v)
	}
	cur, _, err := mg.Version()
	if err != nil {
		return err
	}
	if v >= cur {
		return mg.forward(ctx, "up", v, func() error { return mg.m.Migrate(v) })
	}
	return mg.revert(ctx, v, func() error { return mg.m.Migrate(v) })
}

// Force marks version v as applied and clean without running anything: the repair step after a dirty
// failure. v = 0 (or -1) means no migration applied.
func (mg *Migrator) Force(ctx context.Context, v int) error {
	if v < -1 {
		return fmt.Errorf("migrations: cannot force version %d", v)
	}
	if v == 0 {
		v = -1 // golang-migrate's "no version"
	}
	if v > 0 {
		if _, _, err := mg.src.ReadUp(uint(v)); err != nil {
			return fmt.Errorf("migrations: no migration with version %d", v)
		}
	}
	return mg.forward(ctx, "force", uint(max(v, 0)), func() error { return mg.m.Force(v) })
}

// Version returns the applied version (0 when none) and whether it is dirty.
func (mg *Migrator) Version() (version uint, dirty bool, err error) {
	v, d, err := mg.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("migrations: %w", err)
	}
	return v, d, nil
}

// Migration is one migration and whether it is applied.
type Migration struct {
	Version uint
	Name    string
	Applied bool
}

// Status lists every migration of the Migrator's set with whether it is applied.
func (mg *Migrator) Status() ([]Migration, bool, error) {
	cur, dirty, err := mg.Version()
	if err != nil {
		return nil, false, err
	}
	return list(mg.files, cur), dirty, nil
}

// List returns tenantseal's embedded migrations, marking as applied those at or below version.
func List(version uint) []Migration { return list(FS(), version) }

func list(files fs.FS, version uint) []Migration {
	var out []Migration
	entries, _ := fs.ReadDir(files, ".")
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".up.sql")
		if !ok {
			continue
		}
		num, title, _ := strings.Cut(name, "_")
		v, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, Migration{Version: uint(v), Name: title, Applied: uint(v) <= version})
	}
	return out
}

// Latest returns the highest embedded version.
func Latest() uint {
	l := List(0)
	if len(l) == 0 {
		return 0
	}
	return l[len(l)-1].Version
}

// prepareSchema creates [Schema] when it is missing. For tenantseal's own set it also adopts the
// migrations table that earlier versions kept in public: public.schema_migrations moves into Schema
// when Schema has none yet and the database holds tenantseal's schema (so the table is tenantseal's,
// not an application's).
func prepareSchema(ctx context.Context, sqlDB *sql.DB, own bool) error {
	schema := pgx.Identifier{Schema}.Sanitize()
	var exists bool
	if err := sqlDB.QueryRowContext(ctx, "SELECT to_regnamespace($1) IS NOT NULL", schema).Scan(&exists); err != nil {
		return fmt.Errorf("migrations: look for schema %s: %w", Schema, err)
	}
	if !exists {
		// Asked only when missing, so that the operator sees no "already exists" notice; a migrator that
		// created it meanwhile is no failure.
		if _, err := sqlDB.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema+"; REVOKE ALL ON SCHEMA "+schema+" FROM PUBLIC"); err != nil {
			return fmt.Errorf("migrations: create schema %s: %w", Schema, err)
		}
	}
	if !own {
		return nil
	}
	var legacy bool
	err := sqlDB.QueryRowContext(ctx, `SELECT to_regclass($1) IS NULL AND to_regclass('public.schema_migrations') IS NOT NULL
		AND to_regclass('tenantseal.context_keys') IS NOT NULL`, pgx.Identifier{Schema, Table}.Sanitize()).Scan(&legacy)
	if err != nil {
		return fmt.Errorf("migrations: look for an earlier migrations table: %w", err)
	}
	if legacy {
		if _, err := sqlDB.ExecContext(ctx, "ALTER TABLE public.schema_migrations SET SCHEMA "+schema); err != nil {
			return fmt.Errorf("migrations: move public.schema_migrations into %s: %w", Schema, err)
		}
	}
	return nil
}
