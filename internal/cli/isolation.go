package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/isolation"
)

var isolationCheckCommand = command{
	name:    "isolation-check",
	summary: "attack a live database as the app role and report every tenant-isolation leak",
	run:     runIsolationCheck,
}

const isolationAbout = `
Runs the isolation suite against a database: it finds the tenant tables from the catalog (the tables with
the tenant column), seeds rows for throwaway tenants as the superuser, and then, as the app role, runs
every attack against every table: cross-tenant reads, writes, moves and upserts; foreign keys, joins,
subqueries, CTEs, aggregates, unique violations, COPY and cursors; missing, forged, altered, expired,
replayed and wrong-key tenant contexts, RESET, SET ROLE, SECURITY DEFINER functions, views, the table
owners' own access, reused prepared statements; ciphertexts and keysets moved between rows, columns and
tenants; pg_stat_activity, LISTEN/NOTIFY and pg_stats. Each case against each target passes, leaks, errs
(the suite could not tell) or does not apply.

Use a database that may take writes: a staging copy, not production. The suite removes its tenants'
rows, keysets and probe objects when it ends, also when a case fails.

--dsn connects as a superuser to the database under test (the suite seeds and reads the ground truth
with it). The app connection string and the context key come from --app-dsn and --context-key, else
$TENANTSEAL_APP_DSN and $TENANTSEAL_CONTEXT_KEY, else the secrets file.

Tenant tables are those tenantseal.tenant_tables lists, each with its own tenant column, and every other
table with a column of such a name (--tenant-column is the default one); the suite's tenants get keys of
the database's tenant key type, registered where the database takes tenants from (an adopted registry,
else tenantseal.tenants) and named "tenantseal-isolation run <id>". A run that was killed leaves them
behind; the next run removes them.

--config names a JSON file that excludes tables (with a reason the report repeats), accepts tables
without a tenant column as shared reference data, accepts oracle functions and gives seeding values:

	{"exclude": {"public.audit_events": "written by triggers only"},
	 "accept_global": ["public.countries"],
	 "accept_oracles": ["public.slug_taken"],
	 "tables": {"public.invoices": {"values": {"currency": "EUR"}}}}

The report goes to stdout (or --output): a matrix of cases against tables in text, or JSON, or JUnit XML
for CI systems. The exit status is 0 when every case passes, 1 when one leaks, 2 on a usage error, and
3 when the check could not run, or ran but could not tell for some case (an error, never a leak).`

