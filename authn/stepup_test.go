package authn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/tenants"
)

// mustAuthenticate returns the context of a verified token.
func mustAuthenticate(t testing.TB, w *world, token string) context.Context {
	t.Helper()
	ctx, err := w.auth.Authenticate(testContext(t), token)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// grant asks the hook as db.Pool.Elevate does, for the Principal of ctx moved into tenant.
func grant(w *world, ctx context.Context, tenant tenantseal.TenantID, use bool) error {
	p, _ := tenantseal.PrincipalFrom(ctx)
	p.Tenant = tenant
	return w.auth.AuthorizeElevation(ctx, db.ElevationRequest{Principal: p, Tenant: tenant, Reason: "ticket 1",
		Until: w.clock.Now().Add(time.Minute), Use: use})
}

func TestAuthorizeElevation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, func(c *authn.Config) { c.StepUp.ACR = []string{"urn:example:mfa"} })
	now := w.clock.Now()
	handBuilt := tenantseal.WithPrincipal(testContext(t), tenantseal.Principal{Tenant: tenantB, Subject: w.staff.URL() + "#sam",
		Roles: []string{"support"}, Auth: tenantseal.Authentication{Issuer: w.staff.URL(), Audience: staffAud, TokenID: "x",
			Expires: now.Add(time.Hour), AuthTime: now, AMR: []string{"mfa"}}})
	withRole := func(ctx context.Context) context.Context {
		p, _ := tenantseal.PrincipalFrom(ctx)
		p.Roles = append(p.Roles, "superuser")
		return tenantseal.WithPrincipal(ctx, p)
	}
	roleInPlace := func(ctx context.Context) context.Context {
		p, _ := tenantseal.PrincipalFrom(ctx)
		p.Roles[0] = "superuser" // the Principal's own slice: the verified one stays as it was
		return ctx
	}
	tests := []struct {
		name    string
		ctx     context.Context
		problem string // "" for granted
	}{
		{"staff with MFA and a fresh login", mustAuthenticate(t, w, w.staffToken(nil)), ""},
		{"staff with an MFA acr", mustAuthenticate(t, w, w.staffToken(map[string]any{"amr": []string{"pwd"}, "acr": "urn:example:mfa"})), ""},
		{"tenant user with the support role", mustAuthenticate(t, w, w.userToken(map[string]any{"https://example.com/roles": []string{"support"}})),
			"not a staff token"},
		{"staff without MFA", mustAuthenticate(t, w, w.staffToken(map[string]any{"amr": []string{"pwd"}})), "no multi-factor authentication"},
		{"staff without amr", mustAuthenticate(t, w, w.staffToken(map[string]any{"amr": nil})), "no multi-factor authentication"},
		{"staff logged in 11 minutes ago", mustAuthenticate(t, w, w.staffToken(map[string]any{"auth_time": now.Add(-11 * time.Minute).Unix()})),
			"last login 11m0s ago, more than 10m0s"},
		{"staff without auth_time", mustAuthenticate(t, w, w.staffToken(map[string]any{"auth_time": nil})), "no auth_time"},
		{"staff token without jti", mustAuthenticate(t, w, w.staffToken(map[string]any{"jti": nil})), "no jti"},
		{"a Principal built by hand", handBuilt, "no verified token"},
		{"a verified Principal with a role added", withRole(mustAuthenticate(t, w, w.staffToken(nil))), "differs from the one its token verified"},
		{"a verified Principal with a role changed in place", roleInPlace(mustAuthenticate(t, w, w.staffToken(nil))), "differs from the one its token verified"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := grant(w, tc.ctx, tenantB, false)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("got %v, want granted", err)
				}
				if got := w.events.take(); len(got) != 0 {
					t.Errorf("got events %v, want none", kinds(got))
				}
				return
			}
			var su *authn.StepUpError
			if !errors.As(err, &su) || !errors.Is(err, db.ErrElevation) || !errors.Is(err, authn.ErrStepUpRequired) ||
				!strings.Contains(err.Error(), tc.problem) || su.MaxAge != 600 {
				t.Fatalf("got %v, want a StepUpError (ErrElevation, ErrStepUpRequired, max age 600) with %q", err, tc.problem)
			}
			evs := w.events.take()
			if len(evs) != 1 || evs[0].Kind != tenantseal.EventStepUpRefused || evs[0].TargetTenant != tenantB ||
				!strings.Contains(evs[0].Detail, `elevation reason "ticket 1"`) {
				t.Errorf("got events %+v, want one step_up_refused naming tenant B and the reason", evs)
			}
		})
	}

	t.Run("an elevation naming another tenant than the Principal's", func(t *testing.T) {
		ctx := mustAuthenticate(t, w, w.staffToken(nil))
		p, _ := tenantseal.PrincipalFrom(ctx)
		p.Tenant = tenantA
		err := w.auth.AuthorizeElevation(ctx, db.ElevationRequest{Principal: p, Tenant: tenantB, Reason: "x"})
		if !errors.Is(err, authn.ErrStepUpRequired) || !strings.Contains(err.Error(), "another tenant") {
			t.Errorf("got %v, want a refusal naming the other tenant", err)
		}
		w.events.take()
	})

	t.Run("a token grants one elevation, and is checked at every use", func(t *testing.T) {
		ctx := mustAuthenticate(t, w, w.staffToken(map[string]any{"exp": w.clock.Now().Add(30 * time.Minute).Unix()}))
		if err := grant(w, ctx, tenantA, false); err != nil {
			t.Fatal(err)
		}
		if err := grant(w, ctx, tenantB, false); err == nil || !strings.Contains(err.Error(), "granted an elevation already") {
			t.Errorf("second grant: got %v, want a replay refusal", err)
		}
		if err := grant(w, ctx, tenantA, true); err != nil {
			t.Errorf("use of the granted elevation: %v", err)
		}
		w.clock.Add(10*time.Minute + authn.DefaultSkew + time.Second)
		if err := grant(w, ctx, tenantA, true); err == nil || !strings.Contains(err.Error(), "last login") {
			t.Errorf("use after the login aged: got %v, want a refusal", err)
		}
		w.events.take()
	})
}

