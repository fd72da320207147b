package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"strconv"

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
	// Database to create and hand to the owner role. Default DefaultDatabase.
	Database string
	// RolePrefix of the roles. Default db.DefaultRolePrefix.
	RolePrefix string
	// Passwords known from an earlier bootstrap, by role name: an existing role keeps its password when it
	// is listed here. An existing role not listed gets a new password only with ResetPasswords.
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
}

func (r *Result) String() string {
	return fmt.Sprintf("bootstrap.Result(database=%s roles=%s,%s,%s,%s key=%s)", r.Database, r.Roles.Owner, r.Roles.App, r.Roles.Auditor,
		r.Roles.AuditWriter, r.ContextKey.ID)
}

// GoString is String, for %#v.
func (r *Result) GoString() string { return r.String() }

// Run does every step as the superuser of superDSN, idempotently: [CheckSuperuser], [CreateRoles],
// [CreateDatabase], [SecurePublicSchema], then (unless SkipMigrate) [Migrate] and [EnsureContextKey] as
// the owner and [HideStatistics]. It does not log in as the roles: call [CheckLogins] once the result is stored, so that a
// failed login does not lose new passwords.
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
	if err := CheckSuperuser(ctx, conn); err != nil {
		return nil, err
	}

	res := &Result{Roles: db.Roles(opts.RolePrefix), Database: opts.Database}
	passwords, actions, err := CreateRoles(ctx, conn, opts.RolePrefix, RoleOptions{Passwords: opts.Passwords, ResetPasswords: opts.ResetPasswords, ResetRoles: opts.ResetRoles, Limits: opts.Limits})
	if err != nil {
		return nil, err
	}
	res.Actions = append(res.Actions, actions...)
	if actions, err = CreateDatabase(ctx, conn, opts.Database, opts.RolePrefix); err != nil {
		return nil, err
	}
	res.Actions = append(res.Actions, actions...)
	for _, r := range []struct {
		role string
		dsn  *string
	}{{res.Roles.Owner, &res.OwnerDSN}, {res.Roles.App, &res.AppDSN}, {res.Roles.Auditor, &res.AuditorDSN}, {res.Roles.AuditWriter, &res.AuditWriterDSN}} {
		if *r.dsn, err = RoleDSN(conn, r.role, passwords[r.role], opts.Database); err != nil {
			return nil, err
		}
	}

	in := super.Clone()
	in.Set(dsn.Database, opts.Database)
	superIn, err := pgx.Connect(ctx, in.ConnString())
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect to %s: %w", opts.Database, err)
	}
	defer superIn.Close(context.WithoutCancel(ctx))
	if err := SecurePublicSchema(ctx, superIn, opts.RolePrefix); err != nil {
		return nil, err
	}
	if opts.SkipMigrate {
		return res, nil
	}

	if actions, err = Migrate(ctx, res.OwnerDSN, opts.RolePrefix); err != nil {
		return nil, err
	}
	res.Actions = append(res.Actions, actions...)
	owner, err := pgx.Connect(ctx, res.OwnerDSN)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect as owner: %w", err)
	}
	defer owner.Close(context.WithoutCancel(ctx))
	key, created, err := EnsureContextKey(ctx, owner, opts.ContextKey)
	if err != nil {
		return nil, err
	}
	res.ContextKey = key
	if created {
		res.Actions = append(res.Actions, "created context signing key "+key.ID)
	}
	n, err := HideStatistics(ctx, superIn, opts.RolePrefix)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		res.Actions = append(res.Actions, fmt.Sprintf("removed %d column statistics of tenant tables that collect none", n))
	}
	return res, nil
}

// HideStatistics makes tenant tables collect no column statistics, and removes those collected before:
// the planner uses them for conditions with leakproof operators (=, <, > on text, uuid, numbers, times),
// and EXPLAIN shows its estimates to every role, so most common values and histogram bounds of every
// tenant would be one EXPLAIN away (pg_stats hides them, the planner does not). Tables are hidden that
// tenantseal.protect_table hid (statistics target 0 on any column: columns added since follow), and
// tenantseal's own tables under row-level security that the app role of prefix may read. A table
// protected with hide_statistics => false keeps its statistics. conn is a superuser's, connected to the
// database: only a superuser may change pg_statistic. It returns how many column statistics it removed.
func HideStatistics(ctx context.Context, conn *pgx.Conn, prefix string) (int64, error) {
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
	mg, err := migrations.New(ctx, ownerDSN, migrations.Options{RolePrefix: prefix})
	if err != nil {
		return nil, err
	}
	defer mg.Close()
	before, _, _ := mg.Version()
	if err := mg.Up(ctx); err != nil {
		return nil, err
	}
	after, _, err := mg.Version()
	if err != nil || after == before {
		return nil, nil
	}
	return []string{fmt.Sprintf("migrated from version %d to %d", before, after)}, nil
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
