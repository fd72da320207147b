package adopt_test

import (
	"os"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/adopt"
)

// docBlock returns the statements of the indented block that follows the line of doc.go containing
// after: comment lines dropped, continuation lines joined.
func docBlock(t *testing.T, doc, after string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, after)
	if !ok {
		t.Fatalf("doc.go has no %q", after)
	}
	var out []string
	started := false
	for _, line := range strings.Split(rest, "\n")[1:] {
		line = strings.TrimPrefix(line, "//")
		switch {
		case strings.HasPrefix(line, "\t    "):
			out[len(out)-1] += " " + strings.TrimSpace(line)
		case strings.HasPrefix(line, "\t--"):
		case strings.HasPrefix(line, "\t"):
			out = append(out, strings.TrimPrefix(line, "\t"))
			started = true
		case started && strings.TrimSpace(line) != "":
			return out
		}
	}
	return out
}

// TestDocExample runs the worked example of the package documentation and checks that the up file makes
// every statement the documentation shows.
func TestDocExample(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.ReplaceAll(string(src), "public", "docs") // the template database has public tables of its own
	schema := docBlock(t, doc, "A Rails-style schema")
	want := docBlock(t, doc, "The up file then makes")
	if len(schema) < 5 || len(want) < 10 {
		t.Fatalf("got schema %q and statements %q from doc.go", schema, want)
	}
	d, c := mustDatabase(t, "CREATE SCHEMA docs; SET search_path = docs;\n"+strings.Join(schema, "\n")+"\nRESET search_path;")
	p := mustGenerate(t, c, adopt.Declaration{Schemas: []string{"docs"}, TenantColumn: "company_id",
		Registry: &adopt.Registry{Table: "docs.companies", Key: "id", Name: "name"}})
	up := strings.NewReplacer(d.Roles.App, "tenantseal_app", d.Roles.Owner, "tenantseal_owner").Replace(p.UpSQL())
	for _, w := range want {
		if !strings.Contains(up, w) {
			t.Errorf("the up file lacks the documented\n\t%s\ngot:\n%s", w, up)
		}
	}
}
