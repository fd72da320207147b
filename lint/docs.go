package lint

import (
	"fmt"
	"io"
	"strings"
)

// ruleMarkdown renders a rule's documentation: what it finds, why it matters and how to fix it; with
// heading, as a page of its own (docs/lint/<ID>.md adds an example below it).
func ruleMarkdown(r RuleInfo, heading bool) string {
	var b strings.Builder
	if heading {
		fmt.Fprintf(&b, "# %s: %s\n\nSeverity: %s.\n\n", r.ID, r.Title, r.Severity)
	}
	fmt.Fprintf(&b, "## Why\n\n%s\n\n## How to fix\n\n%s\n", r.Why, r.HowToFix)
	return b.String()
}

// WriteRuleDoc writes the documentation page of rule r, the one SARIF output links to: the rule's
// text, then example, the SQL of a schema change that triggers the rule (the rule's fixture), when
// not empty.
func WriteRuleDoc(w io.Writer, r RuleInfo, example string) error {
	s := ruleMarkdown(r, true)
	if example != "" {
		s += "\n## Example\n\nThis change, applied to a database migrated with tenantseal's migrations and the reference\n" +
			"example's, triggers the rule (and no other):\n\n```sql\n" + strings.TrimRight(example, "\n") + "\n```\n"
	}
	s += "\nAll rules: [README.md](README.md).\n"
	if _, err := io.WriteString(w, s); err != nil {
		return fmt.Errorf("lint: write rule doc: %w", err)
	}
	return nil
}

// WriteRuleIndex writes the list of rules as a Markdown table, one line each, linked to their pages
// relative to the directory docs/lint: the README's lint section and docs/lint/README.md use it.
func WriteRuleIndex(w io.Writer, linkPrefix string) error {
	var b strings.Builder
	b.WriteString("| rule | severity | finds |\n|---|---|---|\n")
	for _, r := range Rules() {
		fmt.Fprintf(&b, "| [%s](%s%s.md) | %s | %s |\n", r.ID, linkPrefix, r.ID, r.Severity, r.Title)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("lint: write rule index: %w", err)
	}
	return nil
}
