package rekey_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/eventtest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/rekey"
)

func TestRotateReencryptUnderConcurrentWritesThenRetire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	const n = 60
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.newRow(t, ctxA, fmt.Sprintf("c%d@x", i), fmt.Sprintf("body %d v0", i))
	}
	bID := e.newRow(t, ctxB, "b@x", "b body")
	oldKey := e.keyID(t, ctxA, bodyCol, ids[0])
	bKey := e.keyID(t, ctxB, bodyCol, bID)

	if _, err := e.admin.Rotate(ctxA, a); err != nil {
		t.Fatal(err)
	}
	// Retiring before re-encryption must refuse: every row still needs the old key.
	u, err := rekey.Usage(ctxA, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	e.pastRetireWait(t, a)
	if _, err := e.admin.Retire(ctxA, a, u, keys.RetireOptions{}); !errors.Is(err, keys.ErrKeyInUse) {
		t.Fatalf("retire before reencrypt: got %v, want ErrKeyInUse", err)
	}

	// Writers keep rewriting rows, under the new primary key of their own Keyring, while re-encryption
	// runs; each row's last write is what must survive.
	writer := e.keyring(t)
	last := make([]string, n)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for round := 1; round <= 5; round++ {
				for i := w; i < n; i += 2 {
					v := fmt.Sprintf("body %d v%d", i, round)
					if err := e.put(ctxA, writer, ids[i], fmt.Sprintf("c%d@x", i), v); err != nil {
						t.Error(err)
						return
					}
					last[i] = v
				}
			}
		})
	}
	var progress []int64
	st, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{Lock: e.lk, BatchSize: 7, Progress: func(done, total int64) {
		progress = append(progress, done)
	}})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Examined != n || st.Unreadable != 0 || len(progress) != (n+6)/7 || progress[len(progress)-1] != n {
		t.Errorf("got %+v and progress %v, want %d rows examined in batches of 7", st, progress, n)
	}
	for i, id := range ids {
		if got, err := e.read(t, ctxA, bodyCol, id); err != nil || got != last[i] {
			t.Fatalf("row %d: got %q (%v), want the last write %q", i, got, err, last[i])
		}
	}
	// Whatever raced is under the new key already (the writers' Keyring loaded after the rotation), so
	// nothing is left on the old one.
	if u, err = rekey.Usage(ctxA, e.pool); err != nil {
		t.Fatal(err)
	}
	if u.AEAD[oldKey] != 0 || u.Tenant != a {
		t.Fatalf("after reencrypt: got usage %+v, want tenant a and nothing under the old key %d", u, oldKey)
	}
	if st2, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{Lock: e.lk}); err != nil || st2.Rewritten != 0 || st2.Examined != n {
		t.Errorf("a run with nothing to do: got %+v (%v), want %d examined and 0 rewritten", st2, err, n)
	}
	changed, err := e.admin.Retire(ctxA, a, u, keys.RetireOptions{})
	if retired := changed.IDs(); err != nil || len(retired) != 2 {
		t.Fatalf("retire: got %v (%v), want the old AEAD and PRF keys", retired, err)
	}
	for i, id := range ids {
		if got, err := e.read(t, ctxA, bodyCol, id); err != nil || got != last[i] {
			t.Fatalf("after retire row %d: got %q (%v), want %q", i, got, err, last[i])
		}
	}
	// The blind index moved too: lookups find rows under the new PRF key alone.
	kr := e.keyring(t)
	idx, err := kr.BlindIndexes(ctxA, keys.Field{Table: ledgerName, Column: mailCol}, "C7@X", keys.NormalizeEmail)
	if err != nil || len(idx) != 1 {
		t.Fatalf("blind indexes after retire: got %d (%v), want the new key's alone", len(idx), err)
	}
	var found string
	if err := e.pool.QueryRow(ctxA, "SELECT id::text FROM "+ledger+" WHERE "+qIdx+" = ANY($1)", idx).Scan(&found); err != nil || found != ids[7] {
		t.Errorf("lookup after retire: got %q (%v), want %s", found, err, ids[7])
	}
	// The other tenant was not touched.
	if got := e.keyID(t, ctxB, bodyCol, bID); got != bKey {
		t.Errorf("tenant b's key changed from %d to %d", bKey, got)
	}
}

