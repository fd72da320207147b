package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

// identPattern is what database names and role prefixes must match: plain lower-case identifiers, short
// enough for the role suffixes.
var identPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

func checkIdent(what, name string) error {
	if !identPattern.MatchString(name) {
		return fmt.Errorf("bootstrap: %s %q must match %s", what, name, identPattern)
	}
	return nil
}

// CheckSuperuser fails unless conn's role is a superuser: it creates roles and databases.
func CheckSuperuser(ctx context.Context, conn *pgx.Conn) error {
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if !super {
		return errors.New("bootstrap: the role must be a superuser (it creates roles and the database)")
	}
	return nil
}

// Passwords are login passwords by role name. Printing them shows the role names only.
type Passwords map[string]string

func (p Passwords) String() string {
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	slices.Sort(names)
	return "Passwords(" + strings.Join(names, ",") + ")"
}

// GoString is String, for %#v.
func (p Passwords) GoString() string { return p.String() }

// RoleOptions configure [CreateRoles].
type RoleOptions struct {
	// Passwords known from an earlier bootstrap: an existing role keeps its password when it is listed
	// here. An existing role not listed gets a new password only with ResetPasswords.
	Passwords Passwords
	// ResetPasswords gives existing roles new passwords.
	ResetPasswords bool
	// ResetRoles names the existing roles that get new passwords, the others keeping theirs.
	ResetRoles []string
	// Limits are the session limits of the app role; zero fields take their defaults.
	Limits SessionLimits
}

// loginRoles are the roles that log in, with the attributes each must have.
func loginRoles(r db.RoleNames) []struct{ name, attrs string } {
	return []struct{ name, attrs string }{
		// The owner logs in only to run migrations and administer tenants.
		{r.Owner, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"},
		// The app role: row-level security must always apply to it.
		{r.App, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"},
		{r.Auditor, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"},
		// The audit writer: appends to the audit log, nothing else. A role of its own, so that the app
		// role (SQL injected into the application) can neither append nor signal the writer's sessions.
		{r.AuditWriter, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"},
	}
}

const probeAttrs = "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS NOINHERIT"

// CreateRoles creates the owner, app, auditor and audit writer roles of prefix (see [db.Roles]) with new
// passwords, or re-asserts the attributes of those that exist, the probe role that owns the one function
// that looks past row-level security, and the session limits of the app role ([SetSessionLimits]). It
// fails when the app, auditor or writer role is a member of the owner, the probe, another of them or
// pg_signal_backend. It returns the login passwords and what it changed.
func CreateRoles(ctx context.Context, conn *pgx.Conn, prefix string, opts RoleOptions) (Passwords, []string, error) {
	if err := checkIdent("role prefix", prefix); err != nil {
		return nil, nil, err
	}
	r := db.Roles(prefix)
	passwords := Passwords{}
	var actions []string
	for _, role := range loginRoles(r) {
		exists, err := roleExists(ctx, conn, role.name)
		if err != nil {
			return nil, nil, err
		}
		pw, known := opts.Passwords[role.name]
		ident := pgx.Identifier{role.name}.Sanitize()
		switch {
		case !exists:
			pw = newSecret(24)
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s %s PASSWORD %s", ident, role.attrs, quoteLiteral(pw))); err != nil {
				return nil, nil, fmt.Errorf("bootstrap: create role %s: %w", role.name, err)
			}
			actions = append(actions, "created role "+role.name)
		case opts.ResetPasswords || slices.Contains(opts.ResetRoles, role.name) || !known:
			if !opts.ResetPasswords && !slices.Contains(opts.ResetRoles, role.name) {
				return nil, nil, &UnknownPasswordError{Role: role.name}
			}
			pw = newSecret(24)
			if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s %s PASSWORD %s", ident, role.attrs, quoteLiteral(pw))); err != nil {
				return nil, nil, fmt.Errorf("bootstrap: alter role %s: %w", role.name, err)
			}
			actions = append(actions, "reset the password of role "+role.name)
		default:
			// Re-assert the attributes: an earlier hand edit must not leave the app role able to skip RLS.
			if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s %s", ident, role.attrs)); err != nil {
				return nil, nil, fmt.Errorf("bootstrap: alter role %s: %w", role.name, err)
			}
		}
		passwords[role.name] = pw
	}

	// The owner is a member of the probe so that migrations can give it its function.
	exists, err := roleExists(ctx, conn, r.Probe)
	if err != nil {
		return nil, nil, err
	}
	probe := pgx.Identifier{r.Probe}.Sanitize()
	if !exists {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s %s", probe, probeAttrs)); err != nil {
			return nil, nil, fmt.Errorf("bootstrap: create role %s: %w", r.Probe, err)
		}
		actions = append(actions, "created role "+r.Probe)
	} else if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s %s", probe, probeAttrs)); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: alter role %s: %w", r.Probe, err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", probe, pgx.Identifier{r.Owner}.Sanitize())); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: grant %s to %s: %w", r.Probe, r.Owner, err)
	}
	// The app, auditor and writer roles must never hold the owner's or the probe's privileges, the app role
	// never the writer's, nor may any of them signal another role's sessions.
	for _, m := range []struct {
		member string
		of     []string
	}{
		{r.App, []string{r.Owner, r.Probe, r.AuditWriter, r.Auditor, "pg_signal_backend"}},
		{r.Auditor, []string{r.Owner, r.Probe, r.AuditWriter, r.App, "pg_signal_backend"}},
		{r.AuditWriter, []string{r.Owner, r.Probe, r.App, r.Auditor, "pg_signal_backend"}},
	} {
		for _, of := range m.of {
			var isMember bool
			if err := conn.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", m.member, of).Scan(&isMember); err != nil {
				return nil, nil, fmt.Errorf("bootstrap: %w", err)
			}
			if isMember {
				return nil, nil, fmt.Errorf("bootstrap: role %s is a member of %s: run REVOKE %s FROM %s first", m.member, of, of, m.member)
			}
		}
	}
	limited, err := SetSessionLimits(ctx, conn, r, opts.Limits)
	if err != nil {
		return nil, nil, err
	}
	return passwords, append(actions, limited...), nil
}

