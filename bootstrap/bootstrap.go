package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/migrations"
)

// DefaultDatabase is the database [Run] creates unless told otherwise.
const DefaultDatabase = "tenantseal"

// Options configure [Run].
type Options struct {
	// Database to create and hand to the owner role, or an existing one. Default DefaultDatabase.
	Database string
	// RolePrefix of the roles. Default db.DefaultRolePrefix.
	RolePrefix string
	// Passwords known from an earlier bootstrap, by role name: an existing role keeps its password when it
	// is listed here, a missing one listed here is created with it. An existing role not listed gets a
	// new password only with ResetPasswords.
	Passwords Passwords
	// ResetPasswords gives existing roles new passwords.
	ResetPasswords bool
	// ResetRoles names the existing roles that get new passwords, the others keeping theirs.
	ResetRoles []string
	// ContextKey known from an earlier bootstrap: kept when the database still accepts it.
	ContextKey *db.ContextKey
	// SkipMigrate stops after roles, database and grants: no migrations and no context key.
	SkipMigrate bool
	// Limits are the session limits set on the app role; zero fields take their defaults.
	Limits SessionLimits
	// TakeOwnership hands an existing database that the owner role does not own, and its schema public,
	// to the owner role and revokes PUBLIC's privileges on both (see [DatabaseOptions]). Without it an
	// existing database keeps its owner and privileges, and Run warns of what PUBLIC may do there.
	TakeOwnership bool
	// NoEventTriggers leaves out the event triggers that record DDL in the audit log
	// ([InstallEventTriggers]), for a deployment that installs them its own way or not at all.
	NoEventTriggers bool
	// Save, if set, receives the connection strings with the passwords Run is about to give the roles
	// (no context key yet), before Run creates a role or sets a password: Run changes nothing unless it
	// returns nil. Store them there, and a bootstrap that fails later loses no password: run again with
	// them in Passwords and it completes.
	Save func(context.Context, *Result) error

	// noContextKey leaves the context key out: a Citus worker gets the coordinator's (RunCluster).
	noContextKey bool
}

// Result holds what an application and a DBA need afterwards. It holds secrets: its String method
// prints none of them.
type Result struct {
	Roles    db.RoleNames
	Database string
	// OwnerDSN, AppDSN, AuditorDSN and AuditWriterDSN are postgres:// URLs with the roles' passwords.
	OwnerDSN       string
	AppDSN         string
	AuditorDSN     string
	AuditWriterDSN string
	// ContextKey signs tenant context tokens (zero with SkipMigrate).
	ContextKey db.ContextKey
	// Actions lists what this run changed, for the operator.
	Actions []string
	// Warnings name the features that the connection's role could not provide and what PUBLIC may still
	// do in a database bootstrap does not own, for the operator.
	Warnings []string
}

func (r *Result) String() string {
	return fmt.Sprintf("bootstrap.Result(database=%s roles=%s,%s,%s,%s key=%s)", r.Database, r.Roles.Owner, r.Roles.App, r.Roles.Auditor,
		r.Roles.AuditWriter, r.ContextKey.ID)
}

// GoString is String, for %#v.
func (r *Result) GoString() string { return r.String() }

// setDSNs sets the roles' connection strings of r from passwords, on the server of conn.
func (r *Result) setDSNs(conn *pgx.Conn, passwords Passwords) error {
	for _, l := range []struct {
		role string
		dsn  *string
	}{{r.Roles.Owner, &r.OwnerDSN}, {r.Roles.App, &r.AppDSN}, {r.Roles.Auditor, &r.AuditorDSN}, {r.Roles.AuditWriter, &r.AuditWriterDSN}} {
		var err error
		if *l.dsn, err = RoleDSN(conn, l.role, passwords[l.role], r.Database); err != nil {
			return err
		}
	}
	return nil
}

