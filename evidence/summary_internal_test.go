package evidence

import (
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/isolation"
	"github.com/tenantseal/tenantseal/lint"
)

func TestMarkdownEscapes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a|b", `a\|b`},
		{"line\nbreak\r\tend", "line break  end"},
		{"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"[click](http://x)", `\[click\](http://x)`},
		{"`code` *bold* _it_", "\\`code\\` \\*bold\\* \\_it\\_"},
		{"bell\x07", "bell\uFFFD"},
	} {
		if got := md(tc.in); got != tc.want {
			t.Errorf("md(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactSettings(t *testing.T) {
	got := redactSettings([]string{"search_path=public", "myapp.api_token=t0k", "pgaudit.log=role", "x.password=p", "vault.secret_id=s", "aws.access_key=k"})
	want := []string{"search_path=public", "myapp.api_token=[redacted]", "pgaudit.log=role", "x.password=[redacted]", "vault.secret_id=[redacted]", "aws.access_key=[redacted]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("redactSettings (-want +got):\n%s", diff)
	}
}

// An isolation report in the bundle: its JUnit XML and JSON files, its failing check, its leaks in the
// summary (the database side of this path runs in the CLI's tests without -short).
func TestRenderIsolationReport(t *testing.T) {
	rep := &isolation.Report{Database: "db", AppRole: "x_app", Tenants: 2, RowsPerTenant: 3, Results: []isolation.Result{
		{Case: "read-by-id", Group: "rows", Target: "customers", Status: isolation.StatusPass, Checks: 4},
		{Case: "owner-bypass", Group: "rows", Target: "notes", Status: isolation.StatusLeak, Checks: 1, Leaks: []string{"the owner read 6 rows of 2 tenants"}},
	}}
	b := &bundle{
		roles: &Roles{Schema: SchemaRoles}, lint: &LintReport{Schema: SchemaLint, Findings: []lint.Finding{}}, keys: &Keys{Schema: SchemaKeys},
		audit: &Audit{Schema: SchemaAudit, Verify: ChainVerify{Intact: true}}, tls: &TLS{Schema: SchemaTLS},
		isolation: rep, checks: []Check{isolationCheck(rep)},
	}
	files, err := b.render(Config{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{}
	for _, f := range files {
		byName[f.name] = string(f.data)
	}
	var suites struct {
		Failures int `xml:"failures,attr"`
		Tests    int `xml:"tests,attr"`
	}
	if err := xml.Unmarshal([]byte(byName[FileJUnit]), &suites); err != nil || suites.Failures != 1 || suites.Tests != 2 {
		t.Errorf("%s: got %+v (%v), want 2 tests, 1 failure\n%s", FileJUnit, suites, err, byName[FileJUnit])
	}
	if !strings.Contains(byName[FileIsolation], `"owner-bypass"`) {
		t.Errorf("%s lacks the leaking case:\n%s", FileIsolation, byName[FileIsolation])
	}
	if got, want := b.checks[0], (Check{Name: CheckIsolation, Status: StatusFail, Summary: "1 leak, 0 errors: owner-bypass on notes"}); got != want {
		t.Errorf("check: got %+v, want %+v", got, want)
	}
	for _, want := range []string{"| isolation suite | **FAIL** | 1 leak, 0 errors: owner-bypass on notes |", "1 passed, 1 leaked",
		"| owner-bypass | notes | leak | the owner read 6 rows of 2 tenants |", "| " + FileJUnit + " | " + SchemaJUnit + " |"} {
		if !strings.Contains(byName[FileSummary], want) {
			t.Errorf("summary.md lacks %q:\n%s", want, byName[FileSummary])
		}
	}
	var m Manifest
	if err := json.Unmarshal([]byte(byName[FileManifest]), &m); err != nil || len(m.Files) != len(files)-1 {
		t.Errorf("manifest: got %d files (%v), want every file but itself", len(m.Files), err)
	}
}
