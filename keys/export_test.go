package keys

import (
	"encoding/binary"
	"errors"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"

	"github.com/tenantseal/tenantseal"
)

// KeyMaterial returns the raw secret of every key in a tenant's wrapped keysets, for tests that prove
// it appears nowhere it must not.
func KeyMaterial(kek *KEK, tenant tenantseal.TenantID, w Wrapped) ([][]byte, error) {
	var out [][]byte
	for _, k := range []struct {
		purpose string
		wrapped []byte
	}{{PurposeAEAD, w.AEAD}, {PurposePRF, w.PRF}} {
		h, err := unwrap(kek, k.wrapped, tenant, k.purpose)
		if err != nil {
			return nil, err
		}
		for _, key := range insecurecleartextkeyset.KeysetMaterial(h).GetKey() {
			// AesGcmKey and HmacPrfKey both hold their secret in field 3, key_value.
			v, ok := protoBytes(key.GetKeyData().GetValue(), 3)
			if !ok || len(v) < 16 {
				return nil, errors.New("no key_value in " + key.GetKeyData().GetTypeUrl())
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// protoBytes returns the length-delimited field num of a serialised protocol buffer message.
func protoBytes(msg []byte, num uint64) ([]byte, bool) {
	for len(msg) > 0 {
		tag, n := binary.Uvarint(msg)
		if n <= 0 {
			return nil, false
		}
		msg = msg[n:]
		switch tag & 7 {
		case 0: // varint
			_, n = binary.Uvarint(msg)
			if n <= 0 {
				return nil, false
			}
			msg = msg[n:]
		case 2: // length-delimited
			l, n := binary.Uvarint(msg)
			if n <= 0 || uint64(len(msg)-n) < l {
				return nil, false
			}
			if tag>>3 == num {
				return msg[n : n+int(l)], true
			}
			msg = msg[n+int(l):]
		default:
			return nil, false
		}
	}
	return nil, false
}

// PRFs returns, for every enabled key of the PRF keyset h that the Keyring computes with its own
// HMAC, the PRF of each of inputs in turn as the Keyring computes it and as Tink's prf.Set does, in
// full length. One HMAC per key serves all the inputs, as its pool does in a Keyring.
func PRFs(h *keyset.Handle, inputs [][]byte) (own, tink map[uint32][][]byte, err error) {
	set, err := prf.NewPRFSet(h)
	if err != nil {
		return nil, nil, err
	}
	own, tink = map[uint32][][]byte{}, map[uint32][][]byte{}
	for id, hp := range hmacPRFs(h) {
		for _, in := range inputs {
			own[id] = append(own[id], hp.appendPRF(nil, in))
			t, err := set.PRFs[id].ComputePRF(in, uint32(hp.size))
			if err != nil {
				return nil, nil, err
			}
			tink[id] = append(tink[id], t)
		}
	}
	return own, tink, nil
}
