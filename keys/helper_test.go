package keys_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/tink-crypto/tink-go/v2/testing/fakekms"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/eventtest"
	"github.com/tenantseal/tenantseal/keys"
)

// Every test here runs without a database: pgstore's tests cover keysets kept in PostgreSQL.

// fakeKEK is a KEK held by Tink's fake KMS, as a real KMS would hold it.
func fakeKEK(t testing.TB) *keys.KEK {
	t.Helper()
	uri, err := fakekms.NewKeyURI()
	if err != nil {
		t.Fatal(err)
	}
	a, err := fakekms.NewAEAD(uri)
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewKEK("fake", a)
}

// memLoader serves wrapped keysets from memory, counting loads; hold, if set, runs first and can keep a
// load open or fail it. Like
// pgstore's loader under row-level security, it serves no tenant but the Principal's, and counts the
// requests that asked for another.
type memLoader struct {
	mu      sync.Mutex
	sets    map[tenantseal.TenantID]keys.Wrapped
	loads   map[tenantseal.TenantID]int
	foreign int
	hold    func(ctx context.Context) error
}

func (m *memLoader) LoadKeysets(ctx context.Context, tenant tenantseal.TenantID) (keys.Wrapped, error) {
	if m.hold != nil {
		if err := m.hold(ctx); err != nil {
			return keys.Wrapped{}, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, err := tenantseal.TenantFrom(ctx); err != nil || p != tenant {
		m.foreign++
		return keys.Wrapped{}, keys.ErrNoKeyset
	}
	m.loads[tenant]++
	w, ok := m.sets[tenant]
	if !ok {
		return keys.Wrapped{}, keys.ErrNoKeyset
	}
	return w, nil
}

// set replaces a tenant's wrapped keysets.
func (m *memLoader) set(tenant tenantseal.TenantID, w keys.Wrapped) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sets[tenant] = w
}

// counts returns the loads of tenant and the requests for a tenant other than the Principal's.
func (m *memLoader) counts(tenant tenantseal.TenantID) (loads, foreign int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loads[tenant], m.foreign
}

// newMemLoader creates n tenants with keysets wrapped by kek.
func newMemLoader(t testing.TB, kek *keys.KEK, n int) (*memLoader, []tenantseal.TenantID) {
	t.Helper()
	l := &memLoader{sets: map[tenantseal.TenantID]keys.Wrapped{}, loads: map[tenantseal.TenantID]int{}}
	var ids []tenantseal.TenantID
	for i := range n {
		id := tenantID(i + 1)
		w, err := keys.NewTenantKeysets(kek, id)
		if err != nil {
			t.Fatal(err)
		}
		l.sets[id] = w
		ids = append(ids, id)
	}
	return l, ids
}

func tenantID(n int) tenantseal.TenantID {
	id, err := tenantseal.ParseTenantID(fmt.Sprintf("0190a5b2-7c3d-4e5f-8a9b-%012x", n))
	if err != nil {
		panic(err)
	}
	return id
}

// events keeps what is recorded: the keyset unwraps, which every cache miss records, apart from the
// rest (refusals, tampered ciphertexts, operator actions), which the tests check.
type events struct{ eventtest.Recorder }

// take returns the events but the unwraps recorded since the last call.
func (ev *events) take() []tenantseal.Event { return ev.TakeExcept(tenantseal.EventKeyUnwrap) }

// takeUnwraps returns the unwraps recorded since the last call.
func (ev *events) takeUnwraps() []tenantseal.Event { return ev.TakeKind(tenantseal.EventKeyUnwrap) }

// fixture is a Keyring over a memLoader of n tenants, recording into rec.
type fixture struct {
	kek *keys.KEK
	l   *memLoader
	ids []tenantseal.TenantID
	kr  *keys.Keyring
	rec *events
}

func newFixture(t testing.TB, n int, edit ...func(*keys.Config)) *fixture {
	t.Helper()
	f := &fixture{kek: fakeKEK(t), rec: &events{}}
	f.l, f.ids = newMemLoader(t, f.kek, n)
	cfg := keys.Config{KEK: f.kek, Loader: f.l, Recorder: f.rec}
	for _, e := range edit {
		e(&cfg)
	}
	kr, err := keys.NewKeyring(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.kr = kr
	return f
}

// as returns a context of t carrying a Principal of tenant.
func as(t testing.TB, tenant tenantseal.TenantID) context.Context {
	return tenantseal.WithPrincipal(t.Context(), tenantseal.Principal{Tenant: tenant, Subject: "user@" + tenant.String()})
}

func mustEncrypt(t testing.TB, kr *keys.Keyring, ctx context.Context, f keys.Field, pt string) []byte {
	t.Helper()
	ct, err := kr.Encrypt(ctx, f, []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return ct
}
