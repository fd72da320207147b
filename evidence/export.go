package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/isolation"
	"github.com/tenantseal/tenantseal/lint"
)

// Schema names of the bundle's files.
const (
	SchemaManifest = "tenantseal/evidence/v1"
	SchemaRoles    = "tenantseal/evidence/roles/v1"
	SchemaLint     = "tenantseal/evidence/lint/v1"
	SchemaKeys     = "tenantseal/evidence/keys/v1"
	SchemaAudit    = "tenantseal/evidence/audit/v1"
	SchemaTLS      = "tenantseal/evidence/tls/v1"
	// SchemaJUnit names the isolation suite's JUnit XML file in the manifest.
	SchemaJUnit = "junit-xml"
	// SchemaIsolation names the isolation suite's JSON report (package isolation's) in the manifest.
	SchemaIsolation = "tenantseal/isolation-report"
	// SchemaMarkdown names the summary in the manifest.
	SchemaMarkdown = "markdown"
)

// Names of the bundle's files.
const (
	FileManifest  = "manifest.json"
	FileSummary   = "summary.md"
	FileRoles     = "roles.json"
	FileLint      = "lint.json"
	FileKeys      = "keys.json"
	FileAudit     = "audit.json"
	FileTLS       = "tls.json"
	FileJUnit     = "isolation.junit.xml"
	FileIsolation = "isolation.json"
)

// bundleFiles are every file an export may write: Config.Overwrite removes them from the directory first,
// so that no file of an earlier bundle stays beside a new one.
var bundleFiles = []string{FileManifest, FileSummary, FileRoles, FileLint, FileKeys, FileAudit, FileTLS, FileJUnit, FileIsolation}

// Redacted stands in the bundle where a value would be a secret.
const Redacted = "[redacted]"

// ErrNotEmpty means the export directory holds files and Config.Overwrite is not set. Use errors.Is.
var ErrNotEmpty = errors.New("evidence: the directory is not empty")

// ErrSecret means a file of the bundle would hold a secret of the Config (a password, the context key):
// nothing was written. Use errors.Is.
var ErrSecret = errors.New("evidence: the bundle would hold a secret")

// ErrNoSchema means the database has no tenantseal schema: nothing to export. Use errors.Is.
var ErrNoSchema = errors.New("evidence: the database has no tenantseal schema")

// RoleError means a connection string connects as another role than the one its sections need. Use
// errors.As.
type RoleError struct {
	Section string // "the owner's"
	Want    string // the role needed
	Got     string // the role connected as
}

func (e *RoleError) Error() string {
	return fmt.Sprintf("evidence: %s connection needs the role %s, but is connected as %s", e.Section, e.Want, e.Got)
}

// Config says what an export reads and from where.
type Config struct {
	// OwnerDSN connects as the owner role: the linter, the key status, the context keys' ids and the list
	// of protected tables, which only it may read. Required.
	OwnerDSN string
	// AuditorDSN connects as the auditor role: the catalog, the audit log and the TLS settings. Required.
	AuditorDSN string
	// RolePrefix names tenantseal's roles (<prefix>_owner, ...). Default: the database's own, as
	// tenantseal.role_name tells them.
	RolePrefix string
	// Lint configures the linter beyond its roles, which come from the role prefix.
	Lint lint.Options
	// Since and Until bound the elevations and operator actions reported, and the counts of entries per
	// kind: at or after Since, before Until. Zero Since: from the first entry; zero Until: the time of
	// the export. The chain is verified whole either way.
	Since, Until time.Time
	// MaxEntries bounds the elevations and the operator actions listed, each; the counts stay exact and
	// the bundle says when a list was cut. Default 10000.
	MaxEntries int
	// Checkpoints, when set, checks the audit chain against signed checkpoints kept outside the database,
	// through the auditor's session, after [audit.Verify]. Nil: the bundle says that no checkpoint was
	// checked.
	Checkpoints func(ctx context.Context, q audit.Querier) (CheckpointResult, error)
	// Isolation, when set, runs the isolation suite with it after everything else was read, and adds its
	// JUnit XML and JSON reports. It needs a superuser and writes throwaway tenants (package isolation):
	// nil, the default, does not run it, and the bundle says so.
	Isolation *isolation.Config
	// ToolVersion is the version of the tool that exports, written to the manifest.
	ToolVersion string
	// Overwrite lets the export write into a directory that is not empty. The files of an earlier bundle
	// (every name an export may write) are removed first; other files are left and are no part of the
	// bundle.
	Overwrite bool
	// Secrets are further values that no file may hold (beside the passwords of the connection strings
	// and the isolation suite's context key, which are always searched for).
	Secrets []string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// CheckpointResult is what Config.Checkpoints found.
type CheckpointResult struct {
	// OK says that every checkpoint matches the chain.
	OK bool
	// Summary says in one line what was checked and found, e.g. "entries 1-420 anchored by 3 checkpoints;
	// 12 newer entries not yet anchored".
	Summary string
	// Details is written to audit.json under checkpoints.details with encoding/json. It must hold no
	// secret.
	Details any
}

// Status is the outcome of one check.
type Status string

// Statuses of a [Check].
const (
	StatusPass   Status = "pass"
	StatusFail   Status = "fail"
	StatusNotRun Status = "not_run" // not configured: not a failure, but no evidence either
)

// Check is the outcome of one check of the bundle: lint, the audit chain, the checkpoints, the isolation
// suite.
type Check struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Summary string `json:"summary"`
}

// File is one file of the bundle, as the manifest lists it.
type File struct {
	Name   string `json:"name"`
	Schema string `json:"schema"`
	SHA256 string `json:"sha256"`
	Bytes  int    `json:"bytes"`
}

