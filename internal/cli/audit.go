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

	"github.com/tenantseal/tenantseal/audit"
)

var auditCommand = command{
	name:    "audit",
	summary: "verify, tail and export the audit log as the auditor",
	run: func(ctx context.Context, s *session, args []string) error {
		return runAudit(ctx, s, args, follower{interval: time.Second})
	},
}

const auditAbout = `
Subcommands:

	verify                      walk the hash chain and report the first broken link: an entry edited,
	                            deleted, inserted or reordered. Exit 1 if the chain is broken
	tail [--follow] [-n 20]     print the last n entries; --follow then prints new entries as they
	                            arrive, every second, until interrupted (exit 0)
	export --since T            print every entry at or after T, oldest first, as JSON lines for a SIEM.
	                            T is an RFC 3339 time (2006-01-02T15:04:05Z) or a duration ago (24h)

tail and export take --tenant T (entries whose acting or target tenant is T) and --kind K (foreign_id,
refused_write, tenant_mismatch, no_tenant, invalid_context, tampered_ciphertext, elevation, shred).

They connect as the auditor role, the only one that reads every tenant's entries: --dsn, else
$TENANTSEAL_AUDITOR_DSN, else the TENANTSEAL_AUDITOR_DSN line of the secrets file.`

// The auditor's connection flags have the owner's names.
var auditSubcommands = []subcommand{
	{"verify", ownerFlags},
	{"tail", ownerFlags + " follow tenant kind format n"},
	{"export", ownerFlags + " since tenant kind format"},
}

// follower is how `audit tail --follow` polls: every interval, calling polled (a test hook, may be nil)
// after each poll.
type follower struct {
	interval time.Duration
	polled   func()
}

// auditPage bounds the entries read per query: tail and export stream a log of any size.
const auditPage = 1000

func runAudit(ctx context.Context, s *session, args []string, fw follower) error {
	f := newFlags(s, "audit", "[flags] verify | tail [--follow] [--tenant T] [--kind K] [--format text|json] [-n 20] | export --since T [--format jsonl]", auditAbout)
	conn := f.auditorConn()
	follow := f.Bool("follow", false, "with tail: keep printing new entries until interrupted")
	tenant := f.String("tenant", "", "with tail, export: only entries whose acting or target tenant is this one")
	kind := f.String("kind", "", "with tail, export: only entries of this kind")
	format := f.String("format", "", "with tail: text (default) or json; with export: jsonl (default)")
	n := f.Int("n", 20, "with tail: how many of the last entries to print")
	since := f.String("since", "", "with export: entries at or after this RFC 3339 time, or this long ago (24h)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("audit: missing subcommand: verify, tail or export (see 'tenantseal audit -h')")
	}
	sub := pos[0]
	switch sub {
	case "verify", "tail", "export":
	default:
		return usageErrorf("audit: unknown subcommand %q: want verify, tail or export", sub)
	}
	if len(pos) > 1 {
		return usageErrorf("audit %s: unexpected argument %q", sub, pos[1])
	}
	if err := f.checkSub(auditSubcommands, sub); err != nil {
		return err
	}

	filter := audit.Filter{Kind: *kind, Limit: auditPage}
	if f.set("tenant") {
		id, err := parseTenant("audit "+sub, "--tenant", *tenant)
		if err != nil {
			return err
		}
		filter.Tenant = id.String() // the canonical form, as stored
	}
	var jsonOut bool
	switch {
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
	if err := requireWholeLog(ctx, c, "audit "+sub); err != nil {
		return err
	}

	out := &entryWriter{w: bufio.NewWriter(s.stdout), json: jsonOut}
	switch sub {
	case "verify":
		return verifyLog(ctx, s, c)
	case "export":
		return exportLog(ctx, c, filter, out)
	}
	err = tailLog(ctx, c, filter, *n, *follow, fw, out)
	if *follow && ctx.Err() != nil {
		// Interrupting is how a follow ends.
		return out.flush()
	}
	return err
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

// wholeLogSQL tells whether the connected role sees every row of the audit log: a superuser, a BYPASSRLS
// role, or one that a permissive SELECT policy with USING (true) applies to (the auditor's). Any other role
// sees a filtered log, or none of it (the owner: the table forces row-level security).
const wholeLogSQL = `
SELECT r.rolsuper OR r.rolbypassrls OR EXISTS (
    SELECT 1 FROM pg_policy p, unnest(p.polroles) AS pr(oid)
     WHERE p.polrelid = 'tenantseal.audit_log'::regclass AND p.polpermissive AND p.polcmd IN ('r', '*')
       AND pg_get_expr(p.polqual, p.polrelid) = 'true'
       AND CASE WHEN pr.oid = 0 THEN true ELSE pg_has_role(pr.oid, 'USAGE') END)
  FROM pg_roles r WHERE r.rolname = current_user`

// requireWholeLog refuses a role that sees only part of the audit log: Verify would report the rows
// hidden from it as deleted, and tail and export would be silently incomplete.
func requireWholeLog(ctx context.Context, c *pgx.Conn, cmd string) error {
	var whole bool
	if err := c.QueryRow(ctx, wholeLogSQL).Scan(&whole); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") {
			return fmt.Errorf("%s: the database has no audit log: run 'tenantseal migrate up' first (%w)", cmd, err)
		}
		if errors.As(err, &pe) && pe.Code == "42501" {
			return fmt.Errorf("%s: permission denied: connect as the auditor role (%s): %w", cmd, keyAuditorDSN, err)
		}
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if !whole {
		return fmt.Errorf("%s: role %s sees only part of the audit log (row-level security): connect as the auditor role: --dsn, $%s or the secrets file's %s line",
			cmd, c.Config().User, keyAuditorDSN, keyAuditorDSN)
	}
	return nil
}

// verifyLog prints the outcome of audit.Verify; a broken chain is a failure the report explains.
func verifyLog(ctx context.Context, s *session, c *pgx.Conn) error {
	res, err := audit.Verify(ctx, c)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if res.Break != nil {
		s.printf("audit log broken at seq %d: %s\n", res.Break.Seq, res.Break.Reason)
		return errReported
	}
	s.printf("audit log intact: %d entries\n", res.Rows)
	return nil
}

// lastSeq is the sequence number of the newest entry: what tail and export stop at, so that they end
// even while events keep arriving (follow picks those up).
func lastSeq(ctx context.Context, c *pgx.Conn) (int64, error) {
	var seq int64
	if err := c.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM tenantseal.audit_log").Scan(&seq); err != nil {
		return 0, fmt.Errorf("audit: read the newest entry: %w", err)
	}
	return seq, nil
}

