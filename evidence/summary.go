package evidence

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/tenantseal/tenantseal/isolation"
)

// summary renders summary.md: the bundle for a person. Every value from the database is escaped: names,
// audit subjects and details may be chosen by an attacker.
func (b *bundle) summary(m *Manifest) []byte {
	var w bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }
	row := func(cells ...string) { p("| %s |\n", strings.Join(cells, " | ")) }
	head := func(cells ...string) {
		row(cells...)
		p("|%s\n", strings.Repeat("---|", len(cells)))
	}

	p("# Evidence: database %s\n\n", md(b.database))
	version := m.ToolVersion
	if version == "" {
		version = "(version unknown)"
	}
	p("Exported %s by tenantseal %s from PostgreSQL %s at %s. Read as %s (catalog, grants, policies, audit log, TLS) and as %s "+
		"(lint, keys, context keys, protected tables), each in one read-only snapshot. Audit range: %s until %s. "+
		"The machine-readable files beside this one hold the same and more; manifest.json lists each with its SHA-256.\n\n",
		ts(b.exportedAt), md(version), md(b.serverVersion), md(b.server), md(b.auditorRole), md(b.ownerRole),
		sinceText(b.audit.Since), ts(b.audit.Until))

	p("## Checks\n\n")
	head("check", "result", "summary")
	for _, c := range b.checks {
		row(md(c.Name), resultText(c.Status), md(c.Summary))
	}
	p("\n")

	b.summaryRoles(p, row, head)
	b.summaryLint(p, row, head)
	b.summaryKeys(p, row, head)
	b.summaryAudit(p, row, head)
	b.summaryTLS(p, row, head)
	b.summaryIsolation(p, row, head)

	p("## Files\n\n")
	head("file", "schema", "SHA-256")
	for _, f := range m.Files {
		row(md(f.Name), md(f.Schema), f.SHA256)
	}
	p("\nThis summary is hashed in manifest.json, which lists every file of the bundle.\n")
	return w.Bytes()
}

type (
	printer func(format string, a ...any)
	rower   func(cells ...string)
)

func (b *bundle) summaryRoles(p printer, row, head rower) {
	r := b.roles
	p("## Roles\n\n")
	head("role", "kind", "login", "superuser", "bypassrls", "createrole", "createdb", "replication", "connection limit", "settings")
	for _, x := range r.Roles {
		if !x.Exists {
			row(md(x.Name), md(x.Kind), "does not exist", "", "", "", "", "", "", "")
			continue
		}
		limit := "none"
		if x.ConnectionLimit >= 0 {
			limit = fmt.Sprint(x.ConnectionLimit)
		}
		settings := append(append([]string{}, x.Settings...), x.DatabaseSettings...)
		row(md(x.Name), md(x.Kind), yesNo(x.Login), yesNo(x.Superuser), yesNo(x.BypassRLS), yesNo(x.CreateRole), yesNo(x.CreateDB), yesNo(x.Replication),
			limit, md(orNone(strings.Join(settings, ", "))))
	}
	p("\nMemberships (a member can act with the role's privileges):\n\n")
	if len(r.Memberships) == 0 {
		p("- none\n")
	}
	for _, m := range r.Memberships {
		admin := ""
		if m.AdminOption {
			admin = ", with admin option"
		}
		p("- %s is a member of %s (granted by %s%s)\n", md(m.Member), md(m.Role), md(m.Grantor), admin)
	}
	p("\nRoles that row-level security does not hold (superuser or BYPASSRLS):\n\n")
	for _, x := range r.Privileged {
		var what []string
		if x.Superuser {
			what = append(what, "superuser")
		}
		if x.BypassRLS {
			what = append(what, "bypassrls")
		}
		if x.Login {
			what = append(what, "login")
		}
		p("- %s (%s)\n", md(x.Name), strings.Join(what, ", "))
	}
	p("\nDatabase %s, owner %s: %s. Database settings: %s.\n\n", md(r.Database.Name), md(r.Database.Owner), md(grantsText(r.Database.Grants)),
		md(orNone(strings.Join(r.DatabaseSettings, ", "))))
	head("schema", "owner", "grants")
	for _, s := range r.Schemas {
		row(md(s.Name), md(s.Owner), md(grantsText(s.Grants)))
	}

	p("\n### Tables\n\n")
	head("table", "kind", "tenant column", "RLS enabled", "RLS forced", "owner", "grants", "policies")
	for _, t := range r.Tables {
		var pols []string
		for _, pl := range t.Policies {
			pols = append(pols, pl.Name)
		}
		grants := grantsText(t.Grants)
		for _, cg := range t.ColumnGrants {
			grants += "; column " + cg.Column + ": " + grantsText(cg.Grants)
		}
		row(md(t.Name), t.Kind, md(orNone(t.TenantColumn)), yesNo(t.RLS), yesNo(t.ForceRLS), md(t.Owner), md(grants), md(orNone(strings.Join(pols, ", "))))
	}
	p("\n### Policies\n\n")
	head("table", "policy", "command", "permissive", "roles", "using", "with check")
	for _, t := range r.Tables {
		for _, pl := range t.Policies {
			row(md(t.Name), md(pl.Name), pl.Command, yesNo(pl.Permissive), md(strings.Join(pl.Roles, ", ")), md(deref(pl.Using)), md(deref(pl.WithCheck)))
		}
	}
	p("\n### Functions\n\n")
	p("tenantseal's functions and every SECURITY DEFINER function of the other schemas; roles.json has the leakproof marks.\n\n")
	head("function", "owner", "security definer", "grants")
	for _, f := range r.Functions {
		row(md(f.Name), md(f.Owner), yesNo(f.SecurityDefiner), md(grantsText(f.Grants)))
	}
	p("\n")
}

