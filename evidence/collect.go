package evidence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/isolation"
	"github.com/tenantseal/tenantseal/lint"
)

// Manifest is manifest.json: what the bundle is, what its checks found, and the SHA-256 of every other
// file (the manifest cannot hash itself).
type Manifest struct {
	Schema        string    `json:"schema"`
	ToolVersion   string    `json:"tool_version"`
	ExportedAt    time.Time `json:"exported_at"`
	Database      string    `json:"database"`
	Server        string    `json:"server"` // host:port, or the socket directory
	ServerVersion string    `json:"server_version"`
	// ReadAs names the role each section was read as.
	ReadAs map[string]string `json:"read_as"`
	Range  struct {
		Since *time.Time `json:"since"`
		Until time.Time  `json:"until"`
	} `json:"range"`
	Checks []Check `json:"checks"`
	Files  []File  `json:"files"`
}

// LintReport is lint.json.
type LintReport struct {
	Schema    string         `json:"schema"`
	AppRole   string         `json:"app_role"`
	OwnerRole string         `json:"owner_role"`
	Errors    int            `json:"errors"`
	Warnings  int            `json:"warnings"`
	Findings  []lint.Finding `json:"findings"`
}

// bundle is everything read, before it is rendered.
type bundle struct {
	exportedAt             time.Time
	database, server       string
	serverVersion          string
	auditorRole, ownerRole string
	roles                  *Roles
	lint                   *LintReport
	keys                   *Keys
	audit                  *Audit
	tls                    *TLS
	isolation              *isolation.Report // nil when not run or when it could not run
	isolationErr           string
	checks                 []Check
}

// collect reads every section: as the auditor and the owner in one snapshot each, then the isolation
// suite.
func collect(ctx context.Context, cfg Config, sec *secrets) (*bundle, error) {
	b := &bundle{}
	ac, atx, err := connect(ctx, cfg.AuditorDSN, "the auditor")
	if err != nil {
		return nil, err
	}
	defer ac.Close(context.WithoutCancel(ctx))
	defer atx.Rollback(context.WithoutCancel(ctx))
	oc, otx, err := connect(ctx, cfg.OwnerDSN, "the owner")
	if err != nil {
		return nil, err
	}
	defer oc.Close(context.WithoutCancel(ctx))
	defer otx.Rollback(context.WithoutCancel(ctx))

	if err := atx.QueryRow(ctx, "SELECT current_database(), current_setting('server_version'), current_user").Scan(&b.database, &b.serverVersion, &b.auditorRole); err != nil {
		return nil, fmt.Errorf("evidence: server: %w", err)
	}
	b.server = serverAddr(ac.Config().Host, ac.Config().Port)
	if err := checkOwner(ctx, otx); err != nil {
		return nil, err
	}
	names, err := roleNames(ctx, otx, cfg.RolePrefix)
	if err != nil {
		return nil, err
	}
	if err := otx.QueryRow(ctx, "SELECT current_user").Scan(&b.ownerRole); err != nil {
		return nil, fmt.Errorf("evidence: owner: %w", err)
	}
	prot, err := readProtected(ctx, otx)
	if err != nil {
		return nil, err
	}
	if b.roles, err = readRoles(ctx, atx, names, prot); err != nil {
		return nil, err
	}
	if b.lint, err = runLint(ctx, otx, cfg.Lint, names); err != nil {
		return nil, err
	}
	if b.keys, err = readKeys(ctx, otx, cfg.Now()); err != nil {
		return nil, err
	}
	if b.audit, err = readAudit(ctx, atx, cfg, sec); err != nil {
		return nil, err
	}
	b.tls = &TLS{Schema: SchemaTLS}
	if err := readTLSSettings(ctx, atx, b.tls); err != nil {
		return nil, err
	}
	for _, tx := range []pgx.Tx{atx, otx} {
		s, err := readSessionTLS(ctx, tx)
		if err != nil {
			return nil, err
		}
		b.tls.Sessions = append(b.tls.Sessions, s)
	}
	// Done reading: the isolation suite writes, and must not hold these snapshots open.
	atx.Rollback(ctx)
	otx.Rollback(ctx)

	b.checks = append(b.checks, lintCheck(b.lint), chainCheck(b.audit.Verify), checkpointCheck(cfg, b.audit.Checkpoints))
	if cfg.Isolation == nil {
		b.checks = append(b.checks, Check{Name: CheckIsolation, Status: StatusNotRun,
			Summary: "not run: it needs a superuser and writes throwaway tenants; run it against a staging copy (tenantseal evidence export --isolation-dsn)"})
		return b, nil
	}
	rep, err := isolation.Check(ctx, *cfg.Isolation)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	switch {
	case err != nil:
		b.isolationErr = sec.scrub.Redact(err.Error())
		b.checks = append(b.checks, Check{Name: CheckIsolation, Status: StatusFail, Summary: "could not run: " + b.isolationErr})
	default:
		b.isolation = rep
		b.checks = append(b.checks, isolationCheck(rep))
	}
	return b, nil
}

