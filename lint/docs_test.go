package lint_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/lint"
)

var update = flag.Bool("update", false, "rewrite docs/lint from the rule table and the fixtures")

// docsDir holds a page per rule and an index, generated from the rule table and each rule's fixture.
var docsDir = filepath.Join("..", "docs", "lint")

const docsIndexIntro = `# tenantseal lint rules

` + "`tenantseal lint`" + ` reads the live catalog and reports what lets one tenant reach another's rows (errors)
or costs performance (warnings). Ids are stable; each page says what a rule finds, why it matters, how to
fix it, and shows a change that triggers it. Generated from the rule table (lint/rules.go): run
` + "`go test ./lint -run TestRuleDocs -update`" + ` after changing a rule.

`

// wantDocs renders every page as it should be.
func wantDocs(t *testing.T) map[string]string {
	t.Helper()
	docs := map[string]string{}
	var b bytes.Buffer
	b.WriteString(docsIndexIntro)
	if err := lint.WriteRuleIndex(&b, ""); err != nil {
		t.Fatal(err)
	}
	docs["README.md"] = b.String()
	option := regexp.MustCompile(`(?m)^-- lint: (\S+) (.*)$`)
	for _, r := range lint.Rules() {
		src, err := os.ReadFile(filepath.Join(fixtures, r.ID+".sql"))
		if err != nil {
			t.Fatal(err)
		}
		example := strings.NewReplacer("{{app}}", "tenantseal_app", "{{owner}}", "tenantseal_owner").Replace(string(src))
		example = option.ReplaceAllString(example, "-- (lint with --$1 $2)")
		var page bytes.Buffer
		if err := lint.WriteRuleDoc(&page, r, example); err != nil {
			t.Fatal(err)
		}
		docs[r.ID+".md"] = page.String()
	}
	return docs
}

func TestRuleDocs(t *testing.T) {
	want := wantDocs(t)
	if *update {
		if err := os.MkdirAll(docsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range want {
			if err := os.WriteFile(filepath.Join(docsDir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(docsDir, name))
		if err != nil || string(got) != content {
			t.Errorf("%s is not what the rule table says (%v): run go test ./lint -run TestRuleDocs -update", name, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(docsDir, "*.md"))
	for _, f := range files {
		if _, ok := want[filepath.Base(f)]; !ok {
			t.Errorf("%s documents no rule: remove it", f)
		}
	}
}