// SessionLimits bound what one session of the app role can hold, set on the role (ALTER ROLE ... SET) so
// that every new session starts with them. A session can still change them for itself (they are
// user-settable parameters, and PostgreSQL lets a role ALTER ROLE itself): db.Pool resets every
// session-level change after each use and reports role-level changes; see the threat model.
type SessionLimits struct {
	// LockTimeout bounds how long a statement waits for a lock: behind a LOCK TABLE of another session,
	// a request fails after it instead of queueing. Default DefaultLockTimeout.
	LockTimeout time.Duration
	// StatementTimeout bounds one statement, and so how long it holds its locks. Default
	// DefaultStatementTimeout.
	StatementTimeout time.Duration
	// IdleInTransactionTimeout ends a session that idles in an open transaction, releasing its locks.
	// Default DefaultIdleInTransactionTimeout.
	IdleInTransactionTimeout time.Duration
}

// Defaults of [SessionLimits].
const (
	DefaultLockTimeout              = 5 * time.Second
	DefaultStatementTimeout         = 30 * time.Second
	DefaultIdleInTransactionTimeout = time.Minute
)

// Settings returns the role-level settings of l, defaults filled in: parameter name to value in
// milliseconds.
func (l SessionLimits) Settings() map[string]string {
	setDefault(&l.LockTimeout, DefaultLockTimeout)
	setDefault(&l.StatementTimeout, DefaultStatementTimeout)
	setDefault(&l.IdleInTransactionTimeout, DefaultIdleInTransactionTimeout)
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	return map[string]string{
		"lock_timeout":                        ms(l.LockTimeout),
		"statement_timeout":                   ms(l.StatementTimeout),
		"idle_in_transaction_session_timeout": ms(l.IdleInTransactionTimeout),
	}
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// SetSessionLimits gives the app role of r exactly the role-level settings of l (see
// [SessionLimits.Settings]): any other setting on the role, in any database, is removed. The audit writer
// role gets none but a lock timeout of the same bound, so that it never waits long for the chain head.
// conn is a superuser's. It returns what it changed.
func SetSessionLimits(ctx context.Context, conn *pgx.Conn, r db.RoleNames, l SessionLimits) ([]string, error) {
	want := map[string]map[string]string{
		r.App:         l.Settings(),
		r.AuditWriter: {"lock_timeout": l.Settings()["lock_timeout"]},
	}
	var actions []string
	for _, role := range []string{r.App, r.AuditWriter} {
		var got map[string]string
		var dbs []string // databases with settings of the role of their own (ALTER ROLE ... IN DATABASE)
		err := conn.QueryRow(ctx, `SELECT
			coalesce((SELECT jsonb_object_agg(split_part(c, '=', 1), substr(c, strpos(c, '=') + 1))
			            FROM pg_db_role_setting s, unnest(s.setconfig) c WHERE s.setrole = r.oid AND s.setdatabase = 0), '{}'),
			coalesce((SELECT array_agg(d.datname::text ORDER BY d.datname)
			            FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE s.setrole = r.oid), '{}')
			FROM pg_roles r WHERE r.rolname = $1`, role).Scan(&got, &dbs)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: read the settings of role %s: %w", role, err)
		}
		if maps.Equal(got, want[role]) && len(dbs) == 0 {
			continue
		}
		ident := pgx.Identifier{role}.Sanitize()
		stmts := []string{fmt.Sprintf("ALTER ROLE %s RESET ALL", ident)}
		for _, d := range dbs {
			stmts = append(stmts, fmt.Sprintf("ALTER ROLE %s IN DATABASE %s RESET ALL", ident, pgx.Identifier{d}.Sanitize()))
		}
		for _, name := range slices.Sorted(maps.Keys(want[role])) {
			stmts = append(stmts, fmt.Sprintf("ALTER ROLE %s SET %s = %s", ident, name, quoteLiteral(want[role][name])))
		}
		for _, stmt := range stmts {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
		}
		actions = append(actions, fmt.Sprintf("set the session limits of role %s (%s)", role, settingsText(want[role])))
	}
	return actions, nil
}

func settingsText(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k]+"ms")
	}
	return strings.Join(parts, ", ")
}

// UnknownPasswordError is returned by [CreateRoles] (and [Run]) when a role exists, its password is not
// in [RoleOptions].Passwords and ResetPasswords is off. Use errors.As.
type UnknownPasswordError struct {
	Role string
}

func (e *UnknownPasswordError) Error() string {
	return fmt.Sprintf("bootstrap: role %s exists but its password is unknown: give it, or reset it with ResetPasswords", e.Role)
}

func roleExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("bootstrap: %w", err)
	}
	return exists, nil
}

func newSecret(nBytes int) string {
	b := make([]byte, nBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
