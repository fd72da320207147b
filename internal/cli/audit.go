package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
)

var auditCommand = command{
	name:    "audit",
	summary: "verify, tail and export the audit log as the auditor",
	run: func(ctx context.Context, s *session, args []string) error {
		return runAudit(ctx, s, args, follower{interval: time.Second})
	},
}

var auditAbout = `
Subcommands:

	verify [--format text|json] walk the hash chain and report the first broken link: an entry edited,
	                            deleted, inserted or reordered. Exit 1 if the chain is broken. json: one
	                            object, schema tenantseal/audit-verify/v1: {"schema": ..., "intact":
	                            true|false, "verified": entries that hold before any break,
	                            "broken_at": seq or null, "reason": "..." or null}
	tail [--follow] [-n 20]     print the last n entries; --follow then prints new entries as they
	                            arrive, every second, until interrupted (exit 0)
	export --since T            print every entry at or after T, oldest first, as JSON lines for a SIEM.
	                            T is an RFC 3339 time (2006-01-02T15:04:05Z) or a duration ago (24h)
	logins --log FILE           print the refused logins to the database that a PostgreSQL server log
	                            (stderr format; - for stdin) tells: failed authentication, no pg_hba.conf
	                            entry, unknown role or database, no LOGIN or CONNECT, too many
	                            connections. --format json: one object per line. Needs no connection

tail and export take --tenant T (entries whose acting or target tenant is T) and --kind K, one of:
` + kindList() + `.

They connect as the auditor role, the only one that reads every tenant's entries: --dsn, else
$TENANTSEAL_AUDITOR_DSN, else the TENANTSEAL_AUDITOR_DSN line of the secrets file.
` + auditCheckpointAbout

// The auditor's connection flags have the owner's names.
var auditSubcommands = []subcommand{
	{"verify", ownerFlags + " format checkpoints verifier-key"},
	{"tail", ownerFlags + " follow tenant kind format n"},
	{"export", ownerFlags + " since tenant kind format"},
	{"logins", "log format"},
}

// follower is how `audit tail --follow` polls: every interval, calling polled (a test hook, may be nil)
// after each poll.
type follower struct {
	interval time.Duration
	polled   func()
}

