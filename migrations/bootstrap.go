package migrations

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal/internal/token"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

// BootstrapOptions configure [Bootstrap].
type BootstrapOptions struct {
	// Database to create and hand to the owner role. Default "tenantseal".
	Database string
	// RolePrefix of the three roles. Default db.DefaultRolePrefix.
	RolePrefix string
	// Passwords known from an earlier bootstrap, by role name: an existing role keeps its password when it
	// is listed here. An existing role not listed gets a new password only with ResetPasswords.
	Passwords map[string]string
	// ResetPasswords gives existing roles new passwords.
	ResetPasswords bool
	// ContextKey known from an earlier bootstrap: kept when the database still accepts it.
	ContextKey *db.ContextKey
	// SkipMigrate stops after roles, database and grants: no migrations and no context key.
	SkipMigrate bool
}

// BootstrapResult holds what an application and a DBA need afterwards. It holds secrets: its String
// method prints none of them.
type BootstrapResult struct {
	Roles      db.RoleNames
	Database   string
	OwnerDSN   string
	AppDSN     string
	AuditorDSN string
	// ContextKey signs tenant context tokens (zero with SkipMigrate).
	ContextKey db.ContextKey
	// Actions lists what this run changed, for the operator.
	Actions []string
}

func (r *BootstrapResult) String() string {
	return fmt.Sprintf("BootstrapResult(database=%s roles=%s,%s,%s key=%s)", r.Database, r.Roles.Owner, r.Roles.App, r.Roles.Auditor, r.ContextKey.ID)
}

var identPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// Bootstrap idempotently creates the roles, the database and its grants as a superuser, then (unless
// SkipMigrate) applies the migrations as the owner and makes sure a current context signing key exists.
func Bootstrap(ctx context.Context, superDSN string, opts BootstrapOptions) (*BootstrapResult, error) {
	if opts.Database == "" {
		opts.Database = "tenantseal"
	}
	if opts.RolePrefix == "" {
		opts.RolePrefix = db.DefaultRolePrefix
	}
	if !identPattern.MatchString(opts.Database) {
		return nil, fmt.Errorf("bootstrap: database name %q must match %s", opts.Database, identPattern)
	}
	if !identPattern.MatchString(opts.RolePrefix) {
		return nil, fmt.Errorf("bootstrap: role prefix %q must match %s", opts.RolePrefix, identPattern)
	}
	res := &BootstrapResult{Roles: db.Roles(opts.RolePrefix), Database: opts.Database}

	conn, err := pgx.Connect(ctx, superDSN)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if !super {
		return nil, errors.New("bootstrap: the --dsn role must be a superuser (it creates roles and the database)")
	}

	r := res.Roles
	passwords := map[string]string{}
	for _, role := range []struct {
		name, attrs string
	}{
		// The owner logs in only to run migrations and administer tenants.
		{r.Owner, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"},
		// The app role: row-level security must always apply to it.
		{r.App, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"},
		{r.Auditor, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"},
	} {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role.name).Scan(&exists); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		pw, known := opts.Passwords[role.name]
		ident := pgx.Identifier{role.name}.Sanitize()
		switch {
		case !exists:
			pw = newSecret(24)
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s %s PASSWORD %s", ident, role.attrs, quoteLiteral(pw))); err != nil {
				return nil, fmt.Errorf("bootstrap: create role %s: %w", role.name, err)
			}
			res.Actions = append(res.Actions, "created role "+role.name)
		case opts.ResetPasswords || !known:
			if !opts.ResetPasswords {
				return nil, fmt.Errorf("bootstrap: role %s exists but its password is not in the secrets file: pass --reset-passwords to set a new one", role.name)
			}
			pw = newSecret(24)
			if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s %s PASSWORD %s", ident, role.attrs, quoteLiteral(pw))); err != nil {
				return nil, fmt.Errorf("bootstrap: alter role %s: %w", role.name, err)
			}
			res.Actions = append(res.Actions, "reset the password of role "+role.name)
		default:
			// Re-assert the attributes: an earlier hand edit must not leave the app role able to skip RLS.
			if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s %s", ident, role.attrs)); err != nil {
				return nil, fmt.Errorf("bootstrap: alter role %s: %w", role.name, err)
			}
		}
		passwords[role.name] = pw
	}
	// The probe owns the one function that looks past row-level security, and nothing else; the owner
	// is its member so that migrations can give it that function.
	var probeExists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", r.Probe).Scan(&probeExists); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	probeIdent := pgx.Identifier{r.Probe}.Sanitize()
	probeAttrs := "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS NOINHERIT"
	if !probeExists {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s %s", probeIdent, probeAttrs)); err != nil {
			return nil, fmt.Errorf("bootstrap: create role %s: %w", r.Probe, err)
		}
		res.Actions = append(res.Actions, "created role "+r.Probe)
	} else if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s %s", probeIdent, probeAttrs)); err != nil {
		return nil, fmt.Errorf("bootstrap: alter role %s: %w", r.Probe, err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", probeIdent, pgx.Identifier{r.Owner}.Sanitize())); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	// The app and auditor roles must never hold the owner's or the probe's privileges.
	for _, member := range []string{r.App, r.Auditor} {
		for _, of := range []string{r.Owner, r.Probe} {
			var isMember bool
			if err := conn.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", member, of).Scan(&isMember); err != nil {
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
			if isMember {
				return nil, fmt.Errorf("bootstrap: role %s is a member of %s: run REVOKE %s FROM %s first", member, of, of, member)
			}
		}
	}

	var dbExists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", opts.Database).Scan(&dbExists); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	dbIdent := pgx.Identifier{opts.Database}.Sanitize()
	ownerIdent := pgx.Identifier{r.Owner}.Sanitize()
	if !dbExists {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0", dbIdent, ownerIdent)); err != nil {
			return nil, fmt.Errorf("bootstrap: create database: %w", err)
		}
		res.Actions = append(res.Actions, "created database "+opts.Database)
	}
	for _, stmt := range []string{
		fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", dbIdent, ownerIdent),
		fmt.Sprintf("ALTER DATABASE %s SET tenantseal.role_prefix = %s", dbIdent, quoteLiteral(opts.RolePrefix)),
		fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", dbIdent),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s, %s", dbIdent, pgx.Identifier{r.App}.Sanitize(), pgx.Identifier{r.Auditor}.Sanitize()),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}

	cfg := conn.Config()
	res.OwnerDSN = roleDSN(cfg, superDSN, r.Owner, passwords[r.Owner], opts.Database)
	res.AppDSN = roleDSN(cfg, superDSN, r.App, passwords[r.App], opts.Database)
	res.AuditorDSN = roleDSN(cfg, superDSN, r.Auditor, passwords[r.Auditor], opts.Database)

	// In the new database: the owner owns the public schema, nobody else may create in it.
	superNew, err := pgx.Connect(ctx, roleDSN(cfg, superDSN, cfg.User, cfg.Password, opts.Database))
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect to %s: %w", opts.Database, err)
	}
	defer superNew.Close(context.WithoutCancel(ctx))
	for _, stmt := range []string{
		fmt.Sprintf("ALTER SCHEMA public OWNER TO %s", ownerIdent),
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
	} {
		if _, err := superNew.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	if opts.SkipMigrate {
		return res, nil
	}

	mg, err := New(ctx, res.OwnerDSN, Options{RolePrefix: opts.RolePrefix})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	before, _, _ := mg.Version()
	err = mg.Up(ctx)
	after, _, verr := mg.Version()
	mg.Close()
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if verr == nil && after != before {
		res.Actions = append(res.Actions, fmt.Sprintf("migrated from version %d to %d", before, after))
	}

	key, created, err := ensureContextKey(ctx, res.OwnerDSN, opts.ContextKey)
	if err != nil {
		return nil, err
	}
	res.ContextKey = key
	if created {
		res.Actions = append(res.Actions, "created context signing key "+key.ID)
	}
	return res, nil
}

