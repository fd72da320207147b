package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/retention"
	"github.com/tenantseal/tenantseal/tenants"
)

var retentionCommand = command{
	name:    "retention",
	summary: "keep each tenant's data no longer than its retention policy: policies, and the job that deletes and shreds",
	run:     runRetention,
}

const retentionAbout = `
Subcommands:

	policy set NAME [--rule TABLE.COLUMN=AGE]... [--shred-after GRACE]
	                                 create the retention policy NAME, or replace its rules and grace
	                                 period, raising its version. A rule deletes the rows of TABLE (a
	                                 table tenantseal.protect_table protected) whose COLUMN (timestamptz,
	                                 timestamp or date) is older than AGE: whole days (90d) or a duration
	                                 (36h). --shred-after crypto-shreds the keysets of a tenant deleted
	                                 under the policy GRACE after its deletion (0d: at the next run);
	                                 without it the job never shreds. NAME: a lower-case letter, then
	                                 lower-case letters, digits, '-' or '_', at most 63 bytes
	policy list [--format text|json] print every policy: name, version, rules, grace period
	policy delete NAME               delete a policy that no tenant has
	run [--dry-run] [--tenant T] [--batch N]
	                                 apply every tenant's policy (or tenant T's): delete, as the tenant
	                                 and through row-level security, in transactions of N rows (default
	                                 1000), the rows past each rule's cut-off (the time of the run less
	                                 the rule's age); shred the tenants deleted longer ago than their
	                                 grace period. Every deletion is recorded in the audit log as a
	                                 deletion_certificate: tenant, table, rows, cut-off, policy and
	                                 version, operator; never row contents. --dry-run prints what would
	                                 go and changes and records nothing

'tenantseal tenants set-retention T POLICY' gives a tenant its policy; a tenant without one keeps
everything. Only active tenants' rows are deleted: the database refuses the tenant context of a
suspended or deleted tenant, and run says which it skipped. A run that finds nothing records nothing.
Interrupted (SIGINT, SIGTERM), run certifies what committed and exits 130 or 143; running it again
resumes. One run at a time: a second one meanwhile fails. run needs the app role's connection string
(--app-dsn, $TENANTSEAL_APP_DSN or the secrets file) and the context key, as 'keys reencrypt' does;
every change needs the audit writer's connection string.

policy list --format json prints one object, schema tenantseal/retention-policies/v1:

	{"schema": "tenantseal/retention-policies/v1", "policies": [{"name": "...", "version": <n>,
	  "rules": [{"table": "...", "column": "...", "max_age": "90d"}], "shred_after": "30d" or null,
	  "updated_at": "<RFC 3339>"}]}`

var retentionSubcommands = []subcommand{
	{"policy set", ownerFlags + " rule shred-after quiet verbose"},
	{"policy list", ownerFlags + " format quiet verbose"},
	{"policy delete", ownerFlags + " quiet verbose"},
	{"run", ownerFlags + " dry-run tenant batch app-dsn prefix quiet verbose"},
}

// ruleFlags collects repeated --rule TABLE.COLUMN=AGE.
type ruleFlags []retention.Rule

func (r *ruleFlags) String() string { return "" }

func (r *ruleFlags) Set(v string) error {
	target, age, ok := strings.Cut(v, "=")
	dot := strings.LastIndex(target, ".")
	if !ok || dot <= 0 || dot == len(target)-1 {
		return fmt.Errorf("want TABLE.COLUMN=AGE (events.created_at=90d), got %q", v)
	}
	d, err := retention.ParseAge(age)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "retention: "))
	}
	*r = append(*r, retention.Rule{Table: target[:dot], Column: target[dot+1:], MaxAge: d})
	return nil
}