func (b *bundle) summaryLint(p printer, row, head rower) {
	p("## Lint\n\n")
	p("`tenantseal lint` on the live catalog, as %s: %d errors, %d warnings.\n\n", md(b.lint.OwnerRole), b.lint.Errors, b.lint.Warnings)
	if len(b.lint.Findings) == 0 {
		p("No findings.\n\n")
		return
	}
	head("rule", "severity", "object", "message")
	for _, f := range b.lint.Findings {
		row(md(f.Rule), string(f.Severity), md(f.Object), md(f.Message))
	}
	p("\n")
}

func (b *bundle) summaryKeys(p printer, row, head rower) {
	k := b.keys
	p("## Keys\n\n")
	p("Ids, states and dates only: no key material, no keyset was unwrapped. Processes keep opened keysets for at most %s, "+
		"a write encrypted just before may take %s more to commit, and retiring keys waits %s after a rotation.\n\n",
		md(k.MaxCacheTTL), md(k.WriteGrace), md(k.RetireWait))
	if len(k.Tenants) == 0 {
		p("No tenants.\n\n")
	} else {
		head("tenant", "name", "region", "retention", "KEK", "last rotation", "keysets", "quarantined")
		for _, t := range k.Tenants {
			kek := "none"
			switch {
			case t.KEK.Own:
				kek = t.KEK.ID + " (own: " + t.KEK.URI + ")"
			case t.KEK.ID != "":
				kek = t.KEK.ID + " (shared)"
			}
			var sets []string
			for _, ks := range t.Keysets {
				var keys []string
				for _, key := range ks.Keys {
					keys = append(keys, fmt.Sprintf("%d %s", key.ID, key.State))
				}
				sets = append(sets, fmt.Sprintf("%s v%d: %s", ks.Purpose, ks.Version, strings.Join(keys, ", ")))
			}
			keysets := strings.Join(sets, "; ")
			if t.ShreddedAt != nil {
				keysets = "shredded " + ts(*t.ShreddedAt)
			} else if keysets == "" {
				keysets = "none"
			}
			last := "-"
			if t.LastRotation != nil {
				last = ts(*t.LastRotation)
			}
			row(t.ID, md(t.Name), md(orDash(t.Region)), md(orDash(t.RetentionPolicy)), md(kek), last, md(keysets), fmt.Sprint(t.Quarantined))
		}
		p("\n")
	}
	p("### Context signing\n\n")
	if k.Context.AllowUnsigned {
		p("**Unsigned tenant contexts are accepted** (tenantseal.settings.allow_unsigned): the database trusts a plain tenant id.\n\n")
	} else {
		p("Only signed tenant contexts are accepted. Signing keys, by id (the keys themselves are never read):\n\n")
	}
	head("key id", "created", "not after", "state")
	for _, c := range k.Context.Keys {
		na := "-"
		if c.NotAfter != nil {
			na = ts(*c.NotAfter)
		}
		row(md(c.ID), ts(c.CreatedAt), na, c.State)
	}
	p("\n")
}

func (b *bundle) summaryAudit(p printer, row, head rower) {
	a := b.audit
	p("## Audit log\n\n")
	if a.Verify.Intact {
		p("Hash chain intact: %d entries verified.\n\n", a.Verify.Verified)
	} else {
		p("**Hash chain broken at seq %d: %s** (%d entries verified before it).\n\n", *a.Verify.BrokenAt, md(*a.Verify.Reason), a.Verify.Verified)
	}
	if a.Checkpoints.Checked {
		p("Signed checkpoints: %s.\n\n", md(a.Checkpoints.Summary))
	} else {
		p("Signed checkpoints: not checked. The chain alone shows edits by a role that cannot rewrite it; the owner or a superuser could recompute it undetected.\n\n")
	}
	p("Tenant contexts refused by the database since it was migrated: %d.\n\n", a.ContextRefusals)
	p("Entries per kind, %s until %s:\n\n", sinceText(a.Since), ts(a.Until))
	if len(a.Kinds) == 0 {
		p("- none\n")
	}
	for _, k := range a.Kinds {
		p("- %s: %d\n", md(k.Kind), k.Count)
	}
	p("\n### Elevations\n\n")
	entryTable(p, row, head, a.Elevations)
	p("\n### Operator actions\n\n")
	entryTable(p, row, head, a.OperatorActions)
	p("\n")
}