// ensureContextKey keeps known when the database still accepts it and otherwise installs a new key.
func ensureContextKey(ctx context.Context, ownerDSN string, known *db.ContextKey) (db.ContextKey, bool, error) {
	conn, err := pgx.Connect(ctx, ownerDSN)
	if err != nil {
		return db.ContextKey{}, false, fmt.Errorf("bootstrap: connect as owner: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if known != nil {
		ipad, _ := token.Pads(known.Secret)
		var ok bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenantseal.context_keys
			WHERE kid = $1 AND ipad = $2 AND (not_after IS NULL OR not_after > now()))`, known.ID, ipad).Scan(&ok)
		if err != nil {
			return db.ContextKey{}, false, fmt.Errorf("bootstrap: %w", err)
		}
		if ok {
			return *known, false, nil
		}
	}
	key, err := InstallContextKey(ctx, conn, 0)
	return key, err == nil, err
}

// InstallContextKey generates a new context signing key and stores its derived form through conn (the
// owner). Keys installed earlier stop being accepted after overlap; with overlap 0 they stay accepted
// until retired by a later rotation. It returns the key for the application's configuration.
func InstallContextKey(ctx context.Context, conn *pgx.Conn, overlap time.Duration) (db.ContextKey, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return db.ContextKey{}, fmt.Errorf("bootstrap: random: %w", err)
	}
	kid := "k" + time.Now().UTC().Format("20060102t150405") + "-" + newSecret(3)
	ipad, opad := token.Pads(secret)
	b := &pgx.Batch{}
	if overlap > 0 {
		b.Queue(`UPDATE tenantseal.context_keys SET not_after = now() + $1::interval
		          WHERE not_after IS NULL OR not_after > now() + $1::interval`, strconv.FormatInt(int64(overlap/time.Second), 10)+" seconds")
	}
	b.Queue("INSERT INTO tenantseal.context_keys (kid, ipad, opad) VALUES ($1, $2, $3)", kid, ipad, opad)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return db.ContextKey{}, fmt.Errorf("bootstrap: store context key: %w", err)
	}
	return db.ContextKey{ID: kid, Secret: secret}, nil
}

func newSecret(nBytes int) string {
	b := make([]byte, nBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// connParams are the connection string settings that carry over from the superuser's connection string
// to the generated ones (TLS and timeouts), whatever form the original had.
var connParams = regexp.MustCompile(`(?:^|[?&\s])(sslmode|sslrootcert|sslcert|sslkey|sslsni|connect_timeout|target_session_attrs)=('(?:[^'\\]|\\.)*'|[^&\s]*)`)

// roleDSN builds a URL connection string for role on the server that cfg reached.
func roleDSN(cfg *pgx.ConnConfig, original, user, password, database string) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(user, password),
		Host:   net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))),
		Path:   "/" + database,
	}
	q := url.Values{}
	for _, m := range connParams.FindAllStringSubmatch(original, -1) {
		v := strings.Trim(m[2], "'")
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		q.Set(m[1], v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
