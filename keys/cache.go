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

// cache holds opened tenant keysets: bounded in entries, each valid for a TTL, and with one load in
// flight per tenant however many callers miss at once.
type cache struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	ll       *list.List // front: most recently used; values are *cacheEntry
	items    map[tenantseal.TenantID]*list.Element
	inflight map[tenantseal.TenantID]*flight

	hits, misses, loads atomic.Int64
}

type cacheEntry struct {
	tenant  tenantseal.TenantID
	keys    *tenantKeys
	expires time.Time
}

type flight struct {
	done chan struct{}
	keys *tenantKeys
	err  error
}

func newCache(max int, ttl time.Duration, now func() time.Time) *cache {
	return &cache{max: max, ttl: ttl, now: now, ll: list.New(),
		items: map[tenantseal.TenantID]*list.Element{}, inflight: map[tenantseal.TenantID]*flight{}}
}

func (c *cache) get(ctx context.Context, tenant tenantseal.TenantID, load func(context.Context) (*tenantKeys, error)) (*tenantKeys, error) {
	for {
		c.mu.Lock()
		if el, ok := c.items[tenant]; ok {
			e := el.Value.(*cacheEntry)
			if c.now().Before(e.expires) {
				c.ll.MoveToFront(el)
				c.mu.Unlock()
				c.hits.Add(1)
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
			c.items[tenant] = c.ll.PushFront(&cacheEntry{tenant: tenant, keys: f.keys, expires: c.now().Add(c.ttl)})
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