// Result is what [Export] wrote.
type Result struct {
	Dir    string
	Checks []Check
	// Files are the files of the bundle but the manifest, which lists them.
	Files []File
}

// OK reports whether no check failed. A check that did not run is no failure.
func (r *Result) OK() bool { return len(r.Failed()) == 0 }

// Failed returns the checks that failed.
func (r *Result) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == StatusFail {
			out = append(out, c)
		}
	}
	return out
}

// Names of the checks.
const (
	CheckLint        = "lint"
	CheckAuditChain  = "audit chain"
	CheckCheckpoints = "audit checkpoints"
	CheckIsolation   = "isolation suite"
)

// Export reads the evidence and writes the bundle to dir, creating it when it does not exist. It fails,
// writing nothing, when dir holds files (unless Config.Overwrite), when a connection or a query fails,
// or when a file would hold a secret ([ErrSecret]); a check that fails is no error: the bundle records
// it and [Result.OK] reports it.
func Export(ctx context.Context, dir string, cfg Config) (*Result, error) {
	if cfg.OwnerDSN == "" || cfg.AuditorDSN == "" {
		return nil, errors.New("evidence: Config needs OwnerDSN and AuditorDSN")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 10000
	}
	start := cfg.Now().UTC()
	if cfg.Until.IsZero() {
		cfg.Until = start
	}
	if !cfg.Since.IsZero() && !cfg.Since.Before(cfg.Until) {
		return nil, fmt.Errorf("evidence: the range is empty: since %s is not before until %s", cfg.Since.Format(time.RFC3339), cfg.Until.Format(time.RFC3339))
	}
	if err := checkDir(dir, cfg.Overwrite); err != nil {
		return nil, err
	}
	sec := newSecrets(cfg)

	b, err := collect(ctx, cfg, sec)
	if err != nil {
		return nil, sec.scrubErr(err)
	}
	b.exportedAt = start
	files, err := b.render(cfg)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if sec.holds(string(f.data)) {
			return nil, fmt.Errorf("%w: %s; nothing written", ErrSecret, f.name)
		}
	}
	res := &Result{Dir: dir, Checks: b.checks}
	for _, f := range files {
		if f.name == FileManifest {
			continue
		}
		res.Files = append(res.Files, fileOf(f.name, f.schema, f.data))
	}
	if err := writeFiles(dir, cfg.Overwrite, files); err != nil {
		return nil, err
	}
	return res, nil
}

func fileOf(name, schema string, data []byte) File {
	sum := sha256.Sum256(data)
	return File{Name: name, Schema: schema, SHA256: hex.EncodeToString(sum[:]), Bytes: len(data)}
}

// checkDir fails unless dir is absent, empty, or overwrite allows it.
func checkDir(dir string, overwrite bool) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("evidence: %w", err)
	case len(entries) > 0 && !overwrite:
		return fmt.Errorf("%w: %s holds %d entries", ErrNotEmpty, dir, len(entries))
	}
	return nil
}

// writeFiles writes files to dir, the manifest last, so that a bundle with a manifest is whole. When a
// write fails, what it wrote is removed again.
func writeFiles(dir string, overwrite bool, files []bundleFile) (err error) {
	created := false
	if _, statErr := os.Stat(dir); errors.Is(statErr, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
		created = true
	}
	var written []string
	defer func() {
		if err == nil {
			return
		}
		for _, p := range written {
			os.Remove(p)
		}
		if created {
			os.Remove(dir)
		}
	}()
	if overwrite {
		for _, name := range bundleFiles {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("evidence: remove the earlier bundle's %s: %w", name, err)
			}
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return fmt.Errorf("evidence: write %s: %w", f.name, err)
		}
		written = append(written, p)
	}
	return nil
}

// secrets are the values no file of the bundle may hold.
type secrets struct {
	// search holds the secrets long enough to search for without false alarms; scrub every one, for
	// error messages.
	search, scrub dsn.Redactor
}

// minSearchLen is the shortest secret the bundle is searched for: a shorter one would turn up by chance
// in hashes and names. It is still scrubbed from messages.
const minSearchLen = 8

func newSecrets(cfg Config) *secrets {
	s := &secrets{}
	add := func(v string) {
		s.scrub.AddSecret(v)
		if len(v) >= minSearchLen {
			s.search.AddSecret(v)
		}
	}
	conns := []string{cfg.OwnerDSN, cfg.AuditorDSN}
	if cfg.Isolation != nil {
		conns = append(conns, cfg.Isolation.SuperDSN, cfg.Isolation.AppDSN)
		if k := cfg.Isolation.ContextKey.Secret; len(k) > 0 {
			add(hex.EncodeToString(k))
			add(strings.ToUpper(hex.EncodeToString(k)))
		}
	}
	for _, c := range conns {
		s.scrub.AddConnString(c)
		if set, err := dsn.Parse(c); err == nil {
			for _, v := range set.Secrets() {
				add(v)
			}
		}
	}
	for _, v := range cfg.Secrets {
		add(v)
	}
	return s
}

func (s *secrets) holds(text string) bool { return s.search.Holds(text) }

// scrubErr returns err with its message scrubbed of every secret, keeping what errors.Is and errors.As
// find.
func (s *secrets) scrubErr(err error) error {
	msg := s.scrub.Redact(err.Error())
	if msg == err.Error() {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// connect opens a session for what, in a read-only repeatable-read transaction: one snapshot for every
// section it reads.
func connect(ctx context.Context, connString, what string) (*pgx.Conn, pgx.Tx, error) {
	c, err := pgx.Connect(ctx, connString)
	if err != nil {
		return nil, nil, fmt.Errorf("evidence: connect as %s: %w", what, err)
	}
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("evidence: begin as %s: %w", what, err)
	}
	return c, tx, nil
}
