package retention_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/eventtest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/retention"
	"github.com/tenantseal/tenantseal/tenants"
)

func sqlState(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// The owner creates and changes policies, each change a new version, recorded; a policy set as it is
// changes nothing. Bad rules are refused, naming why, and change nothing.
func TestSetPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := operator(t)
	rec := &eventtest.Recorder{}
	p := retention.Policy{Name: "standard", ShredAfter: ptr(days(30)),
		Rules: []retention.Rule{{Table: "visits", Column: "day", MaxAge: days(400)}, {Table: "public.events", Column: "created_at", MaxAge: days(90)}}}
	got := e.setPolicy(t, rec, p)
	want := retention.Policy{Name: "standard", Version: 1, ShredAfter: ptr(days(30)), UpdatedAt: got.UpdatedAt,
		Rules: []retention.Rule{{Table: "events", Column: "created_at", MaxAge: days(90)}, {Table: "visits", Column: "day", MaxAge: days(400)}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("created policy (-want +got):\n%s", diff)
	}
	wantEvent := tenantseal.Event{Kind: tenantseal.EventRetentionPolicy, Table: "tenantseal.retention_policies", Operation: "create", RowKey: "standard",
		Detail: "standard version 1 deletes rows of events.created_at older than 90d, visits.day older than 400d; shreds deleted tenants' keysets 30d after their deletion"}
	if diff := cmp.Diff([]tenantseal.Event{wantEvent}, rec.Take()); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}

	// The same again, the tables named otherwise: nothing changes, nothing is recorded.
	same, changed, err := retention.SetPolicy(ctx, e.owner, rec, p)
	if err != nil || changed || same.Version != 1 || len(rec.Take()) != 0 {
		t.Errorf("set as it is: got %+v, changed %v, %v; want version 1 unchanged and nothing recorded", same, changed, err)
	}
	// A change raises the version.
	p.ShredAfter = nil
	p.Rules = p.Rules[1:]
	v2, changed, err := retention.SetPolicy(ctx, e.owner, rec, p)
	if err != nil || !changed || v2.Version != 2 || v2.ShredAfter != nil || len(v2.Rules) != 1 {
		t.Errorf("changed: got %+v, changed %v, %v; want version 2 with one rule and no shred", v2, changed, err)
	}
	if ev := rec.Take(); len(ev) != 1 || ev[0].Operation != "change" || !strings.Contains(ev[0].Detail, "version 2") || !strings.Contains(ev[0].Detail, "never shreds") {
		t.Errorf("got %+v, want the change recorded with its version", ev)
	}
	if ps, err := retention.Policies(ctx, e.owner); err != nil || len(ps) != 1 || !cmp.Equal(ps[0], v2) {
		t.Errorf("policies: got %+v, %v; want the one of version 2", ps, err)
	}

	for _, tc := range []struct {
		name string
		p    retention.Policy
		want string
	}{
		{"a bad name", retention.Policy{Name: "Standard"}, "a policy name is"},
		{"a name with a quote", retention.Policy{Name: "x'; DROP TABLE events; --"}, "a policy name is"},
		{"a negative grace", retention.Policy{Name: "x", ShredAfter: ptr(-time.Hour)}, "must not be negative"},
		{"no column", retention.Policy{Name: "x", Rules: []retention.Rule{{Table: "events", MaxAge: days(1)}}}, "names a table and a timestamp column"},
		{"a zero age", retention.Policy{Name: "x", Rules: []retention.Rule{{Table: "events", Column: "created_at"}}}, "at least a second"},
		{"a missing table", retention.Policy{Name: "x", Rules: []retention.Rule{{Table: "nothing", Column: "at", MaxAge: days(1)}}}, `no table "nothing"`},
		{"a malformed table name", retention.Policy{Name: "x", Rules: []retention.Rule{{Table: "a.b.c.d", Column: "at", MaxAge: days(1)}}}, "table \"a.b.c.d\""},
		{"an unprotected table", retention.Policy{Name: "x", Rules: []retention.Rule{{Table: "unprotected", Column: "at", MaxAge: days(1)}}}, "not a protected tenant table"},
		{"a product table", retention.Policy{Name: "x", Rules: []retention.Rule{{Table: "tenantseal.audit_log", Column: "at", MaxAge: days(1)}}}, "not a protected tenant table"},
		{"a missing column", retention.Policy{Name: "x", Rules: []retention.Rule{{Table: "events", Column: "updated_at", MaxAge: days(1)}}}, "has no column updated_at"},
		{"a column of another type", retention.Policy{Name: "x", Rules: []retention.Rule{{Table: "events", Column: "secret", MaxAge: days(1)}}}, "is of type bytea"},
		{"two rules on one table", retention.Policy{Name: "x", Rules: []retention.Rule{{Table: "events", Column: "created_at", MaxAge: days(1)},
			{Table: "public.events", Column: "created_at", MaxAge: days(2)}}}, "two rules on events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := retention.SetPolicy(ctx, e.owner, rec, tc.p)
			if !errors.Is(err, retention.ErrInvalidPolicy) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrInvalidPolicy saying %q", err, tc.want)
			}
			if _, err := retention.GetPolicy(ctx, e.owner, "x"); !errors.Is(err, retention.ErrNoPolicy) {
				t.Errorf("got %v, want no policy x stored", err)
			}
			if ev := rec.Take(); len(ev) != 0 {
				t.Errorf("got %+v recorded, want nothing", ev)
			}
		})
	}
	if _, _, err := retention.SetPolicy(ctx, e.owner, nil, p); err == nil || !strings.Contains(err.Error(), "Recorder is required") {
		t.Errorf("without a recorder: got %v, want a refusal", err)
	}

	// A policy in use stays; an unused one goes, recorded.
	id := e.tenant(t, "a", "standard")
	if err := retention.DeletePolicy(ctx, e.owner, rec, "standard"); !errors.Is(err, retention.ErrPolicyInUse) || !strings.Contains(err.Error(), "1 tenants") {
		t.Errorf("delete a policy in use: got %v, want ErrPolicyInUse counting the tenant", err)
	}
	if err := tenants.SetRetentionPolicy(ctx, e.owner, id, ""); err != nil {
		t.Fatal(err)
	}
	if err := retention.DeletePolicy(ctx, e.owner, rec, "standard"); err != nil {
		t.Fatal(err)
	}
	if ev := rec.Take(); len(ev) != 1 || ev[0].Operation != "delete" || ev[0].RowKey != "standard" {
		t.Errorf("got %+v, want the deletion recorded", ev)
	}
	if err := retention.DeletePolicy(ctx, e.owner, rec, "standard"); !errors.Is(err, retention.ErrNoPolicy) {
		t.Errorf("delete it again: got %v, want ErrNoPolicy", err)
	}
	if err := tenants.SetRetentionPolicy(ctx, e.owner, id, "standard"); !errors.Is(err, tenants.ErrNoSuchPolicy) {
		t.Errorf("give a tenant a deleted policy: got %v, want ErrNoSuchPolicy", err)
	}
}