func serverAddr(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// checkOwner fails unless the owner's session is the owner of tenantseal's tables (or a member of it):
// another role would see some tenants' keys or none, through row-level security, and the bundle would
// present that as the whole.
func checkOwner(ctx context.Context, owner pgx.Tx) error {
	var want, user string
	var ok bool
	err := owner.QueryRow(ctx, `SELECT pg_get_userbyid(relowner), current_user, pg_has_role(current_user, relowner, 'USAGE')
		FROM pg_class WHERE oid = to_regclass('tenantseal.tenants')`).Scan(&want, &user, &ok)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNoSchema
	case err != nil:
		return fmt.Errorf("evidence: check the owner: %w", err)
	case !ok:
		return &RoleError{Section: "the owner's", Want: want, Got: user}
	}
	return nil
}

// roleNames returns the roles of prefix, or without one the database's own, as tenantseal.role_name
// tells the owner.
func roleNames(ctx context.Context, owner pgx.Tx, prefix string) (db.RoleNames, error) {
	if prefix != "" {
		return db.Roles(prefix), nil
	}
	var o string
	if err := owner.QueryRow(ctx, "SELECT tenantseal.role_name('owner')").Scan(&o); err != nil {
		return db.RoleNames{}, fmt.Errorf("evidence: tell the role names (set Config.RolePrefix): %w", err)
	}
	return db.Roles(strings.TrimSuffix(o, "_owner")), nil
}

func runLint(ctx context.Context, owner pgx.Tx, opts lint.Options, names db.RoleNames) (*LintReport, error) {
	opts.AppRole, opts.OwnerRole = names.App, names.Owner
	fs, err := lint.Run(ctx, owner, opts)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	r := &LintReport{Schema: SchemaLint, AppRole: names.App, OwnerRole: names.Owner, Findings: fs}
	if r.Findings == nil {
		r.Findings = []lint.Finding{}
	}
	for _, f := range fs {
		if f.Severity == lint.SeverityError {
			r.Errors++
		} else {
			r.Warnings++
		}
	}
	return r, nil
}

func lintCheck(r *LintReport) Check {
	var rules []string
	for _, f := range r.Findings {
		if f.Severity == lint.SeverityError && !slices.Contains(rules, f.Rule) {
			rules = append(rules, f.Rule)
		}
	}
	errs := count(r.Errors, "error")
	if len(rules) > 0 {
		errs += " (" + strings.Join(rules, ", ") + ")"
	}
	c := Check{Name: CheckLint, Status: StatusPass, Summary: errs + ", " + count(r.Warnings, "warning")}
	if r.Errors > 0 {
		c.Status = StatusFail
	}
	return c
}

// count is "1 error", "2 errors".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func chainCheck(v ChainVerify) Check {
	if v.Intact {
		return Check{Name: CheckAuditChain, Status: StatusPass, Summary: fmt.Sprintf("intact: %d entries", v.Verified)}
	}
	return Check{Name: CheckAuditChain, Status: StatusFail, Summary: fmt.Sprintf("broken at seq %d: %s", *v.BrokenAt, *v.Reason)}
}

