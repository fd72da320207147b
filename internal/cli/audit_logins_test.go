package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditLogins(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "postgresql.log")
	log := `2026-12-02 08:00:00.123 UTC [41] LOG:  database system is ready to accept connections
2026-12-02 08:00:01.500 UTC [42] FATAL:  password authentication failed for user "app"
2026-12-02 08:00:02.000 UTC [43] FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "mallory", database "tenantseal", SSL off
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, "audit", "logins", "--log", path)
	want := "2026-12-02T08:00:01.5Z\tuser=app\tdatabase=-\thost=-\tpassword authentication failed for user \"app\"\n" +
		"2026-12-02T08:00:02Z\tuser=mallory\tdatabase=tenantseal\thost=10.0.0.9\tno pg_hba.conf entry for host \"10.0.0.9\", user \"mallory\", database \"tenantseal\", SSL off\n"
	if r.stdout != want {
		t.Errorf("text: got %q, want %q", r.stdout, want)
	}
	wantContains(t, "stderr", r.stderr, "2 refused logins")
	r = mustRun(t, "audit", "logins", "--log", path, "--format", "json")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 ||
		lines[1] != `{"at":"2026-12-02T08:00:02Z","user":"mallory","database":"tenantseal","host":"10.0.0.9","reason":"no pg_hba.conf entry for host \"10.0.0.9\", user \"mallory\", database \"tenantseal\", SSL off"}` {
		t.Errorf("json: got %q", r.stdout)
	}
	wantFailure(t, run(t, "audit", "logins"), 2, "--log is required")
	wantFailure(t, run(t, "audit", "logins", "--log", path, "--format", "csv"), 2, "want text or json")
	wantFailure(t, run(t, "audit", "logins", "--log", path, "--since", "1h"), 2, "--since goes with export only")
	wantFailure(t, run(t, "audit", "logins", "--log", filepath.Join(t.TempDir(), "missing.log")), 1, "audit logins", "missing.log")
}
