package keys_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/tink-crypto/tink-go/v2/testing/fakekms"

	"github.com/tenantseal/tenantseal/keys"
)

// memLoader serves wrapped keysets from memory, counting loads; a slow one holds each load open.
type memLoader struct {
	sets  map[tenantseal.TenantID]keys.Wrapped
	loads atomic.Int64
	delay time.Duration
}

func (m *memLoader) LoadKeysets(ctx context.Context, tenant tenantseal.TenantID) (keys.Wrapped, error) {
	m.loads.Add(1)
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return keys.Wrapped{}, ctx.Err()
		}
	}
	w, ok := m.sets[tenant]
	if !ok {
		return keys.Wrapped{}, keys.ErrNoKeyset
	}
	return w, nil
}

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

func newMemLoader(t testing.TB, kek *keys.KEK, n int) (*memLoader, []tenantseal.TenantID) {
	t.Helper()
	l := &memLoader{sets: map[tenantseal.TenantID]keys.Wrapped{}}
	var ids []tenantseal.TenantID
	for i := 0; i < n; i++ {
		var id tenantseal.TenantID
		id[0], id[15] = byte(i+1), 1
		w, err := keys.NewTenantKeysets(kek, id)
		if err != nil {
			t.Fatal(err)
		}
		l.sets[id] = w
		ids = append(ids, id)
	}
	return l, ids
}

func TestCacheLoadsOncePerTenantUnderConcurrentMisses(t *testing.T) {
	kek := fakeKEK(t)
	l, ids := newMemLoader(t, kek, 2)
	l.delay = 50 * time.Millisecond
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: l})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := kr.Encrypt(context.Background(), keys.Field{Table: "t", Column: "c", Row: "r"}, []byte("x")); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if got := l.loads.Load(); got != 2 {
		t.Errorf("got %d loads for 32 concurrent misses on 2 tenants, want 2", got)
	}
}

func TestCacheBoundsAndTTL(t *testing.T) {
	kek := fakeKEK(t)
	l, ids := newMemLoader(t, kek, 3)
	now := time.Unix(1_000_000, 0)
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: l, CacheEntries: 2, CacheTTL: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	use := func(id tenantseal.TenantID) {
		if _, err := kr.BlindIndex(context.Background(), keys.Field{Table: "t", Column: "c"}, "v", nil); err != nil {
			t.Fatal(err)
		}
	}
	use(ids[0])
	use(ids[1])
	use(ids[0]) // hit
	use(ids[2]) // evicts ids[1], the least recently used
	if st := kr.Stats(); st.Entries != 2 || st.Loads != 3 || st.Hits != 1 {
		t.Errorf("got %+v, want 2 entries, 3 loads, 1 hit", st)
	}
	use(ids[1]) // evicted: loads again
	if got := l.loads.Load(); got != 4 {
		t.Errorf("got %d loads, want 4 after the evicted tenant came back", got)
	}
	now = now.Add(2 * time.Minute)
	use(ids[1]) // expired: loads again
	if got := l.loads.Load(); got != 5 {
		t.Errorf("got %d loads, want 5 after the TTL", got)
	}
	if s := kr.String(); s == "" || containsAny(s, "key_data", "value") {
		t.Errorf("String() = %q: want a summary with no key material", s)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		for i := 0; i+len(x) <= len(s); i++ {
			if s[i:i+len(x)] == x {
				return true
			}
		}
	}
	return false
}

func TestBadInput(t *testing.T) {
	kek := fakeKEK(t)
	l, ids := newMemLoader(t, kek, 1)
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: l, MaxFieldSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := keys.Field{Table: "t", Column: "c", Row: "r"}
	good, err := kr.Encrypt(ctx, f, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	unknown := append([]byte{}, good...)
	unknown[4] ^= 0xff
	tests := []struct {
		name string
		ct   []byte
		want error
	}{
		{"empty", nil, keys.ErrTampered},
		{"prefix only", good[:5], keys.ErrTampered},
		{"truncated", good[:len(good)-1], keys.ErrTampered},
		{"not a Tink prefix", append([]byte{0}, good[1:]...), keys.ErrTampered},
		{"unknown key id", unknown, keys.ErrUnknownKey},
		{"oversized", make([]byte, 4096), keys.ErrFieldTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := kr.Decrypt(ctx, f, tc.ct); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := kr.Encrypt(ctx, f, make([]byte, 1025)); !errors.Is(err, keys.ErrFieldTooLarge) {
		t.Errorf("oversized plaintext: got %v, want ErrFieldTooLarge", err)
	}
	if _, err := kr.Encrypt(ctx, f, []byte("x")); !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("zero tenant: got %v, want ErrNoTenant", err)
	}
	var other tenantseal.TenantID
	other[0] = 0xee
	if _, err := kr.Encrypt(ctx, f, []byte("x")); !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("tenant without keysets: got %v, want ErrNoKeyset", err)
	}
	corrupt := l.sets[ids[0]]
	corrupt.AEAD = append([]byte{}, corrupt.AEAD...)
	corrupt.AEAD[len(corrupt.AEAD)/2] ^= 1
	l.sets[ids[0]] = corrupt
	kr.Invalidate(ids[0])
	if _, err := kr.Encrypt(ctx, f, []byte("x")); !errors.Is(err, keys.ErrKeysetTampered) {
		t.Errorf("corrupted wrapped keyset: got %v, want ErrKeysetTampered", err)
	}
}

func FuzzDecrypt(f *testing.F) {
	kek := fakeKEK(f)
	l, ids := newMemLoader(f, kek, 1)
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: l})
	if err != nil {
		f.Fatal(err)
	}
	field := keys.Field{Table: "t", Column: "c", Row: "r"}
	good, _ := kr.Encrypt(context.Background(), ids[0], field, []byte("seed"))
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := kr.Decrypt(context.Background(), ids[0], field, ct)
		if err == nil && string(pt) != "seed" {
			t.Errorf("decrypted fuzz input to %q", pt)
		}
		if err != nil && !errors.Is(err, keys.ErrTampered) && !errors.Is(err, keys.ErrFieldTooLarge) {
			t.Errorf("got untyped error %v", err)
		}
	})
}

func FuzzUnwrapKeyset(f *testing.F) {
	kek := fakeKEK(f)
	l, ids := newMemLoader(f, kek, 1)
	w := l.sets[ids[0]]
	f.Add(w.AEAD)
	f.Add(w.AEAD[:len(w.AEAD)/2])
	f.Fuzz(func(t *testing.T, wrapped []byte) {
		ml := &memLoader{sets: map[tenantseal.TenantID]keys.Wrapped{ids[0]: {AEAD: wrapped, PRF: w.PRF, KEKID: w.KEKID}}}
		kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: ml})
		if err != nil {
			t.Fatal(err)
		}
		_, err = kr.Encrypt(context.Background(), keys.Field{}, []byte("x"))
		if err != nil && !errors.Is(err, keys.ErrKeysetTampered) {
			t.Errorf("got untyped error %v", err)
		}
	})
}