func checkpointCheck(cfg Config, cp Checkpoints) Check {
	switch {
	case cfg.Checkpoints == nil:
		return Check{Name: CheckCheckpoints, Status: StatusNotRun,
			Summary: "not checked: no checkpoint verifier configured; the hash chain alone does not expose a rewrite by the owner or a superuser"}
	case cp.OK:
		return Check{Name: CheckCheckpoints, Status: StatusPass, Summary: cp.Summary}
	}
	return Check{Name: CheckCheckpoints, Status: StatusFail, Summary: cp.Summary}
}

func isolationCheck(rep *isolation.Report) Check {
	c := rep.Counts()
	if rep.OK() {
		return Check{Name: CheckIsolation, Status: StatusPass,
			Summary: fmt.Sprintf("%d passed, %d not applicable (%d checks)", c[isolation.StatusPass], c[isolation.StatusNA], rep.Checks())}
	}
	var names []string
	for i, r := range append(rep.Leaks(), rep.Errors()...) {
		if i == 5 {
			names = append(names, "...")
			break
		}
		names = append(names, r.Case+" on "+r.Target)
	}
	return Check{Name: CheckIsolation, Status: StatusFail,
		Summary: count(c[isolation.StatusLeak], "leak") + ", " + count(c[isolation.StatusError], "error") + ": " + strings.Join(names, ", ")}
}

// bundleFile is one file to write.
type bundleFile struct {
	name, schema string
	data         []byte
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("evidence: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// render encodes the bundle's files, the summary and the manifest last.
func (b *bundle) render(cfg Config) ([]bundleFile, error) {
	var files []bundleFile
	for _, s := range []struct {
		name, schema string
		v            any
	}{
		{FileRoles, SchemaRoles, b.roles}, {FileLint, SchemaLint, b.lint}, {FileKeys, SchemaKeys, b.keys},
		{FileAudit, SchemaAudit, b.audit}, {FileTLS, SchemaTLS, b.tls},
	} {
		data, err := marshal(s.v)
		if err != nil {
			return nil, err
		}
		files = append(files, bundleFile{s.name, s.schema, data})
	}
	if b.isolation != nil {
		var junit, js bytes.Buffer
		if err := b.isolation.WriteJUnit(&junit); err != nil {
			return nil, fmt.Errorf("evidence: isolation JUnit: %w", err)
		}
		if err := b.isolation.WriteJSON(&js); err != nil {
			return nil, fmt.Errorf("evidence: isolation JSON: %w", err)
		}
		files = append(files, bundleFile{FileJUnit, SchemaJUnit, junit.Bytes()}, bundleFile{FileIsolation, SchemaIsolation, js.Bytes()})
	}
	m := b.manifest(cfg, files)
	summary := b.summary(m)
	files = append(files, bundleFile{FileSummary, SchemaMarkdown, summary})
	m.Files = append(m.Files, fileOf(FileSummary, SchemaMarkdown, summary))
	data, err := marshal(m)
	if err != nil {
		return nil, err
	}
	return append(files, bundleFile{FileManifest, SchemaManifest, data}), nil
}

func (b *bundle) manifest(cfg Config, files []bundleFile) *Manifest {
	m := &Manifest{Schema: SchemaManifest, ToolVersion: cfg.ToolVersion, ExportedAt: b.exportedAt, Database: b.database,
		Server: b.server, ServerVersion: b.serverVersion, Checks: b.checks, Files: []File{},
		ReadAs: map[string]string{
			"roles": b.auditorRole, "audit": b.auditorRole, "tls": b.auditorRole,
			"lint": b.ownerRole, "keys": b.ownerRole, "protected_tables": b.ownerRole,
		}}
	if cfg.Isolation != nil {
		m.ReadAs["isolation"] = "a superuser and the app role (package isolation)"
	}
	m.Range.Since, m.Range.Until = b.audit.Since, b.audit.Until
	for _, f := range files {
		m.Files = append(m.Files, fileOf(f.name, f.schema, f.data))
	}
	return m
}
