package audit_test

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestFailedLoginsParsesEachRefusal(t *testing.T) {
	log := `2026-12-02 08:00:00.123 UTC [41] LOG:  database system is ready to accept connections
2026-12-02 08:00:01.500 UTC [42] FATAL:  password authentication failed for user "app"
2026-12-02 08:00:01.500 UTC [42] DETAIL:  Connection matched pg_hba.conf line 100: "host all all all scram-sha-256"
2026-12-02 08:00:02 UTC [43] FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "mallory", database "tenantseal", SSL off
2026-12-02 08:00:03.000 UTC [44] FATAL:  role "nobody" does not exist
2026-12-02 08:00:04.000 UTC [45] FATAL:  database "nope" does not exist
2026-12-02 08:00:05.000 UTC [46] FATAL:  permission denied for database "tenantseal"
2026-12-02 08:00:06.000 UTC [47] FATAL:  role "ts_probe" is not permitted to log in
2026-12-02 08:00:07.000 UTC [48] FATAL:  too many connections for role "ts_app"
2026-12-02 08:00:08.000 UTC [49] FATAL:  certificate authentication failed for user "ops"
2026-12-02 08:00:09.000 UTC [50] FATAL:  terminating connection due to administrator command
[51] FATAL:  pg_hba.conf rejects connection for host "10.0.0.8", user "eve", database "tenantseal", no encryption
`
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	want := []audit.FailedLogin{
		{At: at("2026-12-02T08:00:01.5Z"), User: "app", Reason: `password authentication failed for user "app"`},
		{At: at("2026-12-02T08:00:02Z"), User: "mallory", Database: "tenantseal", Host: "10.0.0.9", Reason: `no pg_hba.conf entry for host "10.0.0.9", user "mallory", database "tenantseal", SSL off`},
		{At: at("2026-12-02T08:00:03Z"), User: "nobody", Reason: `role "nobody" does not exist`},
		{At: at("2026-12-02T08:00:04Z"), Database: "nope", Reason: `database "nope" does not exist`},
		{At: at("2026-12-02T08:00:05Z"), Database: "tenantseal", Reason: `permission denied for database "tenantseal"`},
		{At: at("2026-12-02T08:00:06Z"), User: "ts_probe", Reason: `role "ts_probe" is not permitted to log in`},
		{At: at("2026-12-02T08:00:07Z"), User: "ts_app", Reason: `too many connections for role "ts_app"`},
		{At: at("2026-12-02T08:00:08Z"), User: "ops", Reason: `certificate authentication failed for user "ops"`},
		{User: "eve", Database: "tenantseal", Host: "10.0.0.8", Reason: `pg_hba.conf rejects connection for host "10.0.0.8", user "eve", database "tenantseal", no encryption`},
	}
	got, err := audit.FailedLogins(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failed logins (-want +got):\n%s", diff)
	}
	if _, err := audit.FailedLogins(strings.NewReader(strings.Repeat("x", audit.MaxLogLine+1))); err == nil {
		t.Error("a line longer than MaxLogLine: got no error")
	}
}

// A login refused by the test server is in its log, as FailedLogins reads it: the user named, and
// nothing of the password tried.
func TestFailedLoginInServerLog(t *testing.T) {
	t.Parallel()
	server := pgtest.SharedCluster(t).Server // a server of TENANTSEAL_TEST_DSN needs a log file: Logs says so
	var b [4]byte
	rand.Read(b[:])
	user, password := "nobody_"+hex.EncodeToString(b[:]), "tried-password-"+hex.EncodeToString(b[:])
	u, err := url.Parse(server.SuperDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	if c, err := pgx.Connect(testContext(t), u.String()); err == nil {
		c.Close(testContext(t))
		t.Fatalf("login as %s: got a connection, want it refused", user)
	}
	var got []audit.FailedLogin
	deadline := time.Now().Add(20 * time.Second)
	for {
		log, err := server.Logs(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(log, password) {
			t.Fatal("the server log holds the password tried")
		}
		if got, err = audit.FailedLogins(strings.NewReader(log)); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(got, func(fl audit.FailedLogin) bool { return fl.User == user && !fl.At.IsZero() }) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.ContainsFunc(got, func(fl audit.FailedLogin) bool { return fl.User == user && !fl.At.IsZero() }) {
		t.Errorf("got failed logins %+v, want one of %s with its time", got, user)
	}
}