func TestElevateThroughPool(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	owner := pgtest.Conn(t, d.OwnerDSN)
	var ids [2]tenantseal.TenantID
	for i, name := range []string{"a", "b"} {
		tn, err := tenants.Create(ctx, owner, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = tn.ID
	}
	a, b := ids[0], ids[1]
	pool := d.Pool(t, func(c *db.Config) {
		c.AuthorizeElevation = w.auth.AuthorizeElevation
		c.Recorder = w.events
	})
	for _, tn := range ids {
		as := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tn, Subject: "seed"})
		if _, err := pool.Exec(as, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2)", tn, "of "+tn.String()[:4]); err != nil {
			t.Fatal(err)
		}
	}
	names := func(ctx context.Context, tenant tenantseal.TenantID) ([]string, error) {
		rows, err := pool.Query(ctx, "SELECT display_name FROM customers WHERE tenant_id = $1", tenant)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}

	staff := mustAuthenticate(t, w, w.staffToken(nil))
	if _, err := names(staff, b); !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("staff before elevation: got %v, want ErrNoTenant", err)
	}
	elevated, err := w.auth.Elevate(staff, pool, b, "ticket 42: totals", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := names(elevated, b); err != nil || len(got) != 1 {
		t.Errorf("elevated read of tenant b: got %v (%v), want its one customer", got, err)
	}
	_, err = pool.Exec(elevated, "UPDATE customers SET display_name = 'x' WHERE tenant_id = $1", b)
	if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "25006" {
		t.Errorf("elevated write: got %v, want SQLSTATE 25006 (read-only)", err)
	}
	if _, err := w.auth.Elevate(staff, pool, a, "ticket 43", 5*time.Minute); !errors.Is(err, authn.ErrStepUpRequired) {
		t.Errorf("a second elevation with the same token: got %v, want ErrStepUpRequired", err)
	}

	user := mustAuthenticate(t, w, w.userToken(map[string]any{"https://example.com/roles": []string{"support"}}))
	if got, err := pool.Elevate(user, b, "curious", time.Minute); !errors.Is(err, authn.ErrStepUpRequired) {
		t.Errorf("tenant user with the support role, through db.Pool.Elevate: got %v, want ErrStepUpRequired", err)
	} else if _, _, ok := db.ElevationFrom(got); ok {
		t.Error("the refused context is elevated")
	}
	noMFA := mustAuthenticate(t, w, w.staffToken(map[string]any{"amr": []string{"pwd"}}))
	if got, err := w.auth.Elevate(noMFA, pool, b, "ticket 44", time.Minute); !errors.Is(err, authn.ErrStepUpRequired) {
		t.Errorf("staff without MFA: got %v, want ErrStepUpRequired", err)
	} else if p, _ := tenantseal.PrincipalFrom(got); !p.Tenant.IsZero() {
		t.Errorf("the refused context acts for tenant %v, want none", p.Tenant)
	}

	// The elevation lapses with the login: the pool asks the hook before every statement.
	w.clock.Add(11 * time.Minute)
	if _, err := names(elevated, b); !errors.Is(err, authn.ErrStepUpRequired) {
		t.Errorf("elevated read after the login aged: got %v, want ErrStepUpRequired", err)
	}
	var elevations, refusals int
	for _, e := range w.events.take() {
		switch e.Kind {
		case tenantseal.EventElevation:
			elevations++
			if !strings.Contains(e.Detail, `reason "ticket 42: totals"`) || e.Subject != w.staff.URL()+"#sam" {
				t.Errorf("elevation event %+v, want the reason and the staff subject", e)
			}
		case tenantseal.EventStepUpRefused:
			refusals++
		}
	}
	if elevations != 2 || refusals != 4 {
		t.Errorf("got %d elevation and %d step-up refusal events, want 2 and 4", elevations, refusals)
	}
}
