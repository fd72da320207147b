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

The report goes to stdout (or --output): a matrix of cases against tables in text, or JSON, or JUnit XML
for CI systems. The exit status is 1 when any case leaks or errs, 0 when all pass, 2 on a usage error.`

func runIsolationCheck(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "isolation-check", "--dsn <superuser connection string> [flags]", isolationAbout)
	dsn := f.String("dsn", "", "superuser connection string of the database under test (required)")
	appDSN := f.String("app-dsn", "", "app role connection string (default $"+keyAppDSN+", then the secrets file)")
	keyFlag := f.String("context-key", "", "context signing key <id>:<hex secret> (default $"+keyContextKey+", then the secrets file)")
	secrets := f.String("secrets", defaultSecrets, "secrets file that bootstrap wrote")
	format := f.String("format", "text", "report format: text, json or junit")
	output := f.String("output", "", "write the report to this file instead of stdout")
	short := f.Bool("short", false, "fewer tenants and rows, one attacking tenant: every case still runs against every table")
	column := f.String("tenant-column", "tenant_id", "the column that holds the tenant id")
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
	app, err := resolve(*appDSN, keyAppDSN)
	if err != nil {
		return err
	}
	if app == "" {
		return usageErrorf("isolation-check: no app connection string: pass --app-dsn, set $%s, or add a %s line to the secrets file %s", keyAppDSN, keyAppDSN, *secrets)
	}
	ks, err := resolve(*keyFlag, keyContextKey)
	if err != nil {
		return err
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

	rep, err := isolation.Check(ctx, isolation.Config{
		SuperDSN: super, AppDSN: app, ContextKey: key, TenantColumn: *column,
		Schemas: schemas, Short: *short, AcceptOracles: oracles,
	})
	if err != nil {
		return err
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
		leaks := rep.Leaks()
		var names []string
		for i, r := range leaks {
			if i == 5 {
				names = append(names, "...")
				break
			}
			names = append(names, r.Case+" on "+r.Target)
		}
		return fmt.Errorf("isolation check failed: %d leaks, %d errors (%s)", len(leaks), len(rep.Errors()), strings.Join(names, ", "))
	}
	if *output != "" {
		c := rep.Counts()
		s.printf("isolation check passed: %d passed, %d not applicable (%d checks); report in %s\n", c[isolation.StatusPass], c[isolation.StatusNA], rep.Checks(), *output)
	}
	return nil
}
