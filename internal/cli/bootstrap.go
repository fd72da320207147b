package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/dsn"
)

var bootstrapCommand = command{
	name:    "bootstrap",
	summary: "create roles, database and context key as a superuser; write the secrets file",
	run:     runBootstrap,
}

const bootstrapAbout = `
Creates, as a superuser, the owner, app, auditor and audit writer roles (<prefix>_owner, <prefix>_app,
<prefix>_auditor, <prefix>_audit_writer), with session limits on the app role, the database owned by
the owner, then applies the migrations as the owner and makes sure a context signing key exists.
Writes the connection strings and the key to the secrets file (mode 0600):

	TENANTSEAL_OWNER_DSN          migrations and tenant administration only
	TENANTSEAL_APP_DSN            the application (row-level security always applies)
	TENANTSEAL_AUDITOR_DSN        reading the audit log
	TENANTSEAL_AUDIT_WRITER_DSN   the application's audit writer (audit.ParseConfig), appends only
	TENANTSEAL_CONTEXT_KEY        <kid>:<hex secret>, signs tenant context tokens

Idempotent: when the secrets file exists, its passwords and key are reused, so running again changes
nothing; a file that describes another server, database or prefix is never rewritten. A role that
exists but whose password is not in the file needs --reset-passwords naming it (owner, app, auditor,
audit_writer): only the roles named get new passwords. What bootstrap changes is recorded in the audit
log, with the operator.
With --no-migrate no key is created: run 'tenantseal migrate up', then bootstrap again.

The administrator may be a superuser or a role with CREATEROLE and CREATEDB (managed PostgreSQL):
what needs a superuser is left out with a warning naming it. New passwords are written to the secrets
file before they are set, so a bootstrap that fails part-way completes when run again. An existing
database keeps its owner and privileges, and its schema public too, unless --take-ownership.`

func runBootstrap(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "bootstrap", "--dsn <superuser connection string> [flags]", bootstrapAbout)
	var (
		dsn       = f.String("dsn", "", "superuser connection string (required)")
		database  = f.String("database", bootstrap.DefaultDatabase, "database to create")
		prefix    = f.String("prefix", db.DefaultRolePrefix, "role name prefix")
		out       = f.String("out", secretsPath(), "secrets file to read and write (default $"+envSecrets+", then "+defaultSecrets+")")
		print     = f.Bool("print", false, "print the secrets file to stdout instead of writing it")
		reset     listFlag
		noMigrate = f.Bool("no-migrate", false, "stop after roles, database and grants")
		takeOver  = f.Bool("take-ownership", false, "hand an existing database and its schema public to the owner role and revoke PUBLIC's privileges on them")
		timeout   = f.Duration("connect-timeout", db.DefaultConnectTimeout, "give up connecting after this long")
	)
	f.Var(&reset, "reset-passwords", "give these existing roles new passwords, comma-separated: "+strings.Join(resettable, ", ")+" (or their full names)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("bootstrap: unexpected argument %q (see 'tenantseal bootstrap -h')", pos[0])
	}
	resetRoles, err := rolesToReset(*prefix, reset)
	if err != nil {
		return err
	}
	if *dsn == "" {
		return usageErrorf("bootstrap: --dsn <superuser connection string> is required")
	}
	superDSN, err := prepareDSN(s, *dsn, *timeout)
	if err != nil {
		return err
	}

	opts := bootstrap.Options{
		Database:      *database,
		RolePrefix:    *prefix,
		ResetRoles:    resetRoles,
		SkipMigrate:   *noMigrate,
		TakeOwnership: *takeOver,
	}
	// A file open to others is read and then written again with mode 0600.
	file, err := readSecretsMode(*out, false)
	switch {
	case errors.Is(err, os.ErrNotExist):
		file = &secretsFile{lines: []string{secretsHeader}}
	case err != nil:
		return err
	default:
		opts.Passwords = file.passwords()
		for _, pw := range opts.Passwords {
			s.secret(pw)
		}
		if opts.ContextKey, err = file.contextKey(); err != nil {
			return fmt.Errorf("%s: %w", *out, err)
		}
		if err := samePlace(file, *out, superDSN, *database, *prefix); err != nil {
			return err
		}
	}
	if len(resetRoles) > 0 {
		fmt.Fprintf(s.stderr, "tenantseal: warning: giving %s new passwords: every process that connects as them with the old ones fails until it has the new %s\n",
			strings.Join(resetRoles, ", "), *out)
	}

	var pending *pendingWrite
	if !*print {
		if pending, err = beginWrite(*out); err != nil {
			return err
		}
		defer pending.abort()
	}

	saved := false
	if !*print {
		// New passwords reach the file before the roles have them.
		opts.Save = func(_ context.Context, res *bootstrap.Result) error {
			for _, dsn := range []string{res.OwnerDSN, res.AppDSN, res.AuditorDSN, res.AuditWriterDSN} {
				s.connSecrets(dsn)
			}
			file.set(keyOwnerDSN, res.OwnerDSN)
			file.set(keyAppDSN, res.AppDSN)
			file.set(keyAuditorDSN, res.AuditorDSN)
			file.set(keyAuditWriterDSN, res.AuditWriterDSN)
			w, err := beginWrite(*out)
			if err != nil {
				return err
			}
			defer w.abort()
			if err := w.commit(file.bytes()); err != nil {
				return err
			}
			saved = true
			return nil
		}
	}
	res, err := bootstrap.RunCluster(ctx, superDSN, opts)
	var upe *bootstrap.UnknownPasswordError
	if errors.As(err, &upe) {
		return fmt.Errorf("bootstrap: role %s exists but its password is not in %s: pass --reset-passwords %s to give it a new one", upe.Role, *out, upe.Role)
	}
	if err != nil {
		return err
	}
	for _, dsn := range []string{res.OwnerDSN, res.AppDSN, res.AuditorDSN, res.AuditWriterDSN} {
		s.connSecrets(dsn)
	}
	if res.ContextKey.ID != "" {
		s.secret(fmt.Sprintf("%x", res.ContextKey.Secret))
	}

	file.set(keyOwnerDSN, res.OwnerDSN)
	file.set(keyAppDSN, res.AppDSN)
	file.set(keyAuditorDSN, res.AuditorDSN)
	file.set(keyAuditWriterDSN, res.AuditWriterDSN)
	if res.ContextKey.ID != "" {
		file.set(keyContextKey, formatContextKey(res.ContextKey))
	}
	data := file.bytes()

	report := s.stdout
	if *print {
		// stdout carries the file only, so that `bootstrap --print > file` works.
		report = s.stderr
		if _, err := s.stdout.Write(data); err != nil {
			return err
		}
	}
	for _, a := range res.Actions {
		fmt.Fprintln(report, a)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(s.stderr, "tenantseal: warning: %s\n", w)
	}
	if len(res.Actions) == 0 {
		fmt.Fprintln(report, "nothing to do")
	}
	if !*print {
		if unchanged(*out, data) && !saved {
			fmt.Fprintf(report, "%s is up to date\n", *out)
		} else {
			if !unchanged(*out, data) {
				if err := pending.commit(data); err != nil {
					return err
				}
			}
			fmt.Fprintf(report, "wrote %s (mode 0600): keep it out of version control\n", *out)
		}
	}
	if res.ContextKey.ID == "" && file.get(keyContextKey) == "" {
		fmt.Fprintln(report, "no context key yet: run 'tenantseal migrate up', then 'tenantseal bootstrap' again")
	}

	// After the file is written: a login that fails must not lose new passwords.
	err = bootstrap.CheckLogins(ctx, res)
	var le *bootstrap.LoginError
	if errors.As(err, &le) {
		return fmt.Errorf("the password of role %s in %s is not the role's password: run bootstrap again with --reset-passwords %s", le.Role, *out, le.Role)
	}
	if err != nil || *noMigrate || len(res.Actions) == 0 {
		return err
	}
	return recordBootstrap(ctx, s, res)
}

