package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/eventtest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// roleChanges keeps what a recorder received, to tell the details of its role changes, joined.
type roleChanges struct {
	eventtest.Recorder
	seen []string
}

func (r *roleChanges) details() string {
	for _, ev := range r.Take() {
		if ev.Kind == tenantseal.EventRoleChanged {
			r.seen = append(r.seen, ev.Detail)
		}
	}
	return strings.Join(r.seen, "\n")
}

// PostgreSQL lets a role ALTER ROLE itself; the pool tells, at Open and in its periodic checks. A role
// of its own, a member of the app role, so that changing it disturbs no other test.
func TestRoleChangesAreRecorded(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	role := "watch_" + strings.TrimPrefix(d.Name, d.RolePrefix()+"_")
	super := mustConn(t, d.SuperDSN)
	mustExec(t, super, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'pw'", role))
	t.Cleanup(func() {
		c := mustConn(t, pgtest.SharedCluster(t).Server.SuperDSN)
		c.Exec(context.Background(), fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role))
	})
	mustExec(t, super, fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", d.Name, role))
	// With the app role's privileges (it inherits them), and settings of its own.
	mustExec(t, super, fmt.Sprintf("GRANT %s TO %s", d.Roles.App, role))
	for k, v := range map[string]string{"lock_timeout": "5000", "statement_timeout": "30000", "idle_in_transaction_session_timeout": "60000"} {
		mustExec(t, super, fmt.Sprintf("ALTER ROLE %s SET %s = '%s'", role, k, v))
	}
	u := *mustParseURL(t, d.AppDSN)
	u.User = mustUser(role)
	// One pool checked on demand, one every 50 ms: each must tell every change.
	var rec, periodic roleChanges
	cfg := mustConfig(t, d, u.String())
	cfg.Recorder, cfg.RoleCheckInterval = &rec, -1
	p := mustOpen(t, cfg)
	cfgP := mustConfig(t, d, u.String())
	cfgP.Recorder, cfgP.RoleCheckInterval = &periodic, 50*time.Millisecond
	mustOpen(t, cfgP)
	if got := rec.details() + periodic.details(); got != "" {
		t.Fatalf("at Open, with the session limits only: recorded %q, want nothing", got)
	}
	self := mustConn(t, u.String())
	for _, tc := range []struct {
		name, sql, want string
	}{
		{"a setting for all its sessions", "ALTER ROLE CURRENT_USER SET default_transaction_read_only = on", "default_transaction_read_only=on"},
		{"a bound lifted", "ALTER ROLE CURRENT_USER SET statement_timeout = 0", "statement_timeout=0 lifts a session limit"},
		{"its password", "ALTER ROLE CURRENT_USER PASSWORD 'changed'", "refuses the pool's password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustExec(t, self, tc.sql)
			err := p.CheckRole(ctx)
			var rce *db.RoleChangeError
			if !errors.As(err, &rce) || !errors.Is(err, db.ErrRoleChanged) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckRole: got %v, want a *db.RoleChangeError saying %q", err, tc.want)
			}
			if got := rec.details(); !strings.Contains(got, tc.want) {
				t.Errorf("recorded %q, want an event saying %q", got, tc.want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(periodic.details(), tc.want) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := periodic.details(); !strings.Contains(got, tc.want) {
				t.Errorf("the periodic check recorded %q, want an event saying %q", got, tc.want)
			}
		})
	}
	// A second pool opened now says what is wrong at once.
	mustExec(t, super, fmt.Sprintf("ALTER ROLE %s PASSWORD 'pw'", role))
	var again roleChanges
	cfg2 := mustConfig(t, d, u.String())
	cfg2.Recorder = &again
	cfg2.RoleCheckInterval = -1
	mustOpen(t, cfg2)
	for _, want := range []string{"default_transaction_read_only=on: not a session limit", "statement_timeout=0 lifts"} {
		if got := again.details(); !strings.Contains(got, want) {
			t.Errorf("at Open: recorded %q, want %q", got, want)
		}
	}
}
