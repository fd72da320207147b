package keys_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tenantseal/tenantseal/rekey"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/keys"
)

func keyIDOf(t *testing.T, e *env, ctx context.Context, tenant tenantseal.TenantID, col, id string) uint32 {
	t.Helper()
	var ct []byte
	if err := e.pool.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM customers WHERE tenant_id = $1 AND id = $2", col), tenant, id).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	k, _ := keys.CiphertextKeyID(ct)
	return k
}

func TestRotateReencryptUnderConcurrentWritesThenRetire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	const n = 60
	ids := make([]string, n)
	for i := range ids {
		ids[i] = insertCustomer(t, e, ctxA, a, fmt.Sprintf("c%d@x", i), "p", fmt.Sprintf("notes %d v0", i))
	}
	bID := insertCustomer(t, e, ctxB, b, "b@x", "p", "b notes")
	oldKey := keyIDOf(t, e, ctxA, a, "notes", ids[0])
	bKey := keyIDOf(t, e, ctxB, b, "notes", bID)

	if err := e.admin.Rotate(ctxA, a); err != nil {
		t.Fatal(err)
	}
	// Retiring before re-encryption must refuse: every row still needs the old key.
	u, err := rekey.Usage(ctxA, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Retire(ctxA, a, u); !errors.Is(err, keys.ErrKeyInUse) {
		t.Fatalf("retire before reencrypt: got %v, want ErrKeyInUse", err)
	}

	// Writers keep updating notes (under whatever key their cached keyset has) while re-encryption runs.
	writer := mustKeyring(t, e.pool, e.kek)
	last := make([]string, n)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for round := 1; round <= 5; round++ {
				for i := w; i < n; i += 2 {
					v := fmt.Sprintf("notes %d v%d", i, round)
					ct, err := writer.Encrypt(ctxA, keys.Field{Table: "customers", Column: "notes", Row: ids[i]}, []byte(v))
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := e.pool.Exec(ctxA, "UPDATE customers SET notes = $3, version = version + 1 WHERE tenant_id = $1 AND id = $2", a, ids[i], ct); err != nil {
						t.Error(err)
						return
					}
					last[i] = v
				}
			}
		}(w)
	}
	var progress []int64
	st, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{BatchSize: 7, Progress: func(done, total int64) {
		progress = append(progress, done)
	}})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Examined != n || len(progress) == 0 || progress[len(progress)-1] != n {
		t.Errorf("got %+v and progress %v, want %d rows examined", st, progress, n)
	}
	// No write was lost: every row holds its writer's last value.
	for i, id := range ids {
		got, err := readField(t, e, ctxA, a, "customers", "notes", id)
		if err != nil || string(got) != last[i] {
			t.Fatalf("row %d: got %q (%v), want the last write %q", i, got, err, last[i])
		}
	}
	// Writers with a stale cache may have written under the old key after their row was re-encrypted:
	// a second run (resuming) moves the rest, then nothing is left on the old key.
	if _, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{}); err != nil {
		t.Fatal(err)
	}
	u, err = rekey.Usage(ctxA, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if u.AEAD[oldKey] != 0 {
		t.Fatalf("after reencrypt %d ciphertexts still use the old key", u.AEAD[oldKey])
	}
	st2, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{})
	if err != nil || st2.Rewritten != 0 {
		t.Errorf("a run with nothing to do rewrote %d rows (%v), want 0", st2.Rewritten, err)
	}
	retired, err := e.admin.Retire(ctxA, a, u)
	if err != nil || len(retired) != 2 {
		t.Fatalf("retire: got %v (%v), want the old AEAD and PRF keys", retired, err)
	}
	e.kr.Invalidate(a)
	for i, id := range ids {
		if got, err := readField(t, e, ctxA, a, "customers", "notes", id); err != nil || string(got) != last[i] {
			t.Fatalf("after retire row %d: got %q (%v), want %q", i, got, err, last[i])
		}
	}
	// The blind index moved too: lookups find rows under the new PRF key alone.
	idx, _ := e.kr.BlindIndexes(ctxA, keys.Field{Table: "customers", Column: "email"}, "C7@X", keys.NormalizeEmail)
	var found string
	if err := e.pool.QueryRow(ctxA, "SELECT id::text FROM customers WHERE tenant_id = $1 AND email_bidx = ANY($2)", a, idx).Scan(&found); err != nil || found != ids[7] {
		t.Errorf("lookup after retire: got %q (%v), want %s", found, err, ids[7])
	}
	// A ciphertext under the retired key (from a restored backup, say) no longer decrypts.
	ct, _ := e.kr.Encrypt(ctxA, keys.Field{Table: "customers", Column: "notes", Row: ids[0]}, []byte("x"))
	ct[1], ct[2], ct[3], ct[4] = byte(oldKey>>24), byte(oldKey>>16), byte(oldKey>>8), byte(oldKey)
	if _, err := e.kr.Decrypt(ctxA, keys.Field{Table: "customers", Column: "notes", Row: ids[0]}, ct); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("ciphertext under a retired key: got %v, want ErrUnknownKey", err)
	}
	// The other tenant was not touched.
	if got := keyIDOf(t, e, ctxB, b, "notes", bID); got != bKey {
		t.Errorf("tenant b's key changed from %d to %d", bKey, got)
	}
}