// Run does every step as the administrator of superDSN (a superuser, or a role with CREATEROLE and
// CREATEDB), idempotently: [CheckAdmin], [CreateRoles], [CreateDatabase], [SecurePublicSchema] for a
// database the owner role owns, then (unless SkipMigrate) [Migrate] and [EnsureContextKey] as the owner
// and [HideStatistics], and [InstallEventTriggers] unless NoEventTriggers. What needs a superuser and the role has not is done without and named in
// Result.Warnings. Every step can run again: a Run that failed part-way completes when run again with
// the passwords given to Options.Save. It does not log in as the roles: call [CheckLogins] once the
// result is stored, so that a failed login does not lose new passwords.
func Run(ctx context.Context, superDSN string, opts Options) (*Result, error) {
	if opts.Database == "" {
		opts.Database = DefaultDatabase
	}
	if opts.RolePrefix == "" {
		opts.RolePrefix = db.DefaultRolePrefix
	}
	if err := checkIdent("database name", opts.Database); err != nil {
		return nil, err
	}
	if err := checkIdent("role prefix", opts.RolePrefix); err != nil {
		return nil, err
	}
	super, err := dsn.Parse(superDSN)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, super.ConnString())
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	admin, err := CheckAdmin(ctx, conn)
	if err != nil {
		return nil, err
	}

	res := &Result{Roles: db.Roles(opts.RolePrefix), Database: opts.Database}
	passwords, actions, err := CreateRoles(ctx, conn, opts.RolePrefix, RoleOptions{
		Passwords: opts.Passwords, ResetPasswords: opts.ResetPasswords, ResetRoles: opts.ResetRoles, Limits: opts.Limits,
		BeforeSet: func(ctx context.Context, p Passwords) error {
			if opts.Save == nil {
				return nil
			}
			pending := *res
			if err := pending.setDSNs(conn, p); err != nil {
				return err
			}
			return opts.Save(ctx, &pending)
		},
	})
	if err != nil {
		return nil, err
	}
	res.Actions = append(res.Actions, actions...)
	if err := res.setDSNs(conn, passwords); err != nil {
		return nil, err
	}
	if err := afterStep(ctx, "roles"); err != nil {
		return nil, err
	}
	if !admin.Superuser {
		var bypass bool
		if err := conn.QueryRow(ctx, "SELECT rolbypassrls FROM pg_roles WHERE rolname = $1", res.Roles.Probe).Scan(&bypass); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		if !bypass {
			res.Warnings = append(res.Warnings, needsSuperuser("telling a foreign row from a missing one",
				fmt.Sprintf("role %s has no BYPASSRLS, so tenantseal.exists_elsewhere answers false and the audit log records attempts on other tenants' rows as misses", res.Roles.Probe)))
		}
	}
	if actions, err = CreateDatabase(ctx, conn, opts.Database, opts.RolePrefix, DatabaseOptions{TakeOwnership: opts.TakeOwnership}); err != nil {
		return nil, err
	}
	res.Actions = append(res.Actions, actions...)
	if err := afterStep(ctx, "database"); err != nil {
		return nil, err
	}
	_, ours, err := databaseOwnedBy(ctx, conn, opts.Database, res.Roles.Owner)
	if err != nil {
		return nil, err
	}

	in := super.Clone()
	in.Set(dsn.Database, opts.Database)
	superIn, err := pgx.Connect(ctx, in.ConnString())
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect to %s: %w", opts.Database, err)
	}
	defer superIn.Close(context.WithoutCancel(ctx))
	if ours {
		if err := SecurePublicSchema(ctx, superIn, opts.RolePrefix); err != nil {
			return nil, err
		}
	} else {
		exposed, err := PublicPrivileges(ctx, superIn)
		if err != nil {
			return nil, err
		}
		res.Warnings = append(res.Warnings, exposed...)
	}
	if err := afterStep(ctx, "public schema"); err != nil {
		return nil, err
	}
	if opts.SkipMigrate {
		return res, nil
	}

	var notices []string
	err = withCreateOnPublic(ctx, superIn, res.Roles.Owner, func() error {
		actions, notices, err = migrate(ctx, res.OwnerDSN, opts.RolePrefix)
		return err
	})
	res.Warnings = append(res.Warnings, notices...)
	if err != nil {
		return nil, err
	}
	res.Actions = append(res.Actions, actions...)
	if err := afterStep(ctx, "migrate"); err != nil {
		return nil, err
	}
	owner, err := pgx.Connect(ctx, res.OwnerDSN)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect as owner: %w", err)
	}
	defer owner.Close(context.WithoutCancel(ctx))
	if !opts.noContextKey {
		key, created, err := EnsureContextKey(ctx, owner, opts.ContextKey)
		if err != nil {
			return nil, err
		}
		res.ContextKey = key
		if created {
			res.Actions = append(res.Actions, "created context signing key "+key.ID)
		}
	}
	if err := afterStep(ctx, "context key"); err != nil {
		return nil, err
	}
	w, err := verifierWarning(ctx, owner)
	if err != nil {
		return nil, err
	}
	res.Warnings = append(res.Warnings, w...)
	// Without a superuser, the owner changes its tables.
	statsConn := superIn
	if !admin.Superuser {
		statsConn = owner
	}
	n, err := HideStatistics(ctx, statsConn, opts.RolePrefix)
	var nse *NeedsSuperuserError
	if errors.As(err, &nse) {
		res.Warnings = append(res.Warnings, nse.Warning())
	} else if err != nil {
		return nil, err
	}
	if n > 0 {
		res.Actions = append(res.Actions, fmt.Sprintf("removed %d column statistics of tenant tables that collect none", n))
	}
	if !opts.NoEventTriggers {
		actions, err := InstallEventTriggers(ctx, superIn)
		res.Actions = append(res.Actions, actions...)
		if errors.As(err, &nse) {
			res.Warnings = append(res.Warnings, nse.Warning())
		} else if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// withCreateOnPublic runs fn, the migrations, with CREATE on schema public for role: migrations pass
// tables through public (0001 creates tenantseal's registry there, 0006 moves it into schema
// tenantseal). In a database whose schema public role may not create in, it may for as long as fn runs,
// and the privilege is taken back afterwards, also when fn fails. conn is the administrator's, in the
// database.
func withCreateOnPublic(ctx context.Context, conn *pgx.Conn, role string, fn func() error) error {
	var lend bool
	if err := conn.QueryRow(ctx, "SELECT NOT has_schema_privilege($1, 'public', 'CREATE')", role).Scan(&lend); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if !lend {
		return fn()
	}
	ident := pgx.Identifier{role}.Sanitize()
	if _, err := conn.Exec(ctx, "GRANT CREATE ON SCHEMA public TO "+ident); err != nil {
		return fmt.Errorf("bootstrap: let %s create in schema public while it migrates: %w", role, err)
	}
	err := fn()
	if _, rerr := conn.Exec(context.WithoutCancel(ctx), "REVOKE CREATE ON SCHEMA public FROM "+ident); rerr != nil {
		err = errors.Join(err, fmt.Errorf("bootstrap: take back CREATE on schema public from %s: %w", role, rerr))
	}
	return err
}

// stepHookKey carries, in tests only, a function that Run calls after each step: an error stops Run there,
// as a failure of the step would.
type stepHookKey struct{}

func afterStep(ctx context.Context, step string) error {
	if hook, ok := ctx.Value(stepHookKey{}).(func(string) error); ok {
		return hook(step)
	}
	return nil
}

// NeedsSuperuserError is returned by a step that did what it could without a superuser and names the
// feature it could not provide. [Run] turns it into a warning. Use errors.As.
type NeedsSuperuserError struct {
	// Feature is what is missing; Detail what that means here.
	Feature, Detail string
}

func (e *NeedsSuperuserError) Error() string { return "bootstrap: " + e.Warning() }

// Warning is the error's text without the package prefix, for Result.Warnings.
func (e *NeedsSuperuserError) Warning() string { return needsSuperuser(e.Feature, e.Detail) }

func needsSuperuser(feature, detail string) string {
	return fmt.Sprintf("%s needs a superuser: %s; run bootstrap again as one to provide it", feature, detail)
}

// verifierWarning names the C verifier when the database uses the plpgsql one without being told to.
// conn is the owner's, in a migrated database.
func verifierWarning(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	var verifier, setting string
	var available, installed bool
	err := conn.QueryRow(ctx, `SELECT tenantseal.verifier(), coalesce(current_setting('tenantseal.verifier', true), ''),
		EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'tenantseal_verify'),
		EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'tenantseal_verify')`).Scan(&verifier, &setting, &available, &installed)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: which verifier: %w", err)
	}
	if verifier != "plpgsql" || setting == "plpgsql" {
		return nil, nil
	}
	why := "its extension is installed but not used (see tenantseal.select_verifier)"
	switch {
	case !available:
		why = "the server has no extension tenantseal_verify: its files are installed on the server host (make install in ext/tenantseal_verify), which managed PostgreSQL services do not allow"
	case !installed:
		why = "the extension tenantseal_verify is on the server but not installed in the database: CREATE EXTENSION tenantseal_verify as the owner, then SELECT tenantseal.select_verifier()"
	}
	return []string{"the C verifier of tenant contexts is not in use, the plpgsql one is (slower, same answers): " + why}, nil
}