func runRetention(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "retention", "policy set NAME [--rule TABLE.COLUMN=AGE]... [--shred-after GRACE] | policy list | policy delete NAME | run [--dry-run] [--tenant T] [--batch N]", retentionAbout)
	conn := f.ownerConn()
	app := f.appConn(conn, "run")
	out := f.output("text", "json")
	var rules ruleFlags
	f.Var(&rules, "rule", "with policy set: TABLE.COLUMN=AGE, repeated: delete rows of TABLE whose COLUMN is older than AGE (90d, 36h)")
	shredAfter := f.String("shred-after", "", "with policy set: shred a deleted tenant's keysets this long after its deletion (30d; 0d: at the next run)")
	dryRun := f.Bool("dry-run", false, "with run: print what would be deleted and shredded; change and record nothing")
	tenant := f.String("tenant", "", "with run: only this tenant")
	batch := f.Int("batch", retention.DefaultBatchSize, "with run: rows deleted per transaction")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	sub := ""
	var rest []string
	switch {
	case len(pos) == 0:
		return usageErrorf("retention: missing subcommand: policy set, policy list, policy delete or run (see 'tenantseal retention -h')")
	case pos[0] == "run":
		sub, rest = "run", pos[1:]
	case pos[0] == "policy" && len(pos) > 1 && (pos[1] == "set" || pos[1] == "list" || pos[1] == "delete"):
		sub, rest = "policy "+pos[1], pos[2:]
	case pos[0] == "policy":
		return usageErrorf("retention policy: want set, list or delete")
	default:
		return usageErrorf("retention: unknown subcommand %q: want policy set, policy list, policy delete or run", pos[0])
	}
	switch want := map[string]int{"run": 0, "policy list": 0, "policy set": 1, "policy delete": 1}[sub]; {
	case len(rest) != want && want == 0:
		return usageErrorf("retention %s: unexpected argument %q", sub, rest[0])
	case len(rest) != want:
		return usageErrorf("retention %s: needs exactly one policy name: 'tenantseal retention %s NAME'", sub, sub)
	case want == 1:
		if err := retention.ValidateName(rest[0]); err != nil {
			return usageErrorf("retention %s: %s", sub, strings.TrimPrefix(err.Error(), "retention: invalid policy: "))
		}
	}
	if err := f.checkSub(retentionSubcommands, sub); err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	switch sub {
	case "policy set":
		p := retention.Policy{Name: rest[0], Rules: rules}
		if f.set("shred-after") {
			g, err := retention.ParseGrace(*shredAfter)
			if err != nil {
				return usageErrorf("retention policy set: --shred-after: %s", strings.TrimPrefix(err.Error(), "retention: "))
			}
			p.ShredAfter = &g
		}
		return setPolicy(ctx, s, conn, p)
	case "policy list":
		return listPolicies(ctx, s, conn, out.json())
	case "policy delete":
		return deletePolicy(ctx, s, conn, rest[0])
	}
	opts := retention.Options{DryRun: *dryRun, BatchSize: *batch}
	if *batch < 1 {
		return usageErrorf("retention run: --batch must be at least 1, got %d", *batch)
	}
	if f.set("tenant") {
		id, err := parseTenant("retention run", "--tenant", *tenant)
		if err != nil {
			return err
		}
		opts.Tenants = []tenantseal.TenantID{id}
	}
	return runRetentionJob(ctx, s, conn, app, opts)
}

// policyError explains a refused policy change; other errors as the owner's.
func policyError(sub string, err error) error {
	if errors.Is(err, retention.ErrInvalidPolicy) || errors.Is(err, retention.ErrNoPolicy) || errors.Is(err, retention.ErrPolicyInUse) {
		return fmt.Errorf("retention %s: %s", sub, strings.TrimPrefix(err.Error(), "retention: "))
	}
	return ownerError(err)
}

func setPolicy(ctx context.Context, s *session, conn *connFlags, p retention.Policy) error {
	c, log, err := ownerWithLog(ctx, s, conn, "retention policy set")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	stored, changed, err := retention.SetPolicy(asOperator(ctx), c, log.w, p)
	if err != nil {
		return log.close(ctx, policyError("policy set", err))
	}
	if !changed {
		s.printf("policy %s is so already (version %d): nothing changed\n", stored.Name, stored.Version)
	} else {
		s.printf("policy %s\n", stored)
	}
	return log.close(ctx, nil)
}

func deletePolicy(ctx context.Context, s *session, conn *connFlags, name string) error {
	c, log, err := ownerWithLog(ctx, s, conn, "retention policy delete")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := retention.DeletePolicy(asOperator(ctx), c, log.w, name); err != nil {
		return log.close(ctx, policyError("policy delete", err))
	}
	s.printf("policy %s is deleted\n", name)
	return log.close(ctx, nil)
}

