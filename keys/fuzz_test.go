package keys_test

import (
	"errors"
	"testing"

	"github.com/tenantseal/tenantseal/keys"
)

func FuzzDecrypt(f *testing.F) {
	fx := newFixture(f, 1)
	ctx := as(f, fx.ids[0])
	field := keys.Field{Table: "t", Column: "c", Row: "r"}
	good := mustEncrypt(f, fx.kr, ctx, field, "seed")
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := fx.kr.Decrypt(ctx, field, ct)
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
		ml, _ := newMemLoader(t, kek, 0)
		ml.sets[ids[0]] = keys.Wrapped{AEAD: wrapped, PRF: w.PRF, KEKID: w.KEKID}
		kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: ml})
		if err != nil {
			t.Fatal(err)
		}
		_, err = kr.Encrypt(as(t, ids[0]), keys.Field{}, []byte("x"))
		if err != nil && !errors.Is(err, keys.ErrKeysetTampered) {
			t.Errorf("got untyped error %v", err)
		}
	})
}

// WrappedKeys reads bytes from the database without the KEK: anything stored there must fail cleanly,
// never panic, and a real wrapped keyset must list its keys.
func FuzzWrappedKeys(f *testing.F) {
	w, err := keys.NewTenantKeysets(fakeKEK(f), tenantID(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(w.AEAD)
	f.Add(w.PRF)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := keys.WrappedKeys(b)
		if err == nil {
			primaries := 0
			for _, k := range info {
				if k.Primary {
					primaries++
				}
			}
			if primaries > 1 {
				t.Errorf("got %d primary keys in %+v", primaries, info)
			}
		}
	})
}
