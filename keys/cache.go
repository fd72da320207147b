package keys

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantseal/tenantseal"
)

// cache holds opened tenant keysets: bounded in entries, each valid for a TTL (the Keyring's, or the
// shorter bound its store declares), revalidated against the stored keyset version now and then, and
// with one load in flight per tenant however many callers miss at once.
type cache struct {
	max        int
	ttl        time.Duration
	revalidate time.Duration // < 0: never
	now        func() time.Time

	mu       sync.Mutex
	ll       *list.List // front: most recently used; values are *cacheEntry
	items    map[tenantseal.TenantID]*list.Element
	inflight map[tenantseal.TenantID]*flight

	hits, misses, loads, checks atomic.Int64
}

type cacheEntry struct {
	tenant  tenantseal.TenantID
	keys    *tenantKeys
	loaded  time.Time
	expires time.Time
	checked time.Time // last load or version check
}

type flight struct {
	done chan struct{}
	keys *tenantKeys
	err  error
}

// loadFunc loads a tenant's keysets; versionFunc reads the version of the stored ones (nil: the store
// cannot tell).
type (
	loadFunc    func(context.Context) (*tenantKeys, error)
	versionFunc func(context.Context) (int64, error)
)

func newCache(max int, ttl, revalidate time.Duration, now func() time.Time) *cache {
	return &cache{max: max, ttl: ttl, revalidate: revalidate, now: now, ll: list.New(),
		items: map[tenantseal.TenantID]*list.Element{}, inflight: map[tenantseal.TenantID]*flight{}}
}

func (c *cache) get(ctx context.Context, tenant tenantseal.TenantID, load loadFunc, version versionFunc) (*tenantKeys, error) {
	for {
		c.mu.Lock()
		if el, ok := c.items[tenant]; ok {
			e := el.Value.(*cacheEntry)
			now := c.now()
			if now.Before(e.expires) {
				c.ll.MoveToFront(el)
				check := version != nil && c.revalidate >= 0 && now.Sub(e.checked) >= c.revalidate
				if check {
					e.checked = now // one caller checks; the others go on with what is cached
				}
				c.mu.Unlock()
				c.hits.Add(1)
				if check && c.changed(ctx, e, version) {
					c.drop(tenant, e.keys)
					continue
				}
				return e.keys, nil
			}
			c.ll.Remove(el)
			delete(c.items, tenant)
		}
		c.misses.Add(1)
		if f, ok := c.inflight[tenant]; ok {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			// The loader's own context may have ended; then this caller loads for itself.
			if f.err != nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) && ctx.Err() == nil {
				continue
			}
			return f.keys, f.err
		}
		f := &flight{done: make(chan struct{})}
		c.inflight[tenant] = f
		c.mu.Unlock()

		c.loads.Add(1)
		f.keys, f.err = load(ctx)

		c.mu.Lock()
		delete(c.inflight, tenant)
		if f.err == nil {
			now := c.now()
			ttl := c.ttl
			if b := f.keys.cacheBound; b > 0 && b < ttl {
				ttl = b
			}
			c.items[tenant] = c.ll.PushFront(&cacheEntry{tenant: tenant, keys: f.keys, loaded: now, expires: now.Add(ttl), checked: now})
			for c.ll.Len() > c.max {
				oldest := c.ll.Back()
				c.ll.Remove(oldest)
				delete(c.items, oldest.Value.(*cacheEntry).tenant)
			}
		}
		c.mu.Unlock()
		close(f.done)
		return f.keys, f.err
	}
}

// changed reports whether the stored keysets are no longer those of e. A store that cannot answer
// changes nothing: the entry still expires at its TTL, which is what the retire rule relies on.
func (c *cache) changed(ctx context.Context, e *cacheEntry, version versionFunc) bool {
	c.checks.Add(1)
	v, err := version(ctx)
	return err == nil && v != e.keys.version
}

// reloadEvery bounds how often a ciphertext naming a key the cached keysets lack makes a Keyring read
// them again: ciphertexts forged to name random keys cost one load per tenant and second at most.
const reloadEvery = time.Second

// stale drops the tenant's entry if it still holds keys and was loaded at least reloadEvery ago, and
// reports whether it did: the next get loads again.
func (c *cache) stale(tenant tenantseal.TenantID, keys *tenantKeys) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[tenant]
	if !ok {
		return true // gone already: the next get loads
	}
	e := el.Value.(*cacheEntry)
	if e.keys != keys {
		return true // replaced already by a newer load
	}
	if c.now().Sub(e.loaded) < reloadEvery {
		return false
	}
	c.ll.Remove(el)
	delete(c.items, tenant)
	return true
}

// drop removes the tenant's entry if it still holds keys.
func (c *cache) drop(tenant tenantseal.TenantID, keys *tenantKeys) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[tenant]; ok && el.Value.(*cacheEntry).keys == keys {
		c.ll.Remove(el)
		delete(c.items, tenant)
	}
}

func (c *cache) invalidate(tenant tenantseal.TenantID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[tenant]; ok {
		c.ll.Remove(el)
		delete(c.items, tenant)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
