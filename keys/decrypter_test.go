package keys_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/keys"
)

// A Decrypter looks the tenant's keys up once for many fields, and again only where what it holds does
// not answer: a ciphertext under a key added since (read anew once the cached keysets are old enough),
// or another Principal's tenant, whose fields its held keys never serve.
func TestDecrypterLooksKeysUpOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	fx := newFixture(t, 2, func(c *keys.Config) { c.Now = clock })
	a, b := fx.ids[0], fx.ids[1]
	ctxA, ctxB := as(t, a), as(t, b)
	field := func(i int) keys.Field {
		return keys.Field{Table: "customers", Column: "notes", Row: fmt.Sprint("row-", i)}
	}
	cts := make([][]byte, 5)
	for i := range cts {
		cts[i] = mustEncrypt(t, fx.kr, ctxA, field(i), fmt.Sprint("secret ", i))
	}
	lookups := func() int64 { s := fx.kr.Stats(); return s.Hits + s.Misses }

	d := fx.kr.Decrypter()
	before := lookups()
	for i, ct := range cts {
		pt, err := d.Decrypt(ctxA, field(i), ct)
		if err != nil || string(pt) != fmt.Sprint("secret ", i) {
			t.Fatalf("field %d: got %q, %v", i, pt, err)
		}
	}
	if got := lookups() - before; got != 1 {
		t.Errorf("a Decrypter of %d fields looked the keys up %d times, want 1", len(cts), got)
	}

	// The fields of another Principal's tenant: B's own keys, which lack the key of A's ciphertext.
	if _, err := d.Decrypt(ctxB, field(0), cts[0]); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("A's ciphertext with B's Principal: got %v, want ErrUnknownKey (B's keys, not the ones held for A)", err)
	}
	ctB := mustEncrypt(t, fx.kr, ctxB, field(0), "b's")
	if pt, err := d.Decrypt(ctxB, field(0), ctB); err != nil || string(pt) != "b's" {
		t.Errorf("B's ciphertext: got %q, %v", pt, err)
	}

	// A rotation elsewhere: a ciphertext under A's new key, which the held keys lack.
	w := fx.l.sets[a]
	var err error
	if w.AEAD, _, err = keys.RotateWrapped(fx.kek, a, keys.PurposeAEAD, w.AEAD); err != nil {
		t.Fatal(err)
	}
	fx.l.set(a, w)
	other, err := keys.NewKeyring(keys.Config{KEK: fx.kek, Loader: fx.l})
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustEncrypt(t, other, ctxA, field(9), "rotated")
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if _, err := d.Decrypt(ctxA, field(0), cts[0]); err != nil {
		t.Fatal(err)
	}
	if pt, err := d.Decrypt(ctxA, field(9), rotated); err != nil || string(pt) != "rotated" {
		t.Errorf("a ciphertext under a key added since: got %q, %v", pt, err)
	}
}
