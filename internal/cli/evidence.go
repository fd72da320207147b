package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/evidence"
	"github.com/tenantseal/tenantseal/isolation"
)

var evidenceCommand = command{
	name:    "evidence",
	summary: "export one bundle of evidence for auditors: roles, grants, lint, keys, audit log, TLS",
	run:     runEvidence,
}

const evidenceAbout = `
Subcommands:

	export DIR   write the bundle to DIR (created if absent; refused if it holds files, unless --force)

The bundle: manifest.json (schema tenantseal/evidence/v1: tool version, time, database, server version,
the roles read as, every check's outcome, the SHA-256 of every other file), summary.md (the same for a
person), roles.json (tenantseal's roles, memberships, superuser and BYPASSRLS roles, privileges on the
database, schemas, tables, columns and functions, RLS enabled and forced, policies), lint.json, keys.json
(keysets, key ids, states, last rotation and KEK per tenant; context signing key ids and not_after),
audit.json (audit verify; the chain against signed checkpoints with --checkpoints DIR --verifier-key
FILE, else the bundle says they were not checked; entries per kind, elevations with their reasons and operator actions between --since and --until), tls.json (the
server's TLS settings the auditor may read: ssl_min_protocol_version and ssl_ciphers need
pg_read_all_settings; pg_stat_ssl of the export's sessions), and with --isolation-dsn isolation.junit.xml and isolation.json. Each JSON file names its
schema in a "schema" field. No file holds a connection string, password, token, key or plaintext of an
encrypted field: the bundle is refused if one would.

It reads as the auditor role (--auditor-dsn, else $TENANTSEAL_AUDITOR_DSN, else the secrets file): the
catalog, the audit log and the TLS settings; and as the owner (--dsn, else $TENANTSEAL_OWNER_DSN, else the
secrets file) only what no other role may read: the linter's view, the key status, the context keys' ids
and the list of protected tables. Each reads in one read-only snapshot: the export changes nothing.

The isolation suite runs only with --isolation-dsn (a superuser connection string), with the app role's
connection string and the context key (--app-dsn, --context-key, else $TENANTSEAL_APP_DSN and
$TENANTSEAL_CONTEXT_KEY, else the secrets file). It writes throwaway tenants: run it against a staging copy,
not production. Without it, the summary says that it was not run.

--since and --until take an RFC 3339 time (2006-01-02T15:04:05Z) or a duration ago (720h); default: from
the first entry until now.

Exit status: 0 the bundle was written and every check that ran passed; 4 the bundle was written but a check
failed (a lint error, a broken audit chain, a failing checkpoint, an isolation leak or a suite that could
not run: stderr names them, and so do manifest.json and summary.md); 1 no bundle was written; 2 a usage
error.`

// exitChecksFailed is the exit status of an export whose bundle was written but whose checks failed.
const exitChecksFailed = 4