// HideStatistics makes tenant tables collect no column statistics, and removes those collected before:
// the planner uses them for conditions with leakproof operators (=, <, > on text, uuid, numbers, times),
// and EXPLAIN shows its estimates to every role, so most common values and histogram bounds of every
// tenant would be one EXPLAIN away (pg_stats hides them, the planner does not). Tables are hidden that
// tenantseal.protect_table hid (statistics target 0 on any column: columns added since follow), and
// tenantseal's own tables under row-level security that the app role of prefix may read. A table
// protected with hide_statistics => false keeps its statistics. conn is connected to the database as a
// superuser or a member of the tables' owner. Only a superuser may change pg_statistic: without one,
// statistics collected before stay, and when a hidden table has been analyzed HideStatistics returns a
// [*NeedsSuperuserError] after the rest. It returns how many column statistics it removed.
func HideStatistics(ctx context.Context, conn *pgx.Conn, prefix string) (int64, error) {
	admin, err := currentAdmin(ctx, conn)
	if err != nil {
		return 0, err
	}
	rows, err := conn.Query(ctx, `SELECT format('ALTER TABLE %s ', c.oid::regclass) ||
			string_agg(format('ALTER COLUMN %I SET STATISTICS 0', a.attname), ', ' ORDER BY a.attnum)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity AND a.attstattarget <> 0
		  AND (EXISTS (SELECT 1 FROM pg_catalog.pg_attribute z WHERE z.attrelid = c.oid AND z.attnum > 0 AND z.attstattarget = 0)
		       OR (c.relnamespace = 'tenantseal'::regnamespace AND has_table_privilege($1, c.oid, 'SELECT')))
		GROUP BY c.oid ORDER BY c.oid`, db.Roles(prefix).App)
	if err != nil {
		return 0, fmt.Errorf("bootstrap: hide statistics: %w", err)
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("bootstrap: hide statistics: %w", err)
	}
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return 0, fmt.Errorf("bootstrap: hide statistics: %w", err)
		}
	}
	if !admin.Superuser {
		// pg_statistic is a superuser's only, and pg_stats shows no table under forced row-level security:
		// a hidden table that was ever analyzed may still hold what was collected before.
		rows, err := conn.Query(ctx, `SELECT c.oid::regclass::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
			WHERE c.relrowsecurity AND (s.last_analyze IS NOT NULL OR s.last_autoanalyze IS NOT NULL)
			  AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND a.attstattarget = 0)
			ORDER BY 1`)
		if err != nil {
			return 0, fmt.Errorf("bootstrap: hide statistics: %w", err)
		}
		analyzed, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return 0, fmt.Errorf("bootstrap: hide statistics: %w", err)
		}
		if len(analyzed) > 0 {
			return 0, &NeedsSuperuserError{Feature: "removing column statistics collected before a table was hidden",
				Detail: fmt.Sprintf("%s were analyzed and may still hold them", strings.Join(analyzed, ", "))}
		}
		return 0, nil
	}
	tag, err := conn.Exec(ctx, `DELETE FROM pg_catalog.pg_statistic s USING pg_catalog.pg_attribute a, pg_catalog.pg_class c
		WHERE a.attrelid = s.starelid AND a.attnum = s.staattnum AND a.attstattarget = 0
		  AND c.oid = s.starelid AND c.relrowsecurity`)
	if err != nil {
		return 0, fmt.Errorf("bootstrap: hide statistics: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Migrate applies tenantseal's pending migrations as the owner of ownerDSN, with the roles of prefix,
// and returns what it changed.
func Migrate(ctx context.Context, ownerDSN, prefix string) ([]string, error) {
	actions, _, err := migrate(ctx, ownerDSN, prefix)
	return actions, err
}

// migrate is Migrate that also returns the warnings the migrations raised.
func migrate(ctx context.Context, ownerDSN, prefix string) (actions, warnings []string, err error) {
	var mu sync.Mutex
	mg, err := migrations.New(ctx, ownerDSN, migrations.Options{RolePrefix: prefix, OnNotice: func(n *pgconn.Notice) {
		if n.Severity == "WARNING" {
			mu.Lock()
			warnings = append(warnings, strings.TrimPrefix(n.Message, "tenantseal: "))
			mu.Unlock()
		}
	}})
	if err != nil {
		return nil, nil, err
	}
	defer mg.Close()
	before, _, _ := mg.Version()
	err = mg.Up(ctx)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		return nil, warnings, err
	}
	after, _, err := mg.Version()
	if err != nil || after == before {
		return nil, warnings, nil
	}
	return []string{fmt.Sprintf("migrated from version %d to %d", before, after)}, warnings, nil
}

// carried are the settings of the superuser's connection string that the roles' keep: where the server
// is, TLS and timeouts.
var carried = []string{dsn.Host, dsn.Port, "sslmode", "sslrootcert", "sslcert", "sslkey", "sslsni", dsn.ConnectTimeout, "target_session_attrs"}

// RoleDSN returns a postgres:// URL for role with password on database, on the server conn reached and
// with the TLS and timeout settings of conn's connection string.
func RoleDSN(conn *pgx.Conn, role, password, database string) (string, error) {
	cfg := conn.Config()
	super, err := dsn.Parse(cfg.ConnString())
	if err != nil {
		return "", err
	}
	var out dsn.Settings
	for _, k := range carried {
		if super.Has(k) {
			out.Set(k, super.Get(k))
		}
	}
	// Settings from the environment or the defaults are written out: the roles may run elsewhere.
	if !out.Has(dsn.Host) {
		out.Set(dsn.Host, cfg.Host)
	}
	if !out.Has(dsn.Port) {
		out.Set(dsn.Port, strconv.Itoa(int(cfg.Port)))
	}
	out.Set(dsn.User, role)
	out.Set(dsn.Password, password)
	out.Set(dsn.Database, database)
	return out.URL(), nil
}

// LoginError is returned by [CheckLogins] when the server refuses a role's password. Use errors.As.
type LoginError struct {
	Role string
	Err  error
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("bootstrap: the server refuses the password of role %s: reset it (ResetPasswords)", e.Role)
}

func (e *LoginError) Unwrap() error { return e.Err }

// CheckLogins logs in once with each connection string of res: the passwords that Run reused were never
// checked by the server. A refused password is a [*LoginError].
func CheckLogins(ctx context.Context, res *Result) error {
	for _, l := range []struct{ role, dsn string }{
		{res.Roles.Owner, res.OwnerDSN}, {res.Roles.App, res.AppDSN}, {res.Roles.Auditor, res.AuditorDSN},
		{res.Roles.AuditWriter, res.AuditWriterDSN},
	} {
		cfg, err := pgx.ParseConfig(l.dsn)
		if err != nil {
			return fmt.Errorf("bootstrap: %s: %w", l.role, err)
		}
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = db.DefaultConnectTimeout
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "28P01" {
				return &LoginError{Role: l.role, Err: err}
			}
			return fmt.Errorf("bootstrap: log in as %s: %w", l.role, err)
		}
		conn.Close(context.WithoutCancel(ctx))
	}
	return nil
}