func TestRotateKEKAndShred(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	b, ctxB := e.tenant(t, "b")
	aID := insertCustomer(t, e, ctxA, a, "a@x", "1", "a notes")
	bID := insertCustomer(t, e, ctxB, b, "b@x", "2", "b notes")

	next := mustKEK(t)
	n, err := e.admin.RotateKEK(ctxA, next)
	if err != nil || n != 4 {
		t.Fatalf("rotate-kek: got %d keysets (%v), want 4", n, err)
	}
	old := mustKeyring(t, e.pool, e.kek)
	if _, err := old.Decrypt(ctxA, keys.Field{Table: "customers", Column: "notes", Row: aID}, nil); !errors.Is(err, keys.ErrTampered) {
		t.Errorf("nil ciphertext: got %v, want ErrTampered", err)
	}
	var ct []byte
	e.pool.QueryRow(ctxA, "SELECT notes FROM customers WHERE id = $1", aID).Scan(&ct)
	if _, err := old.Decrypt(ctxA, keys.Field{Table: "customers", Column: "notes", Row: aID}, ct); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("old KEK after rotate-kek: got %v, want ErrKEK", err)
	}
	e.kr = mustKeyring(t, e.pool, next)
	if got, err := readField(t, e, ctxA, a, "customers", "notes", aID); err != nil || string(got) != "a notes" {
		t.Errorf("new KEK: got %q (%v), want the row data unchanged", got, err)
	}
	e.admin.KEK = next

	if _, err := e.admin.Shred(ctxA, a); err != nil {
		t.Fatal(err)
	}
	e.kr.Invalidate(a)
	if _, err := readField(t, e, ctxA, a, "customers", "notes", aID); !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("after shred: got %v, want ErrNoKeyset", err)
	}
	if got, err := readField(t, e, ctxB, b, "customers", "notes", bID); err != nil || string(got) != "b notes" {
		t.Errorf("other tenant after shred: got %q (%v), want b notes", got, err)
	}
	if _, err := e.admin.Shred(ctxA, a); !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("second shred: got %v, want ErrNoKeyset", err)
	}
	// Nothing can bring the keys back: a rotation has nothing to rotate.
	if err := e.admin.Rotate(ctxA, a); !errors.Is(err, keys.ErrNoKeyset) {
		t.Errorf("rotate after shred: got %v, want ErrNoKeyset", err)
	}
	_ = pgx.ErrNoRows
}

// A write that lands between re-encryption's read and its rewrite must win. Not parallel: the hook is
// package-wide.
func TestReencryptNeverOverwritesAConcurrentWrite(t *testing.T) {
	e := newEnv(t)
	a, ctxA := e.tenant(t, "a")
	ids := []string{
		insertCustomer(t, e, ctxA, a, "1@x", "p", "one"),
		insertCustomer(t, e, ctxA, a, "2@x", "p", "two"),
	}
	if err := e.admin.Rotate(ctxA, a); err != nil {
		t.Fatal(err)
	}
	stale := mustKeyring(t, e.pool, e.kek) // loaded now: its primary is the new key
	fired := false
	keys.SetReencryptHook(func() {
		if fired {
			return
		}
		fired = true
		for _, id := range ids {
			ct, err := stale.Encrypt(ctxA, keys.Field{Table: "customers", Column: "notes", Row: id}, []byte("written meanwhile"))
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := e.pool.Exec(ctxA, "UPDATE customers SET notes = $2 WHERE id = $1", id, ct); err != nil {
				t.Error(err)
			}
		}
	})
	t.Cleanup(func() { keys.SetReencryptHook(nil) })
	st, err := rekey.Reencrypt(ctxA, e.pool, e.kr, rekey.ReencryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !fired || st.Raced != 2 {
		t.Errorf("got %+v (hook fired: %v), want both rows counted as raced", st, fired)
	}
	for _, id := range ids {
		if got, err := readField(t, e, ctxA, a, "customers", "notes", id); err != nil || string(got) != "written meanwhile" {
			t.Errorf("row %s: got %q (%v), want the concurrent write", id, got, err)
		}
	}
}