// A write that lands between re-encryption's read and its rewrite must win. Not parallel: the hook is
// package-wide (parallel tests start only after it has ended).
func TestReencryptNeverOverwritesAConcurrentWrite(t *testing.T) {
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	ids := []string{e.newRow(t, ctxA, "1@x", "one"), e.newRow(t, ctxA, "2@x", "two")}
	if _, err := e.admin.Rotate(ctxA, a); err != nil {
		t.Fatal(err)
	}
	writer := e.keyring(t) // loaded after the rotation: it writes under the new key
	fired := 0
	rekey.SetReencryptHook(func() {
		if fired++; fired > 1 {
			return
		}
		for _, id := range ids {
			if err := e.put(ctxA, writer, id, "new@x", "written meanwhile"); err != nil {
				t.Error(err)
			}
		}
	})
	t.Cleanup(func() { rekey.SetReencryptHook(nil) })
	st, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{Lock: e.lk})
	if err != nil {
		t.Fatal(err)
	}
	if fired != 1 || st.Raced != 2 || st.Rewritten != 0 {
		t.Errorf("got %+v (hook ran %d times), want both rows counted as raced", st, fired)
	}
	for _, id := range ids {
		for col, want := range map[string]string{bodyCol: "written meanwhile", mailCol: "new@x"} {
			if got, err := e.read(t, ctxA, col, id); err != nil || got != want {
				t.Errorf("row %s %s: got %q (%v), want the concurrent write %q", id, col, got, err, want)
			}
		}
	}
}