type policyJSON struct {
	Name       string     `json:"name"`
	Version    int        `json:"version"`
	Rules      []ruleJSON `json:"rules"`
	ShredAfter *string    `json:"shred_after"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

type ruleJSON struct {
	Table  string `json:"table"`
	Column string `json:"column"`
	MaxAge string `json:"max_age"`
}

func listPolicies(ctx context.Context, s *session, conn *connFlags, asJSON bool) error {
	c, err := ownerConnect(ctx, conn, "retention policy list")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	ps, err := retention.Policies(ctx, c)
	if err != nil {
		return ownerError(err)
	}
	if asJSON {
		doc := struct {
			Schema   string       `json:"schema"`
			Policies []policyJSON `json:"policies"`
		}{Schema: "tenantseal/retention-policies/v1", Policies: []policyJSON{}}
		for _, p := range ps {
			pj := policyJSON{Name: p.Name, Version: p.Version, Rules: []ruleJSON{}, UpdatedAt: p.UpdatedAt}
			for _, r := range p.Rules {
				pj.Rules = append(pj.Rules, ruleJSON{Table: r.Table, Column: r.Column, MaxAge: retention.FormatAge(r.MaxAge)})
			}
			if p.ShredAfter != nil {
				g := retention.FormatAge(*p.ShredAfter)
				pj.ShredAfter = &g
			}
			doc.Policies = append(doc.Policies, pj)
		}
		return writeJSON(s, doc)
	}
	tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tRULES\tSHRED_AFTER\tUPDATED_AT")
	for _, p := range ps {
		var rules []string
		for _, r := range p.Rules {
			rules = append(rules, r.Table+"."+r.Column+"="+retention.FormatAge(r.MaxAge))
		}
		shred := "never"
		if p.ShredAfter != nil {
			shred = retention.FormatAge(*p.ShredAfter)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.Name, p.Version, orDash(strings.Join(rules, ",")), shred, p.UpdatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// runRetentionJob runs `retention run`: as the owner, with the app pool for the deletions and, unless a
// dry run, the audit log for the certificates.
func runRetentionJob(ctx context.Context, s *session, conn *connFlags, app *appFlags, opts retention.Options) error {
	appCfg, err := app.resolve()
	if err != nil {
		return err
	}
	c, err := ownerConnect(ctx, conn, "retention run")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var log *auditLog
	var rec tenantseal.Recorder
	if !opts.DryRun {
		if log, err = openAuditLog(ctx, s, conn, "retention run"); err != nil {
			return err
		}
		rec = log.w
		log.done = "rows were deleted"
	}
	done := func(err error) error {
		if log == nil {
			return err
		}
		return log.close(ctx, err)
	}
	pool, err := app.open(ctx, c, appCfg)
	if err != nil {
		return done(err)
	}
	defer pool.Close()
	rep, err := retention.Run(asOperator(ctx), c, pool, rec, opts)
	verb := "deleted"
	if opts.DryRun {
		verb = "would delete"
	}
	for _, ct := range rep.Certificates {
		switch {
		case ct.IsShred() && opts.DryRun:
			s.printf("tenant %s: would shred its keysets (deleted at %s, grace %s, policy %s version %d)\n", ct.Tenant,
				ct.DeletedAt.Format(time.RFC3339), retention.FormatAge(ct.Grace), ct.Policy, ct.Version)
		case ct.IsShred():
			s.printf("tenant %s: shredded its keysets (%s) (deleted at %s, grace %s, policy %s version %d)\n", ct.Tenant, orNone(strings.Join(ct.Shredded, ", ")),
				ct.DeletedAt.Format(time.RFC3339), retention.FormatAge(ct.Grace), ct.Policy, ct.Version)
		default:
			s.printf("tenant %s: %s %d rows of %s whose %s is before %s (older than %s, policy %s version %d)\n", ct.Tenant, verb, ct.Rows, ct.Table,
				ct.Column, ct.Cutoff.UTC().Format(time.RFC3339), retention.FormatAge(ct.MaxAge), ct.Policy, ct.Version)
		}
	}
	for _, sk := range rep.Skipped {
		s.info("tenant %s: skipped: it %s\n", sk.Tenant, sk.Reason)
	}
	switch {
	case err != nil && len(rep.Certificates) > 0 && !opts.DryRun:
		s.printf("(stopped: these committed and are certified; run again to resume)\n")
	case err == nil && len(rep.Certificates) == 0:
		s.printf("nothing is past its retention policy: nothing %s\n", map[bool]string{true: "would be deleted", false: "deleted"}[opts.DryRun])
	}
	switch {
	case errors.Is(err, retention.ErrBusy):
		err = fmt.Errorf("retention run: %s: wait for it to end (one run at a time)", strings.TrimPrefix(err.Error(), "retention: "))
	case errors.Is(err, tenants.ErrNotFound):
		err = fmt.Errorf("retention run: no tenant %s (see 'tenantseal tenants list')", opts.Tenants[0])
	case err != nil:
		err = ownerError(err)
	}
	if err := done(err); err != nil {
		return err
	}
	if len(rep.Certificates) > 0 && !opts.DryRun {
		s.info("recorded %d deletion certificates in the audit log (kind %s)\n", len(rep.Certificates), tenantseal.EventDeletionCertificate)
	}
	return nil
}
