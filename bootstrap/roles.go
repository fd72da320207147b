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

// CheckSuperuser fails unless conn's role is a superuser: what [HideStatistics] needs to remove collected
// statistics, and what gives the probe role BYPASSRLS.
func CheckSuperuser(ctx context.Context, conn *pgx.Conn) error {
	a, err := currentAdmin(ctx, conn)
	if err != nil {
		return err
	}
	if !a.Superuser {
		return fmt.Errorf("bootstrap: role %s must be a superuser", a.Role)
	}
	return nil
}

// Admin is what the role of a bootstrap connection may do.
type Admin struct {
	Role                 string
	Superuser            bool
	createRole, createDB bool
}

// CheckAdmin fails unless conn's role is a superuser or has CREATEROLE and CREATEDB, the administrator
// role of managed PostgreSQL services: that is enough for every step, and what needs a superuser
// degrades (see the package documentation).
func CheckAdmin(ctx context.Context, conn *pgx.Conn) (Admin, error) {
	a, err := currentAdmin(ctx, conn)
	if err != nil {
		return Admin{}, err
	}
	if !a.Superuser && !(a.createRole && a.createDB) {
		return Admin{}, fmt.Errorf("bootstrap: role %s must be a superuser or have CREATEROLE and CREATEDB (it creates roles and the database)", a.Role)
	}
	return a, nil
}

// currentAdmin reads the attributes of conn's role.
func currentAdmin(ctx context.Context, conn *pgx.Conn) (Admin, error) {
	var a Admin
	err := conn.QueryRow(ctx, "SELECT rolname::text, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user").
		Scan(&a.Role, &a.Superuser, &a.createRole, &a.createDB)
	if err != nil {
		return Admin{}, fmt.Errorf("bootstrap: %w", err)
	}
	return a, nil
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
	// here, and a missing role listed here is created with it (a bootstrap that stopped after storing
	// its passwords resumes). An existing role not listed gets a new password only with ResetPasswords.
	Passwords Passwords
	// ResetPasswords gives existing roles new passwords.
	ResetPasswords bool
	// ResetRoles names the existing roles that get new passwords, the others keeping theirs.
	ResetRoles []string
	// Limits are the session limits of the app role; zero fields take their defaults.
	Limits SessionLimits
	// BeforeSet, if set, receives the login passwords, new ones included, before any role is created or
	// given a new password: nothing is changed unless it returns nil. A store that writes them there
	// never loses one. It is not called when no password changes.
	BeforeSet func(context.Context, Passwords) error
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

// superuserAttrs are the attributes that only a superuser may give, take or even name in ALTER ROLE
// (PostgreSQL 15 refuses NOSUPERUSER from a CREATEROLE role).
var superuserAttrs = []string{"SUPERUSER", "REPLICATION", "BYPASSRLS"}

// grantable returns attrs without those only a superuser may set, unless admin is one.
func grantable(attrs string, admin Admin) string {
	if admin.Superuser {
		return attrs
	}
	var out []string
	for _, a := range strings.Fields(attrs) {
		if !slices.Contains(superuserAttrs, strings.TrimPrefix(a, "NO")) {
			out = append(out, a)
		}
	}
	return strings.Join(out, " ")
}

// rolePlan is what CreateRoles does to one login role.
type rolePlan struct {
	name, attrs string
	exists      bool
	password    string
	newPassword bool // created, or given a new password
}

// CreateRoles creates the owner, app, auditor and audit writer roles of prefix (see [db.Roles]) with new
// passwords, or re-asserts the attributes of those that exist, the probe role that owns the one function
// that looks past row-level security, and the session limits of the app role ([SetSessionLimits]). It
// fails, before it changes anything, when a password is unknown, when the app, auditor or writer role is
// a member of the owner, the probe, another of them or pg_signal_backend, or has an attribute that only a
// superuser can take (conn's role is not one). conn is a superuser's or a CREATEROLE role's: without a
// superuser the probe role gets no BYPASSRLS. It returns the login passwords and what it changed.
func CreateRoles(ctx context.Context, conn *pgx.Conn, prefix string, opts RoleOptions) (Passwords, []string, error) {
	if err := checkIdent("role prefix", prefix); err != nil {
		return nil, nil, err
	}
	admin, err := CheckAdmin(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	r := db.Roles(prefix)
	plans, err := planRoles(ctx, conn, r, opts, admin)
	if err != nil {
		return nil, nil, err
	}
	passwords := Passwords{}
	changes := false
	for _, p := range plans {
		passwords[p.name] = p.password
		changes = changes || p.newPassword
	}
	if changes && opts.BeforeSet != nil {
		if err := opts.BeforeSet(ctx, maps.Clone(passwords)); err != nil {
			return nil, nil, fmt.Errorf("bootstrap: store the passwords before setting them: %w", err)
		}
	}

	var actions []string
	for _, p := range plans {
		ident := pgx.Identifier{p.name}.Sanitize()
		var stmt, action, verifier string
		if !p.exists || p.newPassword {
			// The server gets the SCRAM verifier, never the password (see scramVerifier).
			v, err := scramVerifier(p.password)
			if err != nil {
				return nil, nil, err
			}
			verifier = v
		}
		switch {
		case !p.exists:
			stmt = fmt.Sprintf("CREATE ROLE %s %s PASSWORD %s", ident, grantable(p.attrs, admin), quoteLiteral(verifier))
			action = "created role " + p.name
		case p.newPassword:
			stmt = fmt.Sprintf("ALTER ROLE %s %s PASSWORD %s", ident, grantable(p.attrs, admin), quoteLiteral(verifier))
			action = "reset the password of role " + p.name
		default:
			// Re-assert the attributes: an earlier hand edit must not leave the app role able to skip RLS.
			stmt = fmt.Sprintf("ALTER ROLE %s %s", ident, grantable(p.attrs, admin))
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, nil, fmt.Errorf("bootstrap: %s role %s: %w", strings.ToLower(strings.Fields(stmt)[0]), p.name, err)
		}
		if action != "" {
			actions = append(actions, action)
		}
	}

	// The owner is a member of the probe so that migrations can give it its function.
	exists, err := roleExists(ctx, conn, r.Probe)
	if err != nil {
		return nil, nil, err
	}
	probe := pgx.Identifier{r.Probe}.Sanitize()
	if !exists {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s %s", probe, grantable(probeAttrs, admin))); err != nil {
			return nil, nil, fmt.Errorf("bootstrap: create role %s: %w", r.Probe, err)
		}
		actions = append(actions, "created role "+r.Probe)
	} else if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s %s", probe, grantable(probeAttrs, admin))); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: alter role %s: %w", r.Probe, err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", probe, pgx.Identifier{r.Owner}.Sanitize())); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: grant %s to %s: %w", r.Probe, r.Owner, err)
	}
	limited, err := SetSessionLimits(ctx, conn, r, opts.Limits)
	if err != nil {
		return nil, nil, err
	}
	return passwords, append(actions, limited...), nil
}