// recordBootstrap records what bootstrap changed in the audit log, which it has just migrated, as the
// audit writer role. Bootstrap is done whatever it returns: a failure says so.
func recordBootstrap(ctx context.Context, s *session, res *bootstrap.Result) error {
	acfg, err := audit.ParseConfig(res.AuditWriterDSN)
	if err != nil {
		return err
	}
	acfg.SpoolPath = audit.DefaultSpoolPath
	acfg.Logger, acfg.MeterProvider = s.logger(), s.meters
	acfg.AllowPlaintextLoopback = allowPlaintextLoopback()
	w, err := audit.NewWriter(ctx, acfg)
	if err != nil {
		return fmt.Errorf("bootstrap: done, but recording it in the audit log failed: %w", err)
	}
	log := &auditLog{s: s, cmd: "bootstrap", w: w}
	w.Record(asOperator(ctx), tenantseal.Event{Kind: tenantseal.EventBootstrap, Table: "tenantseal", Operation: "bootstrap",
		Detail: fmt.Sprintf("database %s, roles %s: %s", res.Database, strings.TrimSuffix(res.Roles.Owner, "_owner"), strings.Join(res.Actions, "; "))})
	return log.close(ctx, nil)
}

// resettable are the role kinds whose passwords --reset-passwords resets.
var resettable = []string{"owner", "app", "auditor", "audit_writer"}

// rolesToReset turns --reset-passwords' kinds or names into role names of prefix.
func rolesToReset(prefix string, given []string) ([]string, error) {
	r := db.Roles(prefix)
	byKind := map[string]string{"owner": r.Owner, "app": r.App, "auditor": r.Auditor, "audit_writer": r.AuditWriter, "audit-writer": r.AuditWriter}
	var out []string
	for _, g := range given {
		name, ok := byKind[g]
		if !ok && slices.Contains([]string{r.Owner, r.App, r.Auditor, r.AuditWriter}, g) {
			name, ok = g, true
		}
		if !ok {
			return nil, usageErrorf("bootstrap: --reset-passwords %q: want role kinds or names, comma-separated: %s (%s, %s, %s, %s)",
				g, strings.Join(resettable, ", "), r.Owner, r.App, r.Auditor, r.AuditWriter)
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// samePlace refuses to rewrite a secrets file that describes another database: a bootstrap against
// another server, database or prefix would otherwise repoint every process that reads the file.
func samePlace(file *secretsFile, path, superDSN, database, prefix string) error {
	// Any form internal/dsn reads, pgx5:// too: pgx alone would take a pgx5:// URL with a query for
	// keyword/value and describe the default server.
	written, err := dsn.Parse(file.get(keyOwnerDSN))
	if err != nil || file.get(keyOwnerDSN) == "" {
		return nil // nothing to repoint
	}
	have, err := pgx.ParseConfig(written.ConnString())
	if err != nil {
		return nil
	}
	super, err := pgx.ParseConfig(superDSN)
	if err != nil {
		return err
	}
	where := func(host string, port uint16, db string) string {
		return fmt.Sprintf("database %q on %s", db, net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	was, now := where(have.Host, have.Port, have.Database), where(super.Host, super.Port, database)
	owner := db.Roles(prefix).Owner
	if was != now || have.User != owner {
		return fmt.Errorf("bootstrap: %s describes %s as %s, and this bootstrap is of %s as %s: refusing to repoint it; give another file with --out (or $%s)",
			path, was, have.User, now, owner, envSecrets)
	}
	return nil
}
