package keys_test

import (
	"bytes"
	"testing"

	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"

	"github.com/tenantseal/tenantseal/keys"
)

// The Keyring computes blind indexes with HMACs of its own, keyed once: they must equal Tink's HMAC PRF
// for every key of a keyset, every hash it covers and inputs around the hash's block size, also when a
// pooled HMAC is used again.
func TestOwnHMACIsTinksPRF(t *testing.T) {
	for _, tc := range []struct {
		name     string
		template func() *tinkpb.KeyTemplate
	}{
		{"hmac-sha256", prf.HMACSHA256PRFKeyTemplate},
		{"hmac-sha512", prf.HMACSHA512PRFKeyTemplate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := keyset.NewManager()
			for range 3 { // a rotated keyset: every key is checked
				id, err := m.Add(tc.template())
				if err != nil {
					t.Fatal(err)
				}
				if err := m.SetPrimary(id); err != nil {
					t.Fatal(err)
				}
			}
			h, err := m.Handle()
			if err != nil {
				t.Fatal(err)
			}
			var inputs [][]byte
			for _, n := range []int{0, 1, 55, 63, 64, 65, 127, 128, 129, 1000, 64, 0} {
				inputs = append(inputs, bytes.Repeat([]byte{byte(n)}, n))
			}
			own, tink, err := keys.PRFs(h, inputs)
			if err != nil {
				t.Fatal(err)
			}
			if len(own) != 3 {
				t.Fatalf("own HMACs for %d keys, want 3", len(own))
			}
			for id, outs := range own {
				for i, o := range outs {
					if !bytes.Equal(o, tink[id][i]) {
						t.Errorf("key %d, input %d (%d bytes): got %x, want Tink's %x", id, i, len(inputs[i]), o, tink[id][i])
					}
				}
			}
		})
	}
}