// planRoles decides, reading only, what CreateRoles does to each login role, and refuses what it could
// not finish: an unknown password, a forbidden membership, an attribute that conn's role cannot take.
func planRoles(ctx context.Context, conn *pgx.Conn, r db.RoleNames, opts RoleOptions, admin Admin) ([]rolePlan, error) {
	var plans []rolePlan
	for _, role := range loginRoles(r) {
		p := rolePlan{name: role.name, attrs: role.attrs}
		var super, replication, bypass bool
		err := conn.QueryRow(ctx, "SELECT rolsuper, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = $1", role.name).Scan(&super, &replication, &bypass)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("bootstrap: %w", err)
		default:
			p.exists = true
		}
		known := false
		p.password, known = opts.Passwords[role.name]
		reset := opts.ResetPasswords || slices.Contains(opts.ResetRoles, role.name)
		switch {
		case !p.exists && known:
			// Stored by an earlier run that stopped before it created the role.
		case !p.exists, reset:
			p.password, p.newPassword = newSecret(24), true
		case !known:
			return nil, &UnknownPasswordError{Role: role.name}
		}
		if p.exists && !admin.Superuser {
			for _, a := range []struct {
				has  bool
				name string
			}{{super, "SUPERUSER"}, {replication, "REPLICATION"}, {bypass, "BYPASSRLS"}} {
				if a.has {
					return nil, fmt.Errorf("bootstrap: role %s has %s, which only a superuser can take: run ALTER ROLE %s NO%s as one, then bootstrap again",
						role.name, a.name, role.name, a.name)
				}
			}
		}
		plans = append(plans, p)
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
			err := conn.QueryRow(ctx, `SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles a, pg_roles b WHERE a.rolname = $1 AND b.rolname = $2)
				THEN pg_has_role($1, $2, 'MEMBER') ELSE false END`, m.member, of).Scan(&isMember)
			if err != nil {
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
			if isMember {
				return nil, fmt.Errorf("bootstrap: role %s is a member of %s: run REVOKE %s FROM %s first", m.member, of, of, m.member)
			}
		}
	}
	return plans, nil
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