func runAudit(ctx context.Context, s *session, args []string, fw follower) error {
	f := newFlags(s, "audit", "[flags] verify [--format text|json] [--checkpoints DIR --verifier-key FILE] | tail [--follow] [--tenant T] [--kind K] [--format text|json] [-n 20] | export --since T [--format jsonl] | logins --log FILE [--format text|json] | keygen | checkpoint | prove SEQ", auditAbout)
	conn := f.auditorConn()
	cf := f.checkpointFlags(conn)
	follow := f.Bool("follow", false, "with tail: keep printing new entries until interrupted")
	tenant := f.String("tenant", "", "with tail, export: only entries whose acting or target tenant is this one")
	kind := f.String("kind", "", "with tail, export: only entries of this kind")
	format := f.String("format", "", "with verify, tail: text (default) or json; with export: jsonl (default)")
	n := f.Int("n", 20, "with tail: how many of the last entries to print")
	since := f.String("since", "", "with export: entries at or after this RFC 3339 time, or this long ago (24h)")
	logFile := f.String("log", "", "with logins: the PostgreSQL server log to read, - for stdin")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("audit: missing subcommand: verify, tail, export, logins, keygen, checkpoint or prove (see 'tenantseal audit -h')")
	}
	sub := pos[0]
	switch sub {
	case "verify", "tail", "export", "logins", "keygen", "checkpoint":
	case "prove":
		if len(pos) != 2 {
			return usageErrorf("audit prove: want one argument, the sequence number of the entry")
		}
		pos = pos[1:]
	default:
		return usageErrorf("audit: unknown subcommand %q: want verify, tail, export, logins, keygen, checkpoint or prove", sub)
	}
	if len(pos) > 1 {
		return usageErrorf("audit %s: unexpected argument %q", sub, pos[1])
	}
	if err := f.checkSub(append(auditSubcommands, checkpointSubcommands...), sub); err != nil {
		return err
	}
	if sub == "keygen" {
		return runKeygen(ctx, s, cf, f)
	}
	if sub == "checkpoint" && (*cf.key == "" || *cf.dir == "") {
		return usageErrorf("audit checkpoint: --key FILE (the signing key 'tenantseal audit keygen' writes) and --checkpoints DIR are required")
	}
	verifier, signed, err := anchorFlags(ctx, sub, cf)
	if err != nil {
		return err
	}
	if sub == "logins" {
		return failedLogins(s, *logFile, *format)
	}

	var filter audit.Filter
	if f.set("kind") {
		if filter.Kind = tenantseal.EventKind(*kind); !filter.Kind.Valid() {
			return usageErrorf("audit %s: --kind %q: want one of %s", sub, *kind, kindList())
		}
	}
	if f.set("tenant") {
		if filter.Tenant, err = parseTenant("audit "+sub, "--tenant", *tenant); err != nil {
			return err
		}
	}
	var jsonOut bool
	switch {
	case sub == "verify" && (*format == "" || *format == "text"):
	case sub == "verify" && *format == "json":
		jsonOut = true
	case sub == "verify":
		return usageErrorf("audit verify: --format %q: want text or json", *format)
	case sub == "tail" && (*format == "" || *format == "text"):
	case sub == "tail" && (*format == "json" || *format == "jsonl"):
		jsonOut = true
	case sub == "export" && (*format == "" || *format == "jsonl" || *format == "json"):
		jsonOut = true
	case sub == "tail":
		return usageErrorf("audit tail: --format %q: want text or json", *format)
	case sub == "export":
		return usageErrorf("audit export: --format %q: want jsonl", *format)
	}
	if sub == "tail" && *n < 0 {
		return usageErrorf("audit tail: -n %d: want 0 or more", *n)
	}
	if sub == "export" {
		if !f.set("since") {
			return usageErrorf("audit export: --since is required: an RFC 3339 time (2006-01-02T15:04:05Z) or a duration ago (24h)")
		}
		if filter.Since, err = parseSince(*since, time.Now()); err != nil {
			return err
		}
	}

	dsn, err := conn.auditorDSN()
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if sub == "tail" && *follow && ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))

	switch {
	case sub == "verify" && verifier != nil:
		return verifyAnchored(ctx, s, c, verifier, signed, jsonOut)
	case sub == "verify":
		return verifyLog(ctx, s, c, jsonOut) // Verify checks that the role sees the whole log itself
	case sub == "checkpoint":
		return runCheckpoint(ctx, s, c, cf)
	case sub == "prove":
		return runProve(ctx, s, c, pos[0], verifier, signed)
	}
	// Tail and export as a role that sees part of the log would be silently incomplete.
	if err := audit.CheckWholeLog(ctx, c); err != nil {
		return auditError(sub, c, err)
	}
	if sub == "export" {
		if _, err := audit.Export(ctx, c, s.stdout, filter); err != nil {
			return auditError(sub, c, err)
		}
		return nil
	}
	out := &entryWriter{w: bufio.NewWriter(s.stdout), json: jsonOut}
	err = tailLog(ctx, c, filter, *n, *follow, fw, out)
	if *follow && ctx.Err() != nil {
		// Interrupting is how a follow ends.
		return out.flush()
	}
	return err
}

// kindList names the event kinds tenantseal records, for a message.
func kindList() string {
	var ks []string
	for _, k := range tenantseal.EventKinds() {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ", ")
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, usageErrorf("audit export: --since %s: want a duration ago, not ahead", v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageErrorf("audit export: --since %q: want an RFC 3339 time (2006-01-02T15:04:05Z) or a duration ago (24h, 90m; 168h for a week)", v)
	}
	return t, nil
}

// auditError explains a failure of `audit sub`, connected as c, that an operator can fix; other errors
// keep the audit package's message.
func auditError(sub string, c *pgx.Conn, err error) error {
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, audit.ErrPartialLog):
		return fmt.Errorf("audit %s: role %s sees only part of the audit log (row-level security): connect as the auditor role: --dsn, $%s or the secrets file's %s line",
			sub, c.Config().User, keyAuditorDSN, keyAuditorDSN)
	case errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000"):
		return fmt.Errorf("audit %s: the database has no audit log: run 'tenantseal migrate up' first (%w)", sub, err)
	case errors.As(err, &pe) && pe.Code == "42501":
		return fmt.Errorf("audit %s: permission denied: connect as the auditor role (%s): %w", sub, keyAuditorDSN, err)
	}
	return err
}

