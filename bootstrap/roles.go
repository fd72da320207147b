package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

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
}

// loginRoles are the roles that log in, with the attributes each must have.
func loginRoles(r db.RoleNames) []struct{ name, attrs string } {
	return []struct{ name, attrs string }{
		// The owner logs in only to run migrations and administer tenants.
		{r.Owner, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"},
		// The app role: row-level security must always apply to it.
		{r.App, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"},
		{r.Auditor, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"},
	}
}

const probeAttrs = "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS NOINHERIT"

// CreateRoles creates the owner, app and auditor roles of prefix (see [db.Roles]) with new passwords, or
// re-asserts the attributes of those that exist, and the probe role that owns the one function that
// looks past row-level security. It fails when the app or auditor role is a member of the owner or the
// probe. It returns the login passwords and what it changed.
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
		case opts.ResetPasswords || !known:
			if !opts.ResetPasswords {
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
	// The app and auditor roles must never hold the owner's or the probe's privileges.
	for _, member := range []string{r.App, r.Auditor} {
		for _, of := range []string{r.Owner, r.Probe} {
			var isMember bool
			if err := conn.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", member, of).Scan(&isMember); err != nil {
				return nil, nil, fmt.Errorf("bootstrap: %w", err)
			}
			if isMember {
				return nil, nil, fmt.Errorf("bootstrap: role %s is a member of %s: run REVOKE %s FROM %s first", member, of, of, member)
			}
		}
	}
	return passwords, actions, nil
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
