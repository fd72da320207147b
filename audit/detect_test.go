package audit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/repo"
)

// want is the part of an entry a detection test checks.
type want struct {
	Kind, Subject, Tenant, Target, Table, Operation, RowKey, SQLState, RequestID string
}

func summary(e audit.Entry) want {
	return want{string(e.Kind), str(e.Subject), str(e.TenantID), str(e.TargetTenant), str(e.Table), str(e.Operation),
		str(e.RowKey), str(e.SQLState), str(e.RequestID)}
}

func TestEachDetectionRecordsExactlyOneEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a", "support")
	b, ctxB := e.tenant(t, "b")
	bc := reference.Customer{DisplayName: "B", Email: "b@x", Phone: "secret-phone-555"}
	if err := e.customers.Insert(ctxB, &bc); err != nil {
		t.Fatal(err)
	}
	ac := reference.Customer{DisplayName: "A", Email: "a@x", Phone: "a-phone"}
	if err := e.customers.Insert(ctxA, &ac); err != nil {
		t.Fatal(err)
	}
	setup := e.events(t)
	if n := countKind(setup, tenantseal.EventKeyUnwrap); n != 4 || len(setup) != n {
		t.Fatalf("setup recorded %s, want the 4 unwraps of two tenants' keysets and nothing else", describe(setup))
	}
	base := 0
	A, B := a.String(), b.String()
	nilS := "<nil>"

	tests := []struct {
		name string
		act  func(t *testing.T)
		want want
	}{
		{"refused write, rolled back", func(t *testing.T) {
			err := e.pool.Tx(ctxA, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctxA, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'x')", b)
				return err
			})
			if sqlState(err) != "42501" {
				t.Fatalf("got %v, want the write refused by the policy (42501)", err)
			}
		}, want{"refused_write", "a-user", A, nilS, "customers", "tx", nilS, "42501", "req-a"}},
		{"refused write, single statement", func(t *testing.T) {
			if _, err := e.pool.Exec(ctxA, "UPDATE customers SET tenant_id = $1", b); sqlState(err) != "42501" {
				t.Fatalf("got %v, want the write refused by the policy (42501)", err)
			}
		}, want{"refused_write", "a-user", A, nilS, "customers", "update", nilS, "42501", "req-a"}},
		{"foreign id", func(t *testing.T) {
			if _, err := e.customers.Get(ctxA, bc.ID); !errors.Is(err, repo.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		}, want{"foreign_id", "a-user", A, nilS, "public.customers", "get", bc.ID.String(), nilS, "req-a"}},
		{"client-supplied tenant", func(t *testing.T) {
			c := reference.Customer{TenantID: b, DisplayName: "x", Email: "x@x"}
			if err := e.customers.Insert(ctxA, &c); !errors.Is(err, repo.ErrTenantMismatch) {
				t.Fatalf("got %v, want ErrTenantMismatch", err)
			}
		}, want{"tenant_mismatch", "a-user", A, B, "customers", "insert", nilS, nilS, "req-a"}}, // a new row: no id yet
		{"no tenant context", func(t *testing.T) {
			if _, err := e.pool.Exec(audit.WithRequestID(testContext(t), "req-anon"), "DELETE FROM customers"); !errors.Is(err, tenantseal.ErrNoTenant) {
				t.Fatalf("got %v, want ErrNoTenant", err)
			}
		}, want{"no_tenant", nilS, nilS, nilS, nilS, "delete", nilS, nilS, "req-anon"}},
		{"tampered ciphertext", func(t *testing.T) {
			if _, err := mustConn(t, e.d.SuperDSN).Exec(testContext(t), "UPDATE customers SET phone = email WHERE id = $1", ac.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.customers.Get(ctxA, ac.ID); !errors.Is(err, repo.ErrTampered) {
				t.Fatalf("got %v, want ErrTampered", err)
			}
		}, want{"tampered_ciphertext", "a-user", A, A, "customers", "decrypt", ac.ID.String(), nilS, "req-a"}},
		{"elevation", func(t *testing.T) {
			ctx, err := e.pool.Elevate(ctxA, b, "ticket 7: billing question", 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.pool.Exec(ctx, "SELECT count(*) FROM customers"); err != nil {
				t.Fatal(err)
			}
		}, want{"elevation", "a-user", A, B, nilS, "select", nilS, nilS, "req-a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.act(t)
			all := e.detections(t)
			got := all[base:]
			base = len(all)
			if len(got) != 1 {
				var kinds []string
				for _, g := range got {
					kinds = append(kinds, string(g.Kind))
				}
				t.Fatalf("got %d events %v, want exactly one", len(got), kinds)
			}
			if diff := cmp.Diff(tc.want, summary(got[0])); diff != "" {
				t.Errorf("event differs (-want +got):\n%s", diff)
			}
			if d := str(got[0].Detail); strings.Contains(d, "secret-phone") || strings.Contains(d, "v1.") {
				t.Errorf("detail %q holds plaintext or a token", d)
			}
		})
	}
	t.Run("a plain miss records nothing", func(t *testing.T) {
		if _, err := e.customers.Get(ctxA, repo.NewID()); !errors.Is(err, repo.ErrNotFound) {
			t.Fatal(err)
		}
		if n := len(e.detections(t)); n != base {
			t.Errorf("got %d new events, want none", n-base)
		}
	})
	t.Run("the elevation detail names reason and ttl", func(t *testing.T) {
		all, err := audit.Query(testContext(t), mustConn(t, e.d.AuditorDSN), audit.Filter{Kind: tenantseal.EventElevation})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 || !strings.Contains(str(all[0].Detail), "ticket 7: billing question") || !strings.Contains(str(all[0].Detail), "ttl 10m0s") {
			t.Errorf("got %v, want one elevation event with reason and ttl", all)
		}
	})
	res, err := audit.Verify(testContext(t), mustConn(t, e.d.AuditorDSN))
	if all := len(e.events(t)); err != nil || res.Break != nil || res.Rows != int64(all) {
		t.Errorf("verify: got %+v (%v), want %d intact rows", res, err, all)
	}
}

func TestInvalidContextIsRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *db.Config) { c.SigningKey = db.ContextKey{ID: "forged", Secret: make([]byte, 32)} })
	tenant, err := e.admin.CreateTenant(testContext(t), "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: tenant, Subject: "mallory"})
	if _, err := e.pool.Exec(ctx, "SELECT count(*) FROM tenantseal.tenants"); !errors.Is(err, db.ErrInvalidContext) {
		t.Fatalf("got %v, want ErrInvalidContext", err)
	}
	got := e.events(t)
	if len(got) != 1 || got[0].Kind != "invalid_context" || str(got[0].SQLState) != db.SQLStateInvalidContext || str(got[0].Subject) != "mallory" {
		t.Fatalf("got %v, want one invalid_context event by mallory", got)
	}
	if strings.Contains(str(got[0].Detail), "v1.") {
		t.Errorf("detail %q holds the token", str(got[0].Detail))
	}
}

func TestTenantsSeeOnlyTheirOwnEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	for _, w := range []struct {
		ctx    context.Context
		target tenantseal.TenantID
	}{{ctxA, b}, {ctxB, a}} {
		if _, err := e.pool.Exec(w.ctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'x')", w.target); sqlState(err) != "42501" {
			t.Fatalf("write into %s: got %v, want it refused by the policy (42501)", w.target, err)
		}
	}
	if all := e.events(t); len(all) != 2 {
		t.Fatalf("the auditor sees %d events, want 2", len(all))
	}
	for tenant, ctx := range map[tenantseal.TenantID]context.Context{a: ctxA, b: ctxB} {
		got, err := audit.OwnEvents(ctx, e.pool, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Numbered within the tenant: no sequence number of the chain, whose gaps tell the others' volume.
		if len(got) != 1 || str(got[0].TenantID) != tenant.String() || got[0].Seq != 1 || got[0].Hash != nil {
			t.Errorf("tenant %s reads %+v, want only its own event, numbered 1, without hashes", tenant, got)
		}
	}
	// The app role writes nothing of the audit log and reads no audit table.
	app := mustConn(t, e.d.AppDSN)
	for _, sql := range []string{
		"INSERT INTO tenantseal.audit_log (seq, event_id, at, kind, prev_hash, hash) VALUES (999, gen_random_uuid(), now(), 'x', '', '')",
		"UPDATE tenantseal.audit_head SET seq = 0",
		"SELECT tenantseal.audit_canonical(NULL::tenantseal.audit_log)",
		"SELECT tenantseal.audit_append('[]')",
		"SELECT count(*) FROM tenantseal.audit_log",
		"SELECT 1 FROM tenantseal.audit_head FOR UPDATE",
	} {
		if _, err := app.Exec(testContext(t), sql); sqlState(err) != "42501" {
			t.Errorf("%s as the app role: got %v, want permission denied (42501)", sql, err)
		}
	}
}
