package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
)

var bootstrapCommand = command{
	name:    "bootstrap",
	summary: "create roles, database and context key as a superuser; write the secrets file",
	run:     runBootstrap,
}

const bootstrapAbout = `
Creates, as a superuser, the owner, app and auditor roles (<prefix>_owner, <prefix>_app,
<prefix>_auditor), the database owned by the owner, then applies the migrations as the owner and makes
sure a context signing key exists. Writes the connection strings and the key to the secrets file
(mode 0600):

	TENANTSEAL_OWNER_DSN     migrations and tenant administration only
	TENANTSEAL_APP_DSN       the application (row-level security always applies)
	TENANTSEAL_AUDITOR_DSN   reading the audit log
	TENANTSEAL_CONTEXT_KEY   <kid>:<hex secret>, signs tenant context tokens

Idempotent: when the secrets file exists, its passwords and key are reused, so running again changes
nothing. A role that exists but whose password is not in the file needs --reset-passwords.
With --no-migrate no key is created: run 'tenantseal migrate up', then bootstrap again.`

func runBootstrap(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "bootstrap", "--dsn <superuser connection string> [flags]", bootstrapAbout)
	var (
		dsn       = f.String("dsn", "", "superuser connection string (required)")
		database  = f.String("database", bootstrap.DefaultDatabase, "database to create")
		prefix    = f.String("prefix", db.DefaultRolePrefix, "role name prefix")
		out       = f.String("out", defaultSecrets, "secrets file to read and write")
		print     = f.Bool("print", false, "print the secrets file to stdout instead of writing it")
		reset     = f.Bool("reset-passwords", false, "give existing roles new passwords")
		noMigrate = f.Bool("no-migrate", false, "stop after roles, database and grants")
		timeout   = f.Duration("connect-timeout", db.DefaultConnectTimeout, "give up connecting after this long")
	)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("bootstrap: unexpected argument %q (see 'tenantseal bootstrap -h')", pos[0])
	}
	if *dsn == "" {
		return usageErrorf("bootstrap: --dsn <superuser connection string> is required")
	}
	superDSN, err := prepareDSN(s, *dsn, *timeout)
	if err != nil {
		return err
	}

	opts := bootstrap.Options{
		Database:       *database,
		RolePrefix:     *prefix,
		ResetPasswords: *reset,
		SkipMigrate:    *noMigrate,
	}
	file, err := readSecrets(*out)
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
	}

	var pending *pendingWrite
	if !*print {
		if pending, err = beginWrite(*out); err != nil {
			return err
		}
		defer pending.abort()
	}

	res, err := bootstrap.Run(ctx, superDSN, opts)
	var upe *bootstrap.UnknownPasswordError
	if errors.As(err, &upe) {
		return fmt.Errorf("bootstrap: role %s exists but its password is not in %s: pass --reset-passwords to set a new one", upe.Role, *out)
	}
	if err != nil {
		return err
	}
	for _, dsn := range []string{res.OwnerDSN, res.AppDSN, res.AuditorDSN} {
		s.connSecrets(dsn)
	}
	if res.ContextKey.ID != "" {
		s.secret(fmt.Sprintf("%x", res.ContextKey.Secret))
	}

	file.set(keyOwnerDSN, res.OwnerDSN)
	file.set(keyAppDSN, res.AppDSN)
	file.set(keyAuditorDSN, res.AuditorDSN)
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
	if len(res.Actions) == 0 {
		fmt.Fprintln(report, "nothing to do")
	}
	if !*print {
		if unchanged(*out, data) {
			fmt.Fprintf(report, "%s is up to date\n", *out)
		} else {
			if err := pending.commit(data); err != nil {
				return err
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
		return fmt.Errorf("the password of role %s in %s is not the role's password: run bootstrap again with --reset-passwords", le.Role, *out)
	}
	return err
}