func entryTable(p printer, row, head rower, l EntryList) {
	if l.Count == 0 {
		p("None in the range.\n")
		return
	}
	if l.Truncated {
		p("%d in the range; the first %d are listed here and in audit.json.\n\n", l.Count, len(l.Entries))
	}
	head("seq", "at", "kind", "subject", "tenant", "target tenant", "operation", "detail")
	for _, e := range l.Entries {
		row(fmt.Sprint(e.Seq), ts(e.At), md(string(e.Kind)), md(deref(e.Subject)), md(deref(e.TenantID)), md(deref(e.TargetTenant)),
			md(deref(e.Operation)), md(deref(e.Detail)))
	}
}

func (b *bundle) summaryTLS(p printer, row, head rower) {
	t := b.tls
	p("## TLS\n\n")
	head("setting", "value")
	for _, name := range tlsSettings {
		if v, ok := t.Settings[name]; ok {
			row(md(name), md(v))
		}
	}
	if len(t.Unreadable) > 0 {
		p("\nNot readable by %s: %s (a role needs pg\\_read\\_all\\_settings to read them).\n", md(b.auditorRole), md(strings.Join(t.Unreadable, ", ")))
	}
	p("\nThe export's own sessions (pg_stat_ssl):\n\n")
	head("role", "encrypted", "protocol", "cipher", "bits")
	for _, s := range t.Sessions {
		bits := "-"
		if s.Bits != nil {
			bits = fmt.Sprint(*s.Bits)
		}
		row(md(s.Role), yesNo(s.SSL), md(deref(s.Version)), md(deref(s.Cipher)), bits)
	}
	for _, s := range t.Sessions {
		if !s.SSL {
			p("\n**The session as %s was not encrypted.**\n", md(s.Role))
			break
		}
	}
	p("\n")
}

func (b *bundle) summaryIsolation(p printer, row, head rower) {
	p("## Isolation suite\n\n")
	switch {
	case b.isolation == nil && b.isolationErr == "":
		p("Not run: it needs a superuser and writes throwaway tenants. Run `tenantseal evidence export --isolation-dsn <superuser DSN>` against a staging copy to include it.\n\n")
		return
	case b.isolation == nil:
		p("**Could not run:** %s\n\n", md(b.isolationErr))
		return
	}
	rep := b.isolation
	c := rep.Counts()
	p("Every attack as the app role %s against %d tables (%d tenants, %d rows each): %d passed, %d leaked, %d could not tell, %d not applicable; %d checks. "+
		"isolation.junit.xml and isolation.json hold every case.\n\n",
		md(rep.AppRole), len(rep.Tables), rep.Tenants, rep.RowsPerTenant, c[isolation.StatusPass], c[isolation.StatusLeak], c[isolation.StatusError], c[isolation.StatusNA], rep.Checks())
	bad := append(rep.Leaks(), rep.Errors()...)
	if len(bad) == 0 {
		return
	}
	head("case", "target", "status", "what")
	for _, r := range bad {
		row(md(r.Case), md(r.Target), string(r.Status), md(strings.Join(append(append([]string{}, r.Leaks...), r.Errors...), "; ")))
	}
	p("\n")
}

// md makes s safe in a Markdown table cell: no line breaks, pipes, HTML or control characters.
func md(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r):
			return '\uFFFD'
		}
		return r
	}, s)
	return strings.NewReplacer(`\`, `\\`, "|", `\|`, "<", "&lt;", ">", "&gt;", "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`).Replace(s)
}

func grantsText(gs []Grant) string {
	if len(gs) == 0 {
		return "none"
	}
	var parts []string
	for _, g := range gs {
		parts = append(parts, g.Grantee+": "+strings.Join(g.Privileges, ", "))
	}
	return strings.Join(parts, "; ")
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func sinceText(t *time.Time) string {
	if t == nil {
		return "from the first entry"
	}
	return "from " + ts(*t)
}

func resultText(s Status) string {
	switch s {
	case StatusPass:
		return "pass"
	case StatusFail:
		return "**FAIL**"
	}
	return "not run"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// orDash is *s, "-" when nil.
func orDash(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