func runIsolationCheck(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "isolation-check", "--dsn <superuser connection string> [flags]", isolationAbout)
	dsn := f.String("dsn", "", "superuser connection string of the database under test (required)")
	appDSN := f.String("app-dsn", "", "app role connection string (default $"+keyAppDSN+", then the secrets file)")
	keyFlag := f.String("context-key", "", "context signing key <id>:<hex secret> (default $"+keyContextKey+", then the secrets file)")
	secrets := f.String("secrets", defaultSecrets, "secrets file that bootstrap wrote")
	format := f.String("format", "text", "report format: text, json or junit")
	output := f.String("output", "", "write the report to this file instead of stdout")
	short := f.Bool("short", false, "fewer tenants and rows, one attacking tenant: every case still runs against every table")
	column := f.String("tenant-column", "tenant_id", "the tenant column of tables that tenantseal.tenant_tables does not list")
	config := f.String("config", "", "JSON file of exclusions, accepted shared tables and oracles, and seeding values")
	var schemas, oracles listFlag
	f.Var(&schemas, "schema", "schema to search for tenant tables (repeatable; default every schema but the system ones and tenantseal)")
	f.Var(&oracles, "accept-oracle", "SECURITY DEFINER function (schema.name) documented to answer yes/no about other tenants' rows (repeatable)")
	timeout := f.Duration("connect-timeout", db.DefaultConnectTimeout, "give up connecting after this long")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageErrorf("isolation-check: unexpected argument %q", pos[0])
	case *dsn == "":
		return usageErrorf("isolation-check: --dsn (a superuser connection string) is required (see 'tenantseal isolation-check -h')")
	case *format != "text" && *format != "json" && *format != "junit":
		return usageErrorf("isolation-check: --format must be text, json or junit, got %q", *format)
	}
	var sf *secretsFile
	fromFile := func(key string) (string, error) {
		if sf == nil {
			var err error
			sf, err = readSecrets(*secrets)
			switch {
			case errors.Is(err, os.ErrNotExist) && !f.set("secrets"):
				sf = &secretsFile{}
			case err != nil:
				return "", err
			}
		}
		return sf.get(key), nil
	}
	resolve := func(flag, env string) (string, error) {
		if flag != "" {
			return flag, nil
		}
		if v := os.Getenv(env); v != "" {
			return v, nil
		}
		return fromFile(env)
	}
	cfg := isolation.Config{TenantColumn: *column, Schemas: schemas, Short: *short, AcceptOracles: oracles,
		AllowPlaintextLoopback: allowPlaintextLoopback()}
	if *config != "" {
		if err := isolation.LoadConfigFile(*config, &cfg); err != nil {
			return usageErrorf("isolation-check: --config: %v", unprefixed(strings.TrimPrefix(err.Error(), "isolation: ")))
		}
	}
	app, err := resolve(*appDSN, keyAppDSN)
	if err != nil {
		return couldNotRun(err)
	}
	if app == "" {
		return usageErrorf("isolation-check: no app connection string: pass --app-dsn, set $%s, or add a %s line to the secrets file %s", keyAppDSN, keyAppDSN, *secrets)
	}
	ks, err := resolve(*keyFlag, keyContextKey)
	if err != nil {
		return couldNotRun(err)
	}
	if ks == "" {
		return usageErrorf("isolation-check: no context key: pass --context-key, set $%s, or add a %s line to the secrets file %s", keyContextKey, keyContextKey, *secrets)
	}
	if _, secret, ok := strings.Cut(ks, ":"); ok {
		s.secret(strings.TrimSpace(secret))
	}
	key, err := db.ParseContextKey(ks)
	if err != nil {
		return usageErrorf("isolation-check: --context-key: %v", unprefixed(err.Error()))
	}
	super, err := prepareDSN(s, *dsn, *timeout)
	if err != nil {
		return err
	}
	if app, err = prepareDSN(s, app, *timeout); err != nil {
		return err
	}
	cfg.SuperDSN, cfg.AppDSN, cfg.ContextKey = super, app, key
	rep, err := isolation.Check(ctx, cfg)
	if err != nil {
		return couldNotRun(err)
	}
	var b bytes.Buffer
	switch *format {
	case "json":
		err = rep.WriteJSON(&b)
	case "junit":
		err = rep.WriteJUnit(&b)
	default:
		err = rep.WriteText(&b)
	}
	if err != nil {
		return err
	}
	if *output != "" {
		if err := os.WriteFile(*output, b.Bytes(), 0o644); err != nil {
			return err
		}
	} else if _, err := s.stdout.Write(b.Bytes()); err != nil {
		return err
	}
	if !rep.OK() {
		leaks, errs := rep.Leaks(), rep.Errors()
		failed := leaks
		if len(leaks) == 0 {
			failed = errs
		}
		var names []string
		for i, r := range failed {
			if i == 5 {
				names = append(names, "...")
				break
			}
			names = append(names, r.Case+" on "+r.Target)
		}
		if len(leaks) == 0 {
			// Not one leak: the cases that erred could not tell, which is no finding either way.
			return couldNotRun(fmt.Errorf("isolation check incomplete: %d errors, no leak (%s)", len(errs), strings.Join(names, ", ")))
		}
		return fmt.Errorf("isolation check failed: %d leaks, %d errors (%s)", len(leaks), len(errs), strings.Join(names, ", "))
	}
	if *output != "" {
		c := rep.Counts()
		s.printf("isolation check passed: %d passed, %d not applicable (%d checks); report in %s\n", c[isolation.StatusPass], c[isolation.StatusNA], rep.Checks(), *output)
	}
	return nil
}

// exitIncomplete is the exit status of an isolation check that could not run, or could not tell.
const exitIncomplete = 3

// couldNotRun marks err as the check not running to its end: exit status 3, not the 1 of a leak.
func couldNotRun(err error) error {
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &exitCodeError{code: exitIncomplete, err: err}
}

// exitCodeError ends a command with an exit status of its own; its message is printed as any other.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// ExitCode is the status the command exits with.
func (e *exitCodeError) ExitCode() int { return e.code }