// The app role can neither read nor change policies, rules, nor any tenant's region or policy: SQL
// injected into the application cannot shorten or lengthen what is kept.
func TestAppRoleCannotChangeRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setPolicy(t, &eventtest.Recorder{}, retention.Policy{Name: "standard", Rules: []retention.Rule{{Table: "events", Column: "created_at", MaxAge: days(90)}}})
	id := e.tenant(t, "a", "standard")
	ctx := tenantseal.WithPrincipal(pgtest.Context(t), tenantseal.Principal{Tenant: id, Subject: "app"})
	app := pgtest.Conn(t, e.d.AppDSN)
	for _, sql := range []string{
		"SELECT * FROM tenantseal.retention_policies",
		"SELECT * FROM tenantseal.retention_rules",
		"INSERT INTO tenantseal.retention_policies (name) VALUES ('forever')",
		"UPDATE tenantseal.retention_policies SET shred_after = NULL",
		"DELETE FROM tenantseal.retention_rules",
		"INSERT INTO tenantseal.retention_rules (policy, relid, time_column, max_age) VALUES ('standard', 'events', 'created_at', '1 second')",
		"SELECT * FROM tenantseal.tenant_governance",
		"UPDATE tenantseal.tenant_governance SET retention_policy = NULL",
		"INSERT INTO tenantseal.tenant_governance (tenant_id, region) VALUES ('" + id.String() + "', 'us')",
		"SELECT deleted_at FROM tenantseal.tenants",
	} {
		if _, err := app.Exec(ctx, sql); sqlState(err) != "42501" {
			t.Errorf("%s as the app role: got %v, want permission denied (42501)", sql, err)
		}
	}
	// Through the pool, in the tenant's own context, as the application runs.
	err := e.pool.Tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE tenantseal.retention_rules SET max_age = interval '100 years'")
		return err
	})
	if sqlState(err) != "42501" {
		t.Errorf("update the rules in a tenant context: got %v, want 42501", err)
	}
	if _, _, err := retention.SetPolicy(operator(t), app, &eventtest.Recorder{}, retention.Policy{Name: "forever"}); sqlState(err) != "42501" {
		t.Errorf("SetPolicy as the app role: got %v, want 42501", err)
	}
	if err := tenants.SetRegion(operator(t), app, id, "us"); sqlState(err) != "42501" {
		t.Errorf("SetRegion as the app role: got %v, want 42501", err)
	}
	p, err := retention.GetPolicy(operator(t), e.owner, "standard")
	if err != nil || p.Version != 1 || len(p.Rules) != 1 || p.Rules[0].MaxAge != days(90) {
		t.Errorf("got %+v, %v; want the policy as the owner set it", p, err)
	}
}
