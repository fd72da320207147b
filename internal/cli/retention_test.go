package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// The retention commands from policy to certificate: a policy set, a tenant placed and given it, a dry
// run, a run that deletes that tenant's old rows only, and one that finds nothing; each recorded.
func TestRetention(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	mustExec(t, d.OwnerDSN, `CREATE TABLE events (tenant_id uuid NOT NULL REFERENCES tenantseal.tenants (id), id uuid NOT NULL DEFAULT gen_random_uuid(),
		created_at timestamptz NOT NULL, PRIMARY KEY (tenant_id, id)); SELECT tenantseal.protect_table('events')`)
	a := mustTenant(t, d.OwnerDSN, "a")
	b := mustTenant(t, d.OwnerDSN, "b")
	for _, id := range []string{a.String(), b.String()} {
		mustExec(t, d.SuperDSN, "INSERT INTO events (tenant_id, created_at) SELECT $1, now() - interval '40 days' FROM generate_series(1, 3)", id)
		mustExec(t, d.SuperDSN, "INSERT INTO events (tenant_id, created_at) VALUES ($1, now())", id)
	}

	r := mustRun(t, "retention", "policy", "set", "short", "--rule", "events.created_at=30d", "--shred-after", "7d", "--secrets", secrets)
	wantContains(t, "policy set", r.stdout, "short version 1 deletes rows of events.created_at older than 30d; shreds deleted tenants' keysets 7d after")
	r = mustRun(t, "retention", "policy", "set", "short", "--rule", "public.events.created_at=30d", "--shred-after", "168h", "--secrets", secrets)
	wantContains(t, "policy set again", r.stdout, "is so already (version 1): nothing changed")
	mustRun(t, "tenants", "set-region", a.String(), "eu-west-1", "--secrets", secrets)
	mustRun(t, "tenants", "set-retention", a.String(), "short", "--secrets", secrets)
	mustRun(t, "tenants", "set-region", b.String(), "us", "--secrets", secrets)

	var doc struct {
		Tenants []struct {
			ID              string  `json:"id"`
			Region          *string `json:"region"`
			RetentionPolicy *string `json:"retention_policy"`
		} `json:"tenants"`
	}
	r = mustRun(t, "tenants", "list", "--format", "json", "--secrets", secrets)
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Tenants) != 2 || doc.Tenants[0].Region == nil || *doc.Tenants[0].Region != "eu-west-1" ||
		doc.Tenants[0].RetentionPolicy == nil || *doc.Tenants[0].RetentionPolicy != "short" || doc.Tenants[1].RetentionPolicy != nil {
		t.Errorf("tenants list: got %s (%v), want a in eu-west-1 with policy short, b without a policy", r.stdout, err)
	}
	wantContains(t, "tenants list", mustRun(t, "tenants", "list", "--secrets", secrets).stdout, "REGION", "RETENTION", " eu-west-1 ", " short ", " us ")

	r = mustRun(t, "retention", "run", "--dry-run", "--secrets", secrets)
	wantContains(t, "dry run", r.stdout, "tenant "+a.String()+": would delete 3 rows of events whose created_at is before", "policy short version 1")
	count := func(id string) (n int) {
		if err := mustConn(t, d.SuperDSN).QueryRow(testContext(t), "SELECT count(*) FROM events WHERE tenant_id = $1", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(a.String()) != 4 {
		t.Errorf("the dry run deleted something")
	}
	r = mustRun(t, "retention", "run", "--secrets", secrets)
	wantContains(t, "run", r.stdout, "tenant "+a.String()+": deleted 3 rows of events")
	if na, nb := count(a.String()), count(b.String()); na != 1 || nb != 4 {
		t.Errorf("after the run: a has %d events, b %d; want 1 and 4", na, nb)
	}
	wantContains(t, "run again", mustRun(t, "retention", "run", "--secrets", secrets).stdout, "nothing is past its retention policy: nothing deleted")

	var kinds []string
	rows, err := mustConn(t, d.AuditorDSN).Query(testContext(t), "SELECT kind || ' ' || coalesce(operation, '') FROM tenantseal.audit_log WHERE kind IN ('retention_policy', 'deletion_certificate', 'tenant_change') ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, k)
	}
	if got := strings.Join(kinds, ", "); got != "tenant_change create, tenant_change create, retention_policy create, tenant_change set-region, tenant_change set-retention, tenant_change set-region, deletion_certificate delete" {
		t.Errorf("recorded: got %s", got)
	}

	var pdoc struct {
		Schema   string `json:"schema"`
		Policies []struct {
			Name       string  `json:"name"`
			Version    int     `json:"version"`
			ShredAfter *string `json:"shred_after"`
			Rules      []struct {
				Table, Column string
				MaxAge        string `json:"max_age"`
			} `json:"rules"`
		} `json:"policies"`
	}
	r = mustRun(t, "retention", "policy", "list", "--format", "json", "--secrets", secrets)
	if err := json.Unmarshal([]byte(r.stdout), &pdoc); err != nil || pdoc.Schema != "tenantseal/retention-policies/v1" || len(pdoc.Policies) != 1 ||
		pdoc.Policies[0].ShredAfter == nil || *pdoc.Policies[0].ShredAfter != "7d" || len(pdoc.Policies[0].Rules) != 1 || pdoc.Policies[0].Rules[0].MaxAge != "30d" {
		t.Errorf("policy list: got %s (%v)", r.stdout, err)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"retention"}, 2, "missing subcommand"},
		{[]string{"retention", "purge"}, 2, "unknown subcommand"},
		{[]string{"retention", "policy", "set"}, 2, "needs exactly one policy name"},
		{[]string{"retention", "policy", "set", "Bad Name"}, 2, "a policy name is"},
		{[]string{"retention", "policy", "set", "x", "--rule", "events=30d"}, 2, "want TABLE.COLUMN=AGE"},
		{[]string{"retention", "policy", "set", "x", "--rule", "events.created_at=soon"}, 2, "want whole days"},
		{[]string{"retention", "policy", "set", "x", "--shred-after", "-1d"}, 2, "--shred-after"},
		{[]string{"retention", "policy", "set", "x", "--dry-run"}, 2, "--dry-run goes with run only"},
		{[]string{"retention", "policy", "set", "x", "--rule", "nothing.at=1d"}, 1, `no table "nothing"`},
		{[]string{"retention", "policy", "delete", "short"}, 1, "1 tenants have policy short"},
		{[]string{"retention", "run", "--batch", "0"}, 2, "--batch must be at least 1"},
		{[]string{"retention", "run", "--tenant", "00000000-0000-4000-8000-000000000001"}, 1, "no tenant 00000000-0000-4000-8000-000000000001"},
		{[]string{"tenants", "set-region", a.String(), "EU West"}, 2, "invalid region"},
		{[]string{"tenants", "set-region", a.String()}, 2, "needs a tenant id and a region"},
		{[]string{"tenants", "set-retention", a.String(), "nothing"}, 1, `no such retention policy: "nothing"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			wantFailure(t, run(t, append(tc.args, "--secrets", secrets)...), tc.code, tc.want)
		})
	}
}

// retention run stopped by SIGTERM or SIGINT exits 143 or 130 once it has certified what committed; a
// second run meanwhile is refused; the next run resumes and deletes the rest.
func TestRetentionRunInterrupted(t *testing.T) {
	t.Parallel()
	bin := tenantsealBinary(t)
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	mustExec(t, d.OwnerDSN, `CREATE TABLE events (tenant_id uuid NOT NULL REFERENCES tenantseal.tenants (id), id uuid NOT NULL DEFAULT gen_random_uuid(),
		created_at timestamptz NOT NULL, PRIMARY KEY (tenant_id, id)); SELECT tenantseal.protect_table('events')`)
	a := mustTenant(t, d.OwnerDSN, "a")
	mustRun(t, "retention", "policy", "set", "short", "--rule", "events.created_at=30d", "--secrets", secrets)
	mustRun(t, "tenants", "set-retention", a.String(), "short", "--secrets", secrets)
	super := mustConn(t, d.SuperDSN)
	count := func() (n int64) {
		if err := super.QueryRow(testContext(t), "SELECT count(*) FROM events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const n = 3000
	for _, sig := range []struct {
		s    syscall.Signal
		code int
		name string
	}{{syscall.SIGTERM, 143, "SIGTERM"}, {syscall.SIGINT, 130, "SIGINT"}} {
		t.Run(sig.name, func(t *testing.T) {
			mustExec(t, d.SuperDSN, "INSERT INTO events (tenant_id, created_at) SELECT $1, now() - interval '40 days' FROM generate_series(1, $2)", a, n)
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "retention", "run", "--batch", "2", "--secrets", secrets)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Dir = t.TempDir()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			for deadline := time.Now().Add(30 * time.Second); count() == n; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the run deleted nothing in 30s: %s", stderr.String())
				}
			}
			r := run(t, "retention", "run", "--secrets", secrets)
			wantFailure(t, r, 1, "another retention run is in progress", "one run at a time")
			if err := cmd.Process.Signal(sig.s); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			if cmd.ProcessState.ExitCode() != sig.code {
				t.Fatalf("got %v, want exit %d; stdout %q, stderr %q", err, sig.code, stdout.String(), stderr.String())
			}
			if !bytes.HasSuffix(stderr.Bytes(), []byte("tenantseal: interrupted ("+sig.name+")\n")) {
				t.Errorf("got stderr %q, want it to end with the interruption", stderr.String())
			}
			left := count()
			want := fmt.Sprintf("tenant %s: deleted %d rows of events", a, n-left)
			if !strings.Contains(stdout.String(), want) || !strings.Contains(stdout.String(), "(stopped: these committed and are certified; run again to resume)") || left == 0 {
				t.Errorf("got stdout %q with %d rows left, want %q and the stop said", stdout.String(), left, want)
			}
			var detail string
			if err := mustConn(t, d.AuditorDSN).QueryRow(testContext(t),
				"SELECT detail FROM tenantseal.audit_log WHERE kind = 'deletion_certificate' ORDER BY seq DESC LIMIT 1").Scan(&detail); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(detail, fmt.Sprintf("deleted %d rows ", n-left)) || !strings.Contains(detail, "interrupted") {
				t.Errorf("got certificate %q, want the %d rows that committed, marked interrupted", detail, n-left)
			}
			r = mustRun(t, "retention", "run", "--secrets", secrets)
			wantContains(t, "resumed run", r.stdout, fmt.Sprintf("tenant %s: deleted %d rows of events", a, left))
			if got := count(); got != 0 {
				t.Errorf("after the resumed run: %d rows left, want none", got)
			}
		})
	}
}
