package authn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/tenants"
)

// boundTenants creates, in d of tenant key type keyType, tenants of the keys given, and binds them.
func boundTenants(t testing.TB, d *pgtest.Database, keyType string, bind func(owner *pgx.Conn, ids []tenantseal.TenantID), keys ...string) []tenantseal.TenantID {
	t.Helper()
	ctx := testContext(t)
	owner := pgtest.Conn(t, d.OwnerDSN)
	if _, err := owner.Exec(ctx, "UPDATE tenantseal.settings SET tenant_key_type = $1", keyType); err != nil {
		t.Fatal(err)
	}
	var ids []tenantseal.TenantID
	for i, k := range keys {
		id, err := tenantseal.ParseTenantID(k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tenants.Create(ctx, owner, "tenant "+string(rune('a'+i)), nil, tenants.WithID(id)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	bind(owner, ids)
	return ids
}

func mustBind(t testing.TB, owner *pgx.Conn, id tenantseal.TenantID, issuer, claim string) {
	t.Helper()
	if err := tenants.Bind(testContext(t), owner, id, issuer, claim); err != nil {
		t.Fatal(err)
	}
}

// The database registry maps issuer and claim value to the tenant, whatever the type of the tenant
// keys, and refuses an issuer that may not speak for the tenant named.
func TestDBRegistryEveryKeyType(t *testing.T) {
	t.Parallel()
	const customers, partner = "https://customers.example.com/", "https://sso.partner.example.com/"
	for _, tc := range []struct {
		keyType string
		keys    [2]string
		want    [2]tenantseal.TenantID
	}{
		{"uuid", [2]string{"0190a000-0000-7000-8000-00000000000a", "0190b000-0000-7000-8000-00000000000b"}, [2]tenantseal.TenantID{tenantA, tenantB}},
		{"bigint", [2]string{"9007199254740993", "2"}, [2]tenantseal.TenantID{tenantseal.TenantIDFromInt(9007199254740993), tenantseal.TenantIDFromInt(2)}},
		{"integer", [2]string{"7", "-8"}, [2]tenantseal.TenantID{tenantseal.TenantIDFromInt(7), tenantseal.TenantIDFromInt(-8)}},
		{"text", [2]string{"acme", "globex.example"}, [2]tenantseal.TenantID{mustTenantID("acme"), mustTenantID("globex.example")}},
	} {
		t.Run(tc.keyType, func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			boundTenants(t, d, tc.keyType, func(owner *pgx.Conn, ids []tenantseal.TenantID) {
				mustBind(t, owner, ids[0], customers, "org_a")
				mustBind(t, owner, ids[1], customers, "org_b")
				mustBind(t, owner, ids[1], partner, "tid-b")
			}, tc.keys[:]...)
			reg, err := authn.NewDBRegistry(d.Pool(t).Unscoped(), authn.DBRegistryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := testContext(t)
			for _, c := range []struct {
				issuer, claim string
				want          tenantseal.TenantID
				err           error
			}{
				{customers, "org_a", tc.want[0], nil},
				{customers, "org_b", tc.want[1], nil},
				{partner, "tid-b", tc.want[1], nil},
				{partner, "org_a", tc.want[0], authn.ErrIssuerMismatch}, // the partner's IdP may not speak for a
				{customers, "tid-b", tc.want[1], authn.ErrIssuerMismatch},
				{customers, "org_c", tenantseal.TenantID{}, authn.ErrUnknownTenant},
				{customers + "x", "org_a", tenantseal.TenantID{}, authn.ErrUnknownTenant}, // an issuer bound to no tenant learns nothing
				{customers, strings.Repeat("x", authn.MaxClaimLen+1), tenantseal.TenantID{}, authn.ErrUnknownTenant},
			} {
				got, err := reg.Tenant(ctx, c.issuer, c.claim)
				if got != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
					t.Errorf("Tenant(%s, %.20q): got %v, %v; want %v, %v", c.issuer, c.claim, got, err, c.want, c.err)
				}
			}
			if got, _ := reg.Tenant(ctx, customers, "org_a"); got.String() != tc.keys[0] {
				t.Errorf("got key %q, want %q", got, tc.keys[0])
			}
		})
	}
}

// A suspension, a deletion, an unbinding take effect within the registry's TTL, and a resumption
// within its negative TTL: the cache is driven by the clock it is given.
func TestDBRegistryFollowsTenantStatusWithinTTL(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	const iss = "https://customers.example.com/"
	var owner *pgx.Conn
	ids := boundTenants(t, d, "uuid", func(o *pgx.Conn, ids []tenantseal.TenantID) {
		owner = o
		mustBind(t, o, ids[0], iss, "org_a")
		mustBind(t, o, ids[1], iss, "org_b")
	}, tenantA.String(), tenantB.String())
	clock := newClock()
	reg, err := authn.NewDBRegistry(d.Pool(t).Unscoped(), authn.DBRegistryConfig{TTL: 30 * time.Second, NegativeTTL: 10 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(claim string) (tenantseal.TenantID, error) { return reg.Tenant(ctx, iss, claim) }
	if got, err := lookup("org_a"); got != ids[0] || err != nil {
		t.Fatalf("active: got %v, %v; want %v", got, err, ids[0])
	}
	if err := tenants.Suspend(ctx, owner, ids[0]); err != nil {
		t.Fatal(err)
	}
	clock.Add(29 * time.Second)
	if got, err := lookup("org_a"); got != ids[0] || err != nil {
		t.Errorf("suspended, within the TTL: got %v, %v; want the answer held", got, err)
	}
	clock.Add(time.Second)
	_, err = lookup("org_a")
	var ie *authn.InactiveTenantError
	if !errors.As(err, &ie) || ie.Status != "suspended" || ie.Tenant != ids[0] || !errors.Is(err, authn.ErrUnknownTenant) {
		t.Fatalf("suspended, the TTL past: got %v, want an InactiveTenantError of a suspended tenant %v", err, ids[0])
	}
	if err := tenants.Resume(ctx, owner, ids[0]); err != nil {
		t.Fatal(err)
	}
	clock.Add(9 * time.Second)
	if _, err := lookup("org_a"); !errors.As(err, &ie) {
		t.Errorf("resumed, within the negative TTL: got %v, want the refusal held", err)
	}
	clock.Add(time.Second)
	if got, err := lookup("org_a"); got != ids[0] || err != nil {
		t.Errorf("resumed, the negative TTL past: got %v, %v; want %v", got, err, ids[0])
	}

	// Deleted and unbound: refused once the answers held expire.
	if got, err := lookup("org_b"); got != ids[1] || err != nil {
		t.Fatalf("b: got %v, %v", got, err)
	}
	if err := tenants.Delete(ctx, owner, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := tenants.Unbind(ctx, owner, iss, "org_a"); err != nil {
		t.Fatal(err)
	}
	clock.Add(30 * time.Second)
	if _, err := lookup("org_b"); !errors.As(err, &ie) || ie.Status != "deleted" {
		t.Errorf("deleted: got %v, want an InactiveTenantError of a deleted tenant", err)
	}
	if got, err := lookup("org_a"); !errors.Is(err, authn.ErrUnknownTenant) || errors.As(err, &ie) || !got.IsZero() {
		t.Errorf("unbound: got %v, %v; want ErrUnknownTenant", got, err)
	}
	// Forget drops what is held: a new binding is seen at once.
	mustBind(t, owner, ids[0], iss, "org_a")
	reg.Forget()
	if got, err := lookup("org_a"); got != ids[0] || err != nil {
		t.Errorf("bound again, after Forget: got %v, %v; want %v", got, err, ids[0])
	}
}

// A failure of the database is no answer: it is not held, and the token is refused as unavailable.
func TestDBRegistryFailureIsNotCached(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	const iss = "https://customers.example.com/"
	boundTenants(t, d, "uuid", func(o *pgx.Conn, ids []tenantseal.TenantID) { mustBind(t, o, ids[0], iss, "org_a") }, tenantA.String())
	q := &failing{conn: pgtest.Conn(t, d.AppDSN), fail: true}
	reg, err := authn.NewDBRegistry(q, authn.DBRegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if _, err := reg.Tenant(ctx, iss, "org_a"); err == nil || errors.Is(err, authn.ErrUnknownTenant) {
		t.Fatalf("with the database failing: got %v, want an error other than ErrUnknownTenant", err)
	}
	q.fail = false
	if got, err := reg.Tenant(ctx, iss, "org_a"); got != tenantA || err != nil {
		t.Errorf("after the failure: got %v, %v; want %v", got, err, tenantA)
	}
}

// failing runs queries on conn, or fails them all while fail is set.
type failing struct {
	conn *pgx.Conn
	fail bool
}

func (f *failing) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if f.fail {
		return f.conn.QueryRow(ctx, "SELECT 1/0")
	}
	return f.conn.QueryRow(ctx, sql, args...)
}

// Through the Authenticator: a suspended tenant's token is refused and recorded naming the tenant, an
// issuer that may not speak for a tenant is refused as a mismatch.
func TestAuthenticateWithDBRegistry(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	var owner *pgx.Conn
	clock := newClock()
	reg, err := authn.NewDBRegistry(d.Pool(t).Unscoped(), authn.DBRegistryConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, func(c *authn.Config) { c.Registry = reg })
	boundTenants(t, d, "uuid", func(o *pgx.Conn, ids []tenantseal.TenantID) {
		owner = o
		mustBind(t, o, ids[0], w.customers.URL(), "org_a")
		mustBind(t, o, ids[1], w.partner.URL(), "tid-b")
	}, tenantA.String(), tenantB.String())

	if p, _ := tenantseal.PrincipalFrom(mustAuthenticate(t, w, w.userToken(nil))); p.Tenant != tenantA {
		t.Errorf("got tenant %v, want %v", p.Tenant, tenantA)
	}
	// The partner's IdP names tenant a by a's claim value: refused.
	_, err = w.auth.Authenticate(ctx, w.partner.Token("mallory", apiAud, map[string]any{"tid": "org_a"}))
	if !errors.Is(err, authn.ErrIssuerMismatch) {
		t.Errorf("partner naming a: got %v, want ErrIssuerMismatch", err)
	}
	if err := tenants.Suspend(ctx, owner, tenantA); err != nil {
		t.Fatal(err)
	}
	clock.Add(authn.DefaultRegistryTTL)
	_, err = w.auth.Authenticate(ctx, w.userToken(nil))
	if !errors.Is(err, authn.ErrUnknownTenant) || !strings.Contains(err.Error(), "the tenant is suspended") {
		t.Errorf("suspended: got %v, want ErrUnknownTenant saying the tenant is suspended", err)
	}
	evs := w.events.take()
	if got := kinds(evs); len(got) != 2 || got[0] != tenantseal.EventIssuerMismatch || got[1] != tenantseal.EventUnknownTenant {
		t.Fatalf("got events %v, want issuer_mismatch, unknown_tenant", got)
	}
	if evs[1].TargetTenant != tenantA || evs[1].Subject != w.customers.URL()+"#alice" {
		t.Errorf("got %+v, want the refusal naming tenant a and alice", evs[1])
	}
}

// Each staff token grants one elevation. Held in the process, the spent token ids let a second process
// of the same service grant it again; a DBLedger shared by both refuses it there, and records it.
func TestOneElevationPerTokenAcrossProcesses(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	owner := pgtest.Conn(t, d.OwnerDSN)
	b, err := tenants.Create(ctx, owner, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		ledger func() authn.TokenLedger
		second bool // the second process grants
	}{
		{"in-process ledgers", func() authn.TokenLedger { return nil }, true},
		{"a database ledger", func() authn.TokenLedger { return authn.NewDBLedger(d.Pool(t).Unscoped()) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, func(c *authn.Config) { c.StepUp.Ledger = tc.ledger() })
			cfg := w.cfg
			cfg.StepUp.Ledger = tc.ledger()
			second, err := authn.New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(second.Close)
			token := w.staffToken(nil)
			for i, a := range []*authn.Authenticator{w.auth, second} {
				pool := d.Pool(t, func(c *db.Config) { c.AuthorizeElevation = a.AuthorizeElevation; c.Recorder = w.events })
				staff, err := a.Authenticate(ctx, token)
				if err != nil {
					t.Fatal(err)
				}
				_, err = a.Elevate(staff, pool, b.ID, "ticket 7", time.Minute)
				if want := i == 0 || tc.second; (err == nil) != want {
					t.Errorf("process %d: got %v, want granted=%v", i+1, err, want)
				}
				if i == 1 && !tc.second && (!errors.Is(err, authn.ErrStepUpRequired) || !strings.Contains(err.Error(), "granted an elevation already")) {
					t.Errorf("process 2: got %v, want a replay refusal", err)
				}
			}
			var refused []recorded
			for _, e := range w.events.take() {
				if e.Kind == tenantseal.EventStepUpRefused {
					refused = append(refused, e)
				}
			}
			if tc.second && len(refused) != 0 {
				t.Errorf("got refusals %+v, want none", refused)
			}
			if !tc.second && (len(refused) != 1 || refused[0].TargetTenant != b.ID || !strings.Contains(refused[0].Detail, "granted an elevation already")) {
				t.Errorf("got refusals %+v, want one, of the replay, naming tenant b", refused)
			}
		})
	}
}

// The database ledger spends a token once while it is valid, and no call can unspend it.
func TestDBLedger(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := testContext(t)
	l := authn.NewDBLedger(pgtest.Conn(t, d.AppDSN))
	const iss = "https://staff.example.com/"
	for _, st := range []struct {
		issuer, jti string
		remaining   time.Duration
		want        bool
	}{
		{iss, "jti-1", time.Hour, true},
		{iss, "jti-1", time.Hour, false},
		{iss, "jti-1", -time.Hour, false}, // a shorter life forgets nothing
		{iss, "jti-2", time.Hour, true},
		{iss + "x", "jti-1", time.Hour, true},                    // another issuer's token
		{"https://staff.example.co", "m/jti-1", time.Hour, true}, // the same bytes, another split
		{iss, "jti-3", -time.Minute, true},                       // spent past its time: kept for a minute anyway
		{iss, "jti-3", time.Hour, false},
	} {
		got, err := l.Spend(ctx, st.issuer, st.jti, st.remaining)
		if err != nil || got != st.want {
			t.Errorf("Spend(%s, %s, %v): got %v, %v; want %v", st.issuer, st.jti, st.remaining, got, err, st.want)
		}
	}
	if _, err := l.Spend(ctx, iss, "", time.Hour); err == nil {
		t.Error("an empty jti: got no error")
	}
}
