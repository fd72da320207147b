package keys

import (
	"encoding/binary"
	"errors"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"

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