// verifyJSON is `audit verify --format json`, schema tenantseal/audit-verify/v1.
type verifyJSON struct {
	Schema   string  `json:"schema"`
	Intact   bool    `json:"intact"`
	Verified int64   `json:"verified"`
	BrokenAt *int64  `json:"broken_at"`
	Reason   *string `json:"reason"`
}

// verifyLog prints the outcome of audit.Verify; a broken chain is a failure the report explains.
func verifyLog(ctx context.Context, s *session, c *pgx.Conn, jsonOut bool) error {
	res, err := audit.Verify(ctx, c)
	if err != nil {
		return auditError("verify", c, err)
	}
	if jsonOut {
		out := verifyJSON{Schema: "tenantseal/audit-verify/v1", Intact: res.Break == nil, Verified: res.Rows}
		if res.Break != nil {
			out.BrokenAt, out.Reason = &res.Break.Seq, &res.Break.Reason
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		s.printf("%s\n", b)
		if res.Break != nil {
			return errReported
		}
		return nil
	}
	if res.Break != nil {
		s.printf("audit log broken at seq %d: %s\n", res.Break.Seq, res.Break.Reason)
		return errReported
	}
	s.printf("audit log intact: %d entries\n", res.Rows)
	return nil
}

// tailLog prints the last n entries matching f and, with follow, every new one until ctx ends.
func tailLog(ctx context.Context, c *pgx.Conn, f audit.Filter, n int, follow bool, fw follower, out *entryWriter) error {
	entries, head, err := audit.Tail(ctx, c, f, n)
	if err != nil {
		return auditError("tail", c, err)
	}
	for i := range entries {
		if err := out.write(&entries[i]); err != nil {
			return err
		}
	}
	if err := out.flush(); err != nil || !follow {
		return err
	}
	f.AfterSeq = head
	err = audit.Follow(ctx, c, f, audit.FollowOptions{Interval: fw.interval, Polled: func() error {
		if err := out.flush(); err != nil {
			return err
		}
		if fw.polled != nil {
			fw.polled()
		}
		return nil
	}}, out.write)
	if err != nil && ctx.Err() == nil {
		return auditError("tail", c, err)
	}
	return nil
}

// entryWriter prints entries as text lines or JSON lines.
type entryWriter struct {
	w    *bufio.Writer
	json bool
}

func (o *entryWriter) write(e *audit.Entry) error {
	if o.json {
		// The encoding of audit.Export, line for line.
		if err := json.NewEncoder(o.w).Encode(e); err != nil {
			return fmt.Errorf("audit tail: encode entry %d: %w", e.Seq, err)
		}
		return nil
	}
	_, err := io.WriteString(o.w, textLine(e)+"\n")
	return err
}

func (o *entryWriter) flush() error { return o.w.Flush() }

// textLine is one entry on one line: sequence number, time, kind, then every other field as name=value,
// "-" for an absent one.
func textLine(e *audit.Entry) string {
	var b strings.Builder
	kind := string(e.Kind)
	fmt.Fprintf(&b, "%d %s %s", e.Seq, e.At.UTC().Format(time.RFC3339), textValue(&kind))
	for _, fl := range []struct {
		name string
		v    *string
	}{
		{"subject", e.Subject}, {"tenant", e.TenantID}, {"target", e.TargetTenant}, {"table", e.Table},
		{"operation", e.Operation}, {"row", e.RowKey}, {"sqlstate", e.SQLState}, {"request_id", e.RequestID},
		{"detail", e.Detail},
	} {
		b.WriteString(" " + fl.name + "=" + textValue(fl.v))
	}
	return b.String()
}

// textValue quotes a value that would be ambiguous on the line or unsafe on a terminal: empty, "-",
// holding spaces, quotes, "=" or anything unprintable (an attacker may choose a subject or row key).
func textValue(v *string) string {
	if v == nil {
		return "-"
	}
	if *v == "" || *v == "-" || strings.ContainsFunc(*v, func(r rune) bool {
		return r == ' ' || r == '"' || r == '=' || r == '\\' || !unicode.IsPrint(r)
	}) {
		return strconv.Quote(*v)
	}
	return *v
}