// A value that does not decrypt is left exactly as it is, named, recorded and quarantined; every other
// row still moves. Later runs leave it alone until it is written again; retirement waits for it unless
// told to skip the quarantined.
func TestReencryptQuarantinesUnreadableValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	good := e.newRow(t, ctxA, "good@x", "good")
	bad := e.newRow(t, ctxA, "bad@x", "bad")
	// Someone with the tables copies one row's body into the other.
	if _, err := pgtest.Conn(t, e.d.SuperDSN).Exec(ctxA, "UPDATE "+ledger+" SET body = (SELECT body FROM "+ledger+" WHERE id = $1) WHERE id = $2", good, bad); err != nil {
		t.Fatal(err)
	}
	oldKey := e.keyID(t, ctxA, bodyCol, bad)
	if _, err := e.admin.Rotate(ctxA, a); err != nil {
		t.Fatal(err)
	}
	before := e.stored(t, ctxA, bodyCol, bad)
	rec := &eventtest.Recorder{}
	kr, err := keys.NewKeyring(keys.Config{KEK: e.kek, Loader: pgstore.Loader(e.pool), Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	st, err := rekey.Reencrypt(ctxA, e.pool, kr, rekey.ReencryptOptions{Lock: e.lk})
	if !errors.Is(err, rekey.ErrUnreadable) || !errors.Is(err, keys.ErrTampered) {
		t.Errorf("got %v, want ErrUnreadable and ErrTampered", err)
	}
	named := rekey.Unreadable{Table: ledger, Column: bodyCol, Row: bad, KeyID: oldKey, Reason: "tampered"}
	if want := (rekey.ReencryptStats{Examined: 2, Rewritten: 2, Unreadable: 1, Quarantined: []rekey.Unreadable{named}}); !cmp.Equal(st, want) {
		t.Errorf("got %+v, want %+v", st, want)
	}
	if after := e.stored(t, ctxA, bodyCol, bad); !bytes.Equal(before, after) {
		t.Error("the tampered value was rewritten")
	}
	if got, err := e.read(t, ctxA, bodyCol, good); err != nil || got != "good" {
		t.Errorf("the good row: got %q (%v), want it re-encrypted and readable", got, err)
	}
	if got, err := e.read(t, ctxA, mailCol, bad); err != nil || got != "bad@x" {
		t.Errorf("the bad row's other column: got %q (%v), want it re-encrypted and readable", got, err)
	}
	if ev := rec.TakeExcept(tenantseal.EventKeyUnwrap); len(ev) != 1 || ev[0].Kind != tenantseal.EventTampered || ev[0].RowKey != bad {
		t.Errorf("got events %+v, want one tampered_ciphertext naming row %s", ev, bad)
	}
	list, err := rekey.Quarantined(ctxA, e.pool)
	if err != nil || len(list) != 1 || list[0].Unreadable != named {
		t.Fatalf("quarantine list: got %+v (%v), want %+v", list, err, named)
	}

	// Again: nothing new is found or recorded.
	st, err = rekey.Reencrypt(ctxA, e.pool, kr, rekey.ReencryptOptions{Lock: e.lk})
	if err != nil || st.Skipped != 1 || st.Unreadable != 0 || len(rec.TakeExcept(tenantseal.EventKeyUnwrap)) != 0 {
		t.Errorf("second run: got %+v (%v), want the quarantined value skipped, and no event", st, err)
	}
	e.pastRetireWait(t, a)
	u, err := rekey.Usage(ctxA, e.pool)
	if err != nil || u.AEAD[oldKey] != 1 || u.QuarantinedAEAD[oldKey] != 1 {
		t.Fatalf("usage: got %+v (%v), want the one quarantined value under the old key", u, err)
	}
	if _, err := e.admin.Retire(ctxA, a, u, keys.RetireOptions{}); !errors.Is(err, keys.ErrKeyInUse) {
		t.Errorf("retire: got %v, want ErrKeyInUse for the quarantined value", err)
	}
	// The way forward, one: repair the value (here: write it again), and the next run takes it off the
	// list. Two: retire without it.
	if err := e.put(ctxA, e.keyring(t), bad, "bad@x", "repaired"); err != nil {
		t.Fatal(err)
	}
	if st, err := rekey.Reencrypt(ctxA, e.pool, kr, rekey.ReencryptOptions{Lock: e.lk}); err != nil || st.Released != 1 {
		t.Errorf("after the repair: got %+v (%v), want the value released", st, err)
	}
	if list, err := rekey.Quarantined(ctxA, e.pool); err != nil || len(list) != 0 {
		t.Errorf("quarantine list after the repair: got %+v (%v), want none", list, err)
	}
	if _, err := pgtest.Conn(t, e.d.SuperDSN).Exec(ctxA, "UPDATE "+ledger+" SET body = $1 WHERE id = $2", before, bad); err != nil {
		t.Fatal(err)
	}
	if _, err := rekey.Reencrypt(ctxA, e.pool, kr, rekey.ReencryptOptions{Lock: e.lk}); !errors.Is(err, rekey.ErrUnreadable) {
		t.Fatalf("tampered again: got %v, want ErrUnreadable", err)
	}
	if u, err = rekey.Usage(ctxA, e.pool); err != nil {
		t.Fatal(err)
	}
	if retired, err := e.admin.Retire(ctxA, a, u, keys.RetireOptions{SkipQuarantined: true}); err != nil || len(retired.IDs()) != 2 {
		t.Errorf("retire skipping the quarantined: got %v (%v), want the old keys retired", retired, err)
	}
	if n, err := rekey.Release(ctxA, e.pool); err != nil || n != 1 {
		t.Errorf("release: got %d (%v), want 1", n, err)
	}
}

// One run per tenant at a time: a second fails at once, naming the first; other tenants run meanwhile.
func TestReencryptRunsOncePerTenant(t *testing.T) {
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	e.newRow(t, ctxA, "1@x", "one")
	e.newRow(t, ctxB, "2@x", "two")
	for _, id := range []tenantseal.TenantID{a, b} {
		if _, err := e.admin.Rotate(ctxA, id); err != nil {
			t.Fatal(err)
		}
	}
	var second, other error
	fired := false
	rekey.SetReencryptHook(func() {
		if fired {
			return
		}
		fired = true
		_, second = rekey.Reencrypt(ctxA, e.pool, e.keyring(t), rekey.ReencryptOptions{Lock: pgtest.Conn(t, e.d.AppDSN)})
		_, other = rekey.Reencrypt(ctxB, e.pool, e.keyring(t), rekey.ReencryptOptions{Lock: pgtest.Conn(t, e.d.AppDSN)})
	})
	t.Cleanup(func() { rekey.SetReencryptHook(nil) })
	if _, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{Lock: e.lk}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(second, rekey.ErrBusy) || !strings.Contains(second.Error(), "backend pid") {
		t.Errorf("a second run for the tenant: got %v, want ErrBusy naming the holder", second)
	}
	if other != nil {
		t.Errorf("a run for another tenant meanwhile: %v", other)
	}
	if _, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{Lock: pgtest.Conn(t, e.d.AppDSN)}); err != nil {
		t.Errorf("after the first ended: %v, want the lock free", err)
	}
	if _, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{}); err == nil || !strings.Contains(err.Error(), "Lock is required") {
		t.Errorf("without a lock session: got %v, want a refusal", err)
	}
}

