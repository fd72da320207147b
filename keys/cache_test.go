package keys_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

func TestCacheLoadsOncePerTenantUnderConcurrentMisses(t *testing.T) {
	fx := newFixture(t, 2)
	fx.l.hold = func(context.Context) error { time.Sleep(50 * time.Millisecond); return nil } // misses pile up meanwhile
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			if _, err := fx.kr.Encrypt(as(t, fx.ids[i%2]), keys.Field{Table: "t", Column: "c", Row: "r"}, []byte("x")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, id := range fx.ids {
		if got, _ := fx.l.counts(id); got != 1 {
			t.Errorf("tenant %s: got %d loads for 16 concurrent misses, want 1", id, got)
		}
	}
}

func TestCacheBoundsAndTTL(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	fx := newFixture(t, 3, func(c *keys.Config) {
		c.CacheEntries, c.CacheTTL, c.Now = 2, time.Minute, func() time.Time { return now }
	})
	use := func(id tenantseal.TenantID) {
		t.Helper()
		if _, err := fx.kr.BlindIndex(as(t, id), keys.Field{Table: "t", Column: "c"}, "v", nil); err != nil {
			t.Fatal(err)
		}
	}
	loads := func(id tenantseal.TenantID) int { n, _ := fx.l.counts(id); return n }
	ids := fx.ids
	use(ids[0])
	use(ids[1])
	use(ids[0]) // hit
	use(ids[2]) // evicts ids[1], the least recently used
	if st := fx.kr.Stats(); st.Entries != 2 || st.Loads != 3 || st.Hits != 1 {
		t.Errorf("got %+v, want 2 entries, 3 loads, 1 hit", st)
	}
	use(ids[1]) // evicted: loads again
	if got := loads(ids[1]); got != 2 {
		t.Errorf("got %d loads, want 2 after the evicted tenant came back", got)
	}
	now = now.Add(59 * time.Second)
	use(ids[1]) // within the TTL: a hit
	now = now.Add(2 * time.Second)
	use(ids[1]) // expired: loads again
	if got := loads(ids[1]); got != 3 {
		t.Errorf("got %d loads, want 3 after the TTL", got)
	}
}

// A load whose own context ends does not fail the callers waiting for it: they load for themselves.
func TestCacheWaiterOutlivesCancelledLoad(t *testing.T) {
	fx := newFixture(t, 1)
	started := make(chan struct{})
	var calls atomic.Int32
	fx.l.hold = func(ctx context.Context) error {
		if calls.Add(1) > 1 {
			return nil
		}
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}
	first, cancel := context.WithCancel(as(t, fx.ids[0]))
	firstErr := make(chan error, 1)
	go func() {
		_, err := fx.kr.Encrypt(first, keys.Field{}, []byte("x"))
		firstErr <- err
	}()
	<-started
	secondErr := make(chan error, 1)
	go func() {
		_, err := fx.kr.Encrypt(as(t, fx.ids[0]), keys.Field{}, []byte("x"))
		secondErr <- err
	}()
	// The second caller counts its miss and joins the first load under one lock: then it waits for it.
	for deadline := time.Now().Add(10 * time.Second); fx.kr.Stats().Misses < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second caller never missed")
		}
	}
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: got %v, want context.Canceled", err)
	}
	if err := <-secondErr; err != nil {
		t.Errorf("waiting caller: got %v, want its own load to succeed", err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("got %d loads, want the cancelled one and the waiter's own", got)
	}
}