// exportLog writes every entry matching f up to the newest at the start, a page at a time.
func exportLog(ctx context.Context, c *pgx.Conn, f audit.Filter, out *entryWriter) error {
	head, err := lastSeq(ctx, c)
	if err != nil {
		return err
	}
	_, err = eachEntry(ctx, c, f, head, func(e *audit.Entry) error { return out.write(e) })
	if err != nil {
		return err
	}
	return out.flush()
}

// eachEntry calls fn for every entry after f.AfterSeq that matches f, up to seq upTo (no bound when
// negative), in sequence order, and returns the last sequence number it passed to fn.
func eachEntry(ctx context.Context, c *pgx.Conn, f audit.Filter, upTo int64, fn func(*audit.Entry) error) (int64, error) {
	last := f.AfterSeq
	for {
		f.AfterSeq = last
		page, err := audit.Query(ctx, c, f)
		if err != nil {
			return last, err
		}
		for i := range page {
			if upTo >= 0 && page[i].Seq > upTo {
				return last, nil
			}
			if err := fn(&page[i]); err != nil {
				return last, err
			}
			last = page[i].Seq
		}
		if len(page) < f.Limit {
			return last, nil
		}
	}
}

// tailLog prints the last n entries matching f and, with follow, every new one until ctx ends.
func tailLog(ctx context.Context, c *pgx.Conn, f audit.Filter, n int, follow bool, fw follower, out *entryWriter) error {
	head, err := lastSeq(ctx, c)
	if err != nil {
		return err
	}
	entries, err := lastEntries(ctx, c, f, n, head)
	if err != nil {
		return err
	}
	for i := range entries {
		if err := out.write(&entries[i]); err != nil {
			return err
		}
	}
	if err := out.flush(); err != nil || !follow {
		return err
	}
	// Sequence numbers are assigned under a lock on the chain head, in commit order: polling for larger
	// ones misses nothing.
	f.AfterSeq = head
	t := time.NewTimer(fw.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		last, err := eachEntry(ctx, c, f, -1, func(e *audit.Entry) error { return out.write(e) })
		if err != nil {
			return err
		}
		if err := out.flush(); err != nil {
			return err
		}
		f.AfterSeq = last
		if fw.polled != nil {
			fw.polled()
		}
		t.Reset(fw.interval)
	}
}

// lastEntries returns the last n entries matching f with seq at most head, oldest first. Query reads
// forward only, so it reads windows that end at head, doubling from n entries back, until one holds n
// matches or reaches the start of the log: a sparse filter costs a few index range scans, not a
// transfer of the whole log.
func lastEntries(ctx context.Context, c *pgx.Conn, f audit.Filter, n int, head int64) ([]audit.Entry, error) {
	if n == 0 || head == 0 {
		return nil, nil
	}
	for w := int64(n); ; w *= 2 {
		f.AfterSeq = max(head-w, 0)
		var got []audit.Entry
		_, err := eachEntry(ctx, c, f, head, func(e *audit.Entry) error {
			got = append(got, *e)
			if len(got) >= 2*n+auditPage {
				got = append(got[:0], got[len(got)-n:]...) // keep memory bounded in a dense window
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(got) >= n || f.AfterSeq == 0 {
			return got[max(len(got)-n, 0):], nil
		}
	}
}

// entryWriter prints entries as text lines or JSON lines.
type entryWriter struct {
	w    *bufio.Writer
	json bool
}

func (o *entryWriter) write(e *audit.Entry) error {
	if o.json {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("audit: encode entry %d: %w", e.Seq, err)
		}
		o.w.Write(b)
		return o.w.WriteByte('\n')
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
