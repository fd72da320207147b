package keys

import (
	"errors"
	"fmt"

	"github.com/tenantseal/tenantseal"

	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"google.golang.org/protobuf/proto"
)

// KeyInfo describes one key of a stored keyset: no key material.
type KeyInfo struct {
	ID      uint32
	Primary bool
	Enabled bool
}

// ErrNoKeyInfo means a wrapped keyset carries no description of its keys: it was written before
// tenantseal kept one (any change of the keyset adds it). [OpenedKeys] lists its keys with the KEK.
var ErrNoKeyInfo = errors.New("keys: the wrapped keyset carries no description of its keys")

// WrappedKeys lists the keys of a wrapped keyset without opening it, so with no KEK at hand: Tink keeps
// a description of the keyset (ids, statuses, the primary) in clear beside its ciphertext. That
// description is not authenticated by the KEK: it tells an operator what the keyset holds, and nothing
// decides on it. Keys removed by [DestroyWrapped] are not listed. A keyset written by an earlier
// version fails with [ErrNoKeyInfo].
func WrappedKeys(wrapped []byte) ([]KeyInfo, error) {
	var ek tinkpb.EncryptedKeyset
	if err := proto.Unmarshal(wrapped, &ek); err != nil {
		return nil, fmt.Errorf("%w: not a wrapped keyset", ErrKeysetTampered)
	}
	info := ek.GetKeysetInfo()
	if info == nil {
		return nil, ErrNoKeyInfo
	}
	return keyInfos(info), nil
}

// OpenedKeys lists the keys of the tenant's wrapped keyset for purpose by opening it with kek: what
// [WrappedKeys] says, authenticated, and for keysets of any age.
func OpenedKeys(kek *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte) ([]KeyInfo, error) {
	h, err := unwrap(kek, wrapped, tenant, purpose)
	if err != nil {
		return nil, err
	}
	return keyInfos(h.KeysetInfo()), nil
}

func keyInfos(info *tinkpb.KeysetInfo) []KeyInfo {
	out := make([]KeyInfo, 0, len(info.GetKeyInfo()))
	for _, ki := range info.GetKeyInfo() {
		out = append(out, KeyInfo{ID: ki.GetKeyId(), Primary: ki.GetKeyId() == info.GetPrimaryKeyId(),
			Enabled: ki.GetStatus() == tinkpb.KeyStatusType_ENABLED})
	}
	return out
}
