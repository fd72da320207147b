package rekey_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/rekey"
)

// clock is a fake clock that application processes' Keyrings read, moved on together with the
// database's record of rotations (see elapse).
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// process is an application process: a Keyring of its own, over the app pool, on the fake clock.
func (e *env) process(t *testing.T, c *clock) *keys.Keyring {
	t.Helper()
	kr, err := keys.NewKeyring(keys.Config{KEK: e.kek, Loader: pgstore.Loader(e.pool), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// elapse lets d pass: for the processes' clocks, and for the database, whose record of when the
// tenant's primary keys took over moves back by d.
func (e *env) elapse(t testing.TB, c *clock, tenant tenantseal.TenantID, d time.Duration) {
	t.Helper()
	c.add(d)
	if _, err := e.owner.Exec(context.Background(), `UPDATE tenantseal.tenant_keysets SET primary_since = primary_since - make_interval(secs => $2)
		WHERE tenant_id = $1`, tenant, d.Seconds()); err != nil {
		t.Fatal(err)
	}
}

// readAll fails the test unless every row reads, with a fresh Keyring (no cache hides what is stored).
func (e *env) readAll(t *testing.T, ctx context.Context, rows []string, when string) {
	t.Helper()
	for _, id := range rows {
		if _, err := e.read(t, ctx, bodyCol, id); err != nil {
			t.Errorf("%s: row %s: %v", when, id, err)
		}
	}
}

// The README's rotation, run back to back while an application process holds the tenant's keyset in its
// cache: no row may become unreadable. Retire refuses until no cache can still encrypt under the old key;
// the write that lands meanwhile is moved by a second re-encryption.
func TestRotationNeverStrandsARowWrittenThroughAStaleCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	c := &clock{now: time.Now()}
	app := e.process(t, c) // caches the keyset from its first use on
	rows := []string{e.newRowWith(t, ctxA, app, "before@x", "before the rotation")}

	if _, err := e.admin.Rotate(ctxA, a); err != nil {
		t.Fatal(err)
	}
	if _, err := rekey.Reencrypt(ctxA, e.pool, e.keyring(t), rekey.ReencryptOptions{Lock: e.lk}); err != nil {
		t.Fatal(err)
	}
	retire := func() (pgstore.KeyChanges, error) {
		u, err := rekey.Usage(ctxA, e.pool)
		if err != nil {
			t.Fatal(err)
		}
		return e.admin.Retire(ctxA, a, u, keys.RetireOptions{})
	}
	_, err := retire()
	var soon *pgstore.TooSoonError
	if !errors.As(err, &soon) || soon.After.Sub(soon.PrimarySince) != 6*time.Minute {
		t.Fatalf("retire right after the rotation: got %v, want a TooSoonError for max_cache_ttl 5m plus write_grace 1m", err)
	}
	// The application goes on writing through its cache, under the old primary key.
	rows = append(rows, e.newRowWith(t, ctxA, app, "stale@x", "through the stale cache"))
	e.readAll(t, ctxA, rows, "after the refused retire")

	e.elapse(t, c, a, 6*time.Minute)
	rows = append(rows, e.newRowWith(t, ctxA, app, "fresh@x", "after the cache expired"))
	if _, err := retire(); !errors.Is(err, keys.ErrKeyInUse) {
		t.Fatalf("retire with the stale write still under the old key: got %v, want ErrKeyInUse", err)
	}
	if st, err := rekey.Reencrypt(ctxA, e.pool, e.keyring(t), rekey.ReencryptOptions{Lock: e.lk}); err != nil || st.Rewritten != 1 {
		t.Fatalf("second reencrypt: got %+v (%v), want the stale write moved", st, err)
	}
	retired, err := retire()
	if err != nil || len(retired.IDs()) != 2 {
		t.Fatalf("retire: got %v (%v), want the old AEAD and PRF keys", retired, err)
	}
	rows = append(rows, e.newRowWith(t, ctxA, app, "later@x", "after the retire"))
	e.readAll(t, ctxA, rows, "after the retire")

	// A retirement is undone until the keys are destroyed.
	if enabled, err := e.admin.Enable(ctxA, a); err != nil || len(enabled.IDs()) != 2 {
		t.Fatalf("enable: got %v (%v), want the two retired keys back", enabled, err)
	}
	if _, err := retire(); err != nil {
		t.Fatal(err)
	}
	u, err := rekey.Usage(ctxA, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if destroyed, err := e.admin.Destroy(ctxA, a, u, keys.RetireOptions{}); err != nil || len(destroyed.IDs()) != 2 {
		t.Fatalf("destroy: got %v (%v), want the two retired keys gone", destroyed, err)
	}
	e.readAll(t, ctxA, rows, "after the destruction")
}

// Random interleavings of key commands, writes by several application processes with caches of their
// own, and time passing: after every step every row must read. rapid shrinks a failing sequence.
func TestKeyCommandsNeverMakeARowUnreadable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rapid.Check(t, func(rt *rapid.T) {
		id, ctx := e.tenant(t, fmt.Sprintf("model %d", time.Now().UnixNano()))
		c := &clock{now: time.Now()}
		procs := make([]*keys.Keyring, rapid.IntRange(1, 3).Draw(rt, "processes"))
		for i := range procs {
			procs[i] = e.process(t, c)
		}
		var rows []string
		n := 0
		check := func(step string) {
			for _, r := range rows {
				if _, err := e.read(t, ctx, bodyCol, r); err != nil {
					rt.Fatalf("after %s: row %s unreadable: %v", step, r, err)
				}
			}
		}
		usage := func() keys.KeyUsage {
			u, err := rekey.Usage(ctx, e.pool)
			if err != nil {
				rt.Fatal(err)
			}
			return u
		}
		// An operator's command may refuse; it must never fail otherwise.
		refusal := func(what string, err error) {
			if err != nil && !errors.Is(err, pgstore.ErrTooSoon) && !errors.Is(err, keys.ErrKeyInUse) {
				rt.Fatalf("%s: %v", what, err)
			}
		}
		actions := map[string]func(*rapid.T){
			"write": func(rt *rapid.T) {
				p := rapid.IntRange(0, len(procs)-1).Draw(rt, "process")
				n++
				rows = append(rows, e.newRowWith(t, ctx, procs[p], fmt.Sprintf("r%d@x", n), fmt.Sprintf("row %d", n)))
				check("write")
			},
			"rotate": func(rt *rapid.T) {
				if _, err := e.admin.Rotate(ctx, id); err != nil {
					rt.Fatal(err)
				}
				check("rotate")
			},
			"reencrypt": func(rt *rapid.T) {
				if _, err := rekey.Reencrypt(ctx, e.pool, e.keyring(t), rekey.ReencryptOptions{Lock: e.lk}); err != nil {
					rt.Fatal(err)
				}
				check("reencrypt")
			},
			"retire": func(rt *rapid.T) {
				_, err := e.admin.Retire(ctx, id, usage(), keys.RetireOptions{})
				refusal("retire", err)
				check("retire")
			},
			"enable": func(rt *rapid.T) {
				if _, err := e.admin.Enable(ctx, id); err != nil {
					rt.Fatal(err)
				}
				check("enable")
			},
			"destroy": func(rt *rapid.T) {
				_, err := e.admin.Destroy(ctx, id, usage(), keys.RetireOptions{})
				refusal("destroy", err)
				check("destroy")
			},
			"elapse": func(rt *rapid.T) {
				e.elapse(t, c, id, time.Duration(rapid.IntRange(1, 8).Draw(rt, "minutes"))*time.Minute)
				check("elapse")
			},
		}
		// Writes and retirements are the steps a stranded row needs: drawn more often than the others.
		names := []string{"write", "write", "write", "rotate", "reencrypt", "retire", "retire", "enable", "destroy", "elapse"}
		for range rapid.IntRange(1, 40).Draw(rt, "steps") {
			actions[rapid.SampledFrom(names).Draw(rt, "action")](rt)
		}
	})
}