// Interrupted between batches, a run reports what committed and nothing more.
func TestReencryptCountsWhatCommitted(t *testing.T) {
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	for i := range 10 {
		e.newRow(t, ctxA, fmt.Sprintf("%d@x", i), "body")
	}
	if _, err := e.admin.Rotate(ctxA, a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxA)
	defer cancel()
	batches := 0
	rekey.SetReencryptHook(func() {
		if batches++; batches == 2 {
			cancel() // the second batch's rewrite never commits
		}
	})
	t.Cleanup(func() { rekey.SetReencryptHook(nil) })
	st, err := rekey.Reencrypt(ctx, e.pool, e.kr, rekey.ReencryptOptions{Lock: e.lk, BatchSize: 4})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	primary, _, err := e.keyring(t).PrimaryKeyIDs(ctxA)
	if err != nil {
		t.Fatal(err)
	}
	var moved int64
	if err := e.pool.QueryRow(ctxA, "SELECT count(*) FROM "+ledger+" WHERE substring(body FROM 2 FOR 4) = int4send($1::bigint::int4)", int64(int32(primary))).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	if st.Rewritten != moved || st.Examined != 4 || moved != 4 {
		t.Errorf("got %+v with %d rows moved in the database, want 4 examined, 4 rewritten and 4 moved", st, moved)
	}
}

func TestUsageCountsEachKeyOfTheTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	for i := range 3 {
		e.newRow(t, ctxA, fmt.Sprintf("%d@x", i), "v")
	}
	e.newRow(t, ctxB, "b@x", "v") // not a's: not counted
	oldAEAD, oldPRF, err := e.kr.PrimaryKeyIDs(ctxA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Rotate(ctxA, a); err != nil {
		t.Fatal(err)
	}
	e.kr.Invalidate(a)
	newAEAD, newPRF, err := e.kr.PrimaryKeyIDs(ctxA)
	if err != nil {
		t.Fatal(err)
	}
	e.newRow(t, ctxA, "new@x", "v")
	u, err := rekey.Usage(ctxA, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	want := keys.KeyUsage{Tenant: a,
		AEAD:            map[uint32]int64{oldAEAD: 6, newAEAD: 2}, // two encrypted columns a row
		PRF:             map[uint32]int64{oldPRF: 3, newPRF: 1},
		QuarantinedAEAD: map[uint32]int64{}, QuarantinedPRF: map[uint32]int64{}}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
}

func TestNeedsAPrincipal(t *testing.T) {
	if _, err := rekey.Reencrypt(t.Context(), nil, nil, rekey.ReencryptOptions{}); !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("Reencrypt: got %v, want ErrNoTenant", err)
	}
	if _, err := rekey.Usage(t.Context(), nil); !errors.Is(err, tenantseal.ErrNoTenant) {
		t.Errorf("Usage: got %v, want ErrNoTenant", err)
	}
}
