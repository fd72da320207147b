package cli_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func contextKeyArg(d *pgtest.Database) string {
	return fmt.Sprintf("%s:%x", d.ContextKey.ID, d.ContextKey.Secret)
}

func TestIsolationCheckPassesOnShippedSchema(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	// A stock install passes its own check with no --accept-oracle: the existence probe is not the app
	// role's to call.
	r := mustRun(t, "isolation-check", "--dsn", d.SuperDSN, "--app-dsn", d.AppDSN, "--context-key", contextKeyArg(d),
		"--short", "--format", "json")
	var rep struct {
		OK      bool           `json:"ok"`
		Counts  map[string]int `json:"counts"`
		Tables  []struct{ Name string }
		Results []struct{ Case, Target, Status string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, r.stdout)
	}
	if !rep.OK || rep.Counts["leak"] != 0 || rep.Counts["error"] != 0 || rep.Counts["pass"] < 100 {
		t.Errorf("got ok=%v counts=%v, want ok with no leak or error and at least 100 passes", rep.OK, rep.Counts)
	}
	if len(rep.Tables) != 4 {
		t.Errorf("got tables %v, want tenants, customers, invoices, documents", rep.Tables)
	}
	if strings.Contains(r.stdout+r.stderr, fmt.Sprintf("%x", d.ContextKey.Secret)) {
		t.Error("the output shows the context key's secret")
	}
}

// A table whose RLS is not forced, in an otherwise sound database: the check fails, names the leak in
// the report and in its one line on stderr, and the JUnit file has it as a failure.
func TestIsolationCheckFailsOnLeak(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustUnforcedNotes(t, d)
	args := []string{"isolation-check", "--dsn", d.SuperDSN, "--app-dsn", d.AppDSN, "--context-key", contextKeyArg(d),
		"--short", "--accept-oracle", "tenantseal.exists_elsewhere"}
	r := run(t, args...)
	wantFailure(t, r, 1, "isolation check failed: 1 leaks, 0 errors", "owner-bypass on notes")
	wantContains(t, "stdout", r.stdout, "owner-bypass", "LEAK  owner-bypass on notes", "1 leaked")

	out := filepath.Join(t.TempDir(), "report.xml")
	r = run(t, append(args, "--format", "junit", "--output", out)...)
	wantFailure(t, r, 1, "owner-bypass on notes")
	var suites struct {
		Failures int `xml:"failures,attr"`
		Tests    int `xml:"tests,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(mustRead(t, out)), &suites); err != nil {
		t.Fatalf("the JUnit file does not parse: %v", err)
	}
	var failed []string
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			if c.Failure != nil {
				failed = append(failed, c.Name)
			}
		}
	}
	if suites.Failures != 1 || len(failed) != 1 || failed[0] != "owner-bypass notes" || suites.Tests < 100 {
		t.Errorf("got %d failures %v of %d tests, want exactly [owner-bypass notes] of at least 100", suites.Failures, failed, suites.Tests)
	}
}

// Not parallel: it clears the environment variables that would supply the app DSN and key.
func TestIsolationCheckBadInput(t *testing.T) {
	d := pgtest.NewDatabase(t)
	dir := t.TempDir()
	nofile := filepath.Join(dir, "none.env")
	badConfig := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badConfig, []byte(`{"exlude": {"notes": "typo"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no dsn", []string{"--app-dsn", d.AppDSN}, 2, "--dsn"},
		{"bad format", []string{"--dsn", d.SuperDSN, "--format", "xml"}, 2, "--format must be text, json or junit"},
		{"no app dsn", []string{"--dsn", d.SuperDSN, "--secrets", nofile}, 3, "none.env"},
		{"no config file", []string{"--dsn", d.SuperDSN, "--app-dsn", d.AppDSN, "--context-key", contextKeyArg(d), "--config", nofile}, 2, "--config"},
		{"bad config file", []string{"--dsn", d.SuperDSN, "--app-dsn", d.AppDSN, "--context-key", contextKeyArg(d), "--config", badConfig}, 2, `unknown field "exlude"`},
		{"bad key", []string{"--dsn", d.SuperDSN, "--app-dsn", d.AppDSN, "--context-key", "k:abcd"}, 2, "shorter than 32 bytes"},
		{"app role is the superuser", []string{"--dsn", d.SuperDSN, "--app-dsn", d.SuperDSN, "--context-key", contextKeyArg(d)}, 3, "superuser or has BYPASSRLS"},
		{"stray argument", []string{"--dsn", d.SuperDSN, "now"}, 2, `unexpected argument "now"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TENANTSEAL_APP_DSN", "")
			t.Setenv("TENANTSEAL_CONTEXT_KEY", "")
			r := run(t, append([]string{"isolation-check"}, tc.args...)...)
			wantFailure(t, r, tc.code, tc.want)
			if strings.Contains(r.stderr, "abcd") {
				t.Errorf("stderr shows the key: %q", r.stderr)
			}
		})
	}
}

// A table whose rows the suite cannot make up: the check cannot run (exit 3, never the 1 of a leak);
// given the value in a config file, it seeds and attacks the table.
func TestIsolationCheckCouldNotRun(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustExec(t, d.SuperDSN, fmt.Sprintf(`SET ROLE %s;
		CREATE TABLE public.codes (tenant_id uuid NOT NULL, id uuid NOT NULL DEFAULT gen_random_uuid(), code text NOT NULL CHECK (md5(code) = '63343333e2501683924c514fee7f522c'),
			PRIMARY KEY (tenant_id, id));
		SELECT tenantseal.protect_table('public.codes')`, d.Roles.Owner))
	args := []string{"isolation-check", "--dsn", d.SuperDSN, "--app-dsn", d.AppDSN, "--context-key", contextKeyArg(d),
		"--short", "--accept-oracle", "tenantseal.exists_elsewhere", "--format", "json"}
	r := run(t, args...)
	wantFailure(t, r, 3, "seed codes")
	config := filepath.Join(t.TempDir(), "isolation.json")
	if err := os.WriteFile(config, []byte(`{"tables": {"codes": {"values": {"code": "s3cret-shape"}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, append(args, "--config", config)...)
	var rep struct {
		Tables []struct {
			Name       string `json:"name"`
			SeededRows int    `json:"seeded_rows"`
		} `json:"tables"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	seeded := false
	for _, ti := range rep.Tables {
		seeded = seeded || ti.Name == "codes" && ti.SeededRows > 0
	}
	if !seeded {
		t.Errorf("with the configured value, codes was not seeded: %+v", rep.Tables)
	}
}