func runEvidence(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "evidence", "export DIR [--force] [--since T] [--until T] [--checkpoints DIR --verifier-key FILE] [--isolation-dsn DSN] [flags]", evidenceAbout)
	conn := &connFlags{f: f}
	f.StringVar(&conn.dsn, "dsn", "", "owner connection string (default $"+envOwnerDSN+", then the secrets file)")
	auditorDSN := f.String("auditor-dsn", "", "auditor connection string (default $"+keyAuditorDSN+", then the secrets file)")
	f.StringVar(&conn.secrets, "secrets", secretsPath(), "secrets file that bootstrap wrote (default $"+envSecrets+", then "+defaultSecrets+")")
	f.DurationVar(&conn.timeout, "connect-timeout", db.DefaultConnectTimeout, "give up connecting after this long (unless the connection string sets connect_timeout)")
	force := f.Bool("force", false, "write into a DIR that holds files, replacing an earlier bundle's")
	since := f.String("since", "", "elevations and operator actions at or after this RFC 3339 time, or this long ago (default: from the first entry)")
	until := f.String("until", "", "elevations and operator actions before this RFC 3339 time, or this long ago (default: now)")
	prefix := f.String("prefix", "", "role name prefix (default: the database's own)")
	isoDSN := f.String("isolation-dsn", "", "run the isolation suite, with this superuser connection string (writes throwaway tenants: a staging copy)")
	appDSN := f.String("app-dsn", "", "with --isolation-dsn: app role connection string (default $"+keyAppDSN+", then the secrets file)")
	keyFlag := f.String("context-key", "", "with --isolation-dsn: context signing key <id>:<hex secret> (default $"+keyContextKey+", then the secrets file)")
	short := f.Bool("isolation-short", false, "with --isolation-dsn: fewer tenants and rows; every case still runs")
	cpDir := f.String("checkpoints", "", "check the audit chain against the signed checkpoints of this directory (with --verifier-key)")
	verifierKey := f.String("verifier-key", "", "with --checkpoints: the verifier key file ('tenantseal audit keygen' writes FILE.pub)")
	out := f.output()
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usageErrorf("evidence: missing subcommand: export DIR (see 'tenantseal evidence -h')")
	case pos[0] != "export":
		return usageErrorf("evidence: unknown subcommand %q: want export", pos[0])
	case len(pos) == 1:
		return usageErrorf("evidence export: missing DIR, the directory to write the bundle to")
	case len(pos) > 2:
		return usageErrorf("evidence export: unexpected argument %q", pos[2])
	case *isoDSN == "" && (f.set("app-dsn") || f.set("context-key") || f.set("isolation-short")):
		return usageErrorf("evidence export: --app-dsn, --context-key and --isolation-short go with --isolation-dsn")
	case f.set("prefix") && strings.TrimSpace(*prefix) == "":
		return usageErrorf("evidence export: --prefix must not be empty")
	}
	if err := out.check(); err != nil {
		return err
	}
	dir := pos[1]
	now := time.Now()
	cfg := evidence.Config{RolePrefix: *prefix, ToolVersion: versionString(), Overwrite: *force}
	for _, t := range []struct {
		name, v string
		into    *time.Time
	}{{"--since", *since, &cfg.Since}, {"--until", *until, &cfg.Until}} {
		if t.v == "" {
			continue
		}
		if *t.into, err = parseTimeAgo(t.name, t.v, now); err != nil {
			return err
		}
	}
	if !cfg.Since.IsZero() && !cfg.Until.IsZero() && !cfg.Since.Before(cfg.Until) {
		return usageErrorf("evidence export: --since %s is not before --until %s", *since, *until)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && !*force {
		return usageErrorf("evidence export: %s is not empty (%d entries): name a new or empty directory, or pass --force to replace an earlier bundle there", dir, len(entries))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	if *cpDir != "" || *verifierKey != "" {
		v, signed, err := readAnchors(ctx, "evidence export", *cpDir, *verifierKey)
		if err != nil {
			return err
		}
		cfg.Checkpoints = func(ctx context.Context, q audit.Querier) (evidence.CheckpointResult, error) {
			res, err := audit.VerifyCheckpoints(ctx, q, v, signed)
			if err != nil {
				return evidence.CheckpointResult{}, err
			}
			return evidence.CheckpointResult{OK: res.OK(), Summary: fmt.Sprintf("%d entries; %s", res.Rows, anchoredSummary(&res)), Details: anchoredJSON(&res)}, nil
		}
	}
	if cfg.OwnerDSN, err = conn.ownerDSN(); err != nil {
		return err
	}
	if cfg.AuditorDSN, err = conn.roleDSN("auditor", *auditorDSN, "--auditor-dsn", keyAuditorDSN); err != nil {
		return err
	}
	if *isoDSN != "" {
		if cfg.Isolation, err = evidenceIsolation(s, conn, *isoDSN, *appDSN, *keyFlag, *short); err != nil {
			return err
		}
		s.info("running the isolation suite: it writes throwaway tenants and removes them\n")
	}

	res, err := evidence.Export(ctx, dir, cfg)
	if err != nil {
		return evidenceError(err)
	}
	s.printf("evidence bundle written to %s: %d files and manifest.json\n", dir, len(res.Files))
	for _, c := range res.Checks {
		s.printf("  %-18s %-8s %s\n", c.Name, c.Status, c.Summary)
	}
	if failed := res.Failed(); len(failed) > 0 {
		var names []string
		for _, c := range failed {
			names = append(names, c.Name+" ("+c.Summary+")")
		}
		return &exitCodeError{code: exitChecksFailed, err: fmt.Errorf("evidence export: the bundle in %s was written, but %d %s failed: %s",
			dir, len(failed), pluralize(len(failed), "check"), strings.Join(names, "; "))}
	}
	return nil
}

// evidenceIsolation is the isolation suite's configuration: the superuser's connection string, the app
// role's and the context key.
func evidenceIsolation(s *session, conn *connFlags, super, app, key string, short bool) (*isolation.Config, error) {
	superDSN, err := conn.prepare(super)
	if err != nil {
		return nil, err
	}
	appDSN, err := conn.roleDSN("app", app, "--app-dsn", keyAppDSN)
	if err != nil {
		return nil, err
	}
	if key == "" {
		key = os.Getenv(keyContextKey)
	}
	if key == "" {
		sf, err := readSecrets(conn.secrets)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if sf != nil {
			key = sf.get(keyContextKey)
		}
	}
	if key == "" {
		return nil, usageErrorf("evidence export: no context key for the isolation suite: pass --context-key, set $%s, or add a %s line to the secrets file %s", keyContextKey, keyContextKey, conn.secrets)
	}
	if _, secret, ok := strings.Cut(key, ":"); ok {
		s.secret(strings.TrimSpace(secret))
	}
	k, err := db.ParseContextKey(key)
	if err != nil {
		return nil, usageErrorf("evidence export: --context-key: %v", unprefixed(err.Error()))
	}
	return &isolation.Config{SuperDSN: superDSN, AppDSN: appDSN, ContextKey: k, Short: short,
		AllowPlaintextLoopback: allowPlaintextLoopback()}, nil
}

// evidenceError explains the failures of an export that an operator can fix.
func evidenceError(err error) error {
	var re *evidence.RoleError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("evidence export needs the owner role %s for the key status and the linter, but --dsn connects as %s: connect as the owner role (--dsn, $%s or the secrets file)", re.Want, re.Got, envOwnerDSN)
	case errors.Is(err, audit.ErrPartialLog):
		return fmt.Errorf("evidence export: the auditor connection sees only part of the audit log (row-level security): connect as the auditor role (--auditor-dsn, $%s or the secrets file): %w", keyAuditorDSN, err)
	case errors.Is(err, evidence.ErrNoSchema):
		return fmt.Errorf("evidence export: the database has no tenantseal schema: run 'tenantseal migrate up' first")
	}
	return ownerError(err)
}

// parseTimeAgo reads the value of flag name: an RFC 3339 time or a duration before now.
func parseTimeAgo(name, v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, usageErrorf("evidence export: %s %s: want a duration ago, not ahead", name, v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageErrorf("evidence export: %s %q: want an RFC 3339 time (2006-01-02T15:04:05Z) or a duration ago (720h for 30 days)", name, v)
	}
	return t, nil
}
