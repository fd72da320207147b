package keys

import (
	"bytes"
	"fmt"

	"github.com/tenantseal/tenantseal"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
)

// Keyset purposes, as stored in tenantseal.tenant_keysets.purpose.
const (
	PurposeAEAD = "aead" // field encryption, AES-256-GCM
	PurposePRF  = "prf"  // blind indexes, HMAC-SHA256
)

func template(purpose string) (*tinkpb.KeyTemplate, error) {
	switch purpose {
	case PurposeAEAD:
		return aead.AES256GCMKeyTemplate(), nil
	case PurposePRF:
		return prf.HMACSHA256PRFKeyTemplate(), nil
	}
	return nil, fmt.Errorf("keys: unknown keyset purpose %q: want %q or %q", purpose, PurposeAEAD, PurposePRF)
}

// keysetAD binds a wrapped keyset to its tenant and purpose: a row copied to another tenant fails to open.
func keysetAD(tenant tenantseal.TenantID, purpose string) []byte {
	return []byte("tenantseal/keyset/v1\x00" + tenant.String() + "\x00" + purpose)
}

func wrap(kek *KEK, h *keyset.Handle, tenant tenantseal.TenantID, purpose string) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), kek.aead, keysetAD(tenant, purpose)); err != nil {
		return nil, fmt.Errorf("keys: wrap %s keyset: %w", purpose, err)
	}
	return buf.Bytes(), nil
}

func unwrap(kek *KEK, wrapped []byte, tenant tenantseal.TenantID, purpose string) (*keyset.Handle, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), kek.aead, keysetAD(tenant, purpose))
	if err != nil {
		// Tink's error says nothing secret, but nothing useful either: name the cause we know.
		return nil, fmt.Errorf("%w (tenant %s, %s keyset)", ErrKeysetTampered, tenant, purpose)
	}
	return h, nil
}

// newWrapped creates a fresh keyset for purpose and wraps it.
func newWrapped(kek *KEK, tenant tenantseal.TenantID, purpose string) ([]byte, error) {
	tmpl, err := template(purpose)
	if err != nil {
		return nil, err
	}
	h, err := keyset.NewHandle(tmpl)
	if err != nil {
		return nil, fmt.Errorf("keys: new %s keyset: %w", purpose, err)
	}
	return wrap(kek, h, tenant, purpose)
}

// NewTenantKeysets creates a tenant's AEAD and PRF keysets, wrapped by kek: what pgstore's Admin stores,
// for callers that keep keysets elsewhere and bring their own [Loader].
func NewTenantKeysets(kek *KEK, tenant tenantseal.TenantID) (Wrapped, error) {
	a, err := newWrapped(kek, tenant, PurposeAEAD)
	if err != nil {
		return Wrapped{}, err
	}
	p, err := newWrapped(kek, tenant, PurposePRF)
	if err != nil {
		return Wrapped{}, err
	}
	return Wrapped{AEAD: a, PRF: p, KEKID: kek.ID}, nil
}

// The functions below change a wrapped keyset and return it wrapped again, so that storage code never
// holds an opened keyset. Each fails with [ErrKeysetTampered] when wrapped does not open under the KEK
// for tenant and purpose.

// RotateWrapped adds a new key to the tenant's keyset for purpose and makes it the primary, wrapped by
// kek. Old keys keep decrypting (and old blind indexes keep matching) until they are retired.
func RotateWrapped(kek *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte) ([]byte, error) {
	tmpl, err := template(purpose)
	if err != nil {
		return nil, err
	}
	return editWrapped(kek, tenant, purpose, wrapped, func(m *keyset.Manager, _ *tinkpb.KeysetInfo) error {
		id, err := m.Add(tmpl)
		if err == nil {
			err = m.SetPrimary(id)
		}
		if err != nil {
			return fmt.Errorf("keys: rotate %s keyset: %w", purpose, err)
		}
		return nil
	})
}

// KeyUsage counts, per key id, the stored values of one tenant that still need a key: ciphertexts for
// AEAD keys, blind indexes for PRF keys. rekey.Usage computes it.
type KeyUsage struct {
	// Tenant is the tenant whose values were counted: [RetireWrapped] refuses the usage of another.
	Tenant    tenantseal.TenantID
	AEAD, PRF map[uint32]int64
}

// RetireWrapped disables every enabled, non-primary key of the tenant's keyset for purpose that usage
// shows no stored value needs, and returns the keyset wrapped by kek with the ids it disabled. It refuses
// with [ErrKeyInUse] while a value still needs a non-primary key, and with
// [tenantseal.ErrTenantMismatch] a usage counted for another tenant (or for none).
func RetireWrapped(kek *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte, usage KeyUsage) ([]byte, []uint32, error) {
	if usage.Tenant != tenant {
		return nil, nil, fmt.Errorf("%w: key usage of tenant %s cannot retire keys of tenant %s", tenantseal.ErrTenantMismatch, usage.Tenant, tenant)
	}
	if _, err := template(purpose); err != nil {
		return nil, nil, err
	}
	used := usage.AEAD
	if purpose == PurposePRF {
		used = usage.PRF
	}
	var retired []uint32
	out, err := editWrapped(kek, tenant, purpose, wrapped, func(m *keyset.Manager, info *tinkpb.KeysetInfo) error {
		for _, ki := range info.GetKeyInfo() {
			id := ki.GetKeyId()
			if id == info.GetPrimaryKeyId() || ki.GetStatus() != tinkpb.KeyStatusType_ENABLED {
				continue
			}
			if n := used[id]; n > 0 {
				return fmt.Errorf("%w: %d stored values of tenant %s still need %s key %d: run keys reencrypt first", ErrKeyInUse, n, tenant, purpose, id)
			}
			if err := m.Disable(id); err != nil {
				return fmt.Errorf("keys: disable %s key %d: %w", purpose, id, err)
			}
			retired = append(retired, id)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, retired, nil
}

// Rewrap opens the tenant's keyset for purpose with from and wraps it with to, keys unchanged: a KEK
// rotation that touches no row data.
func Rewrap(from, to *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte) ([]byte, error) {
	h, err := unwrap(from, wrapped, tenant, purpose)
	if err != nil {
		return nil, err
	}
	return wrap(to, h, tenant, purpose)
}

// editWrapped opens wrapped, runs edit on it and wraps the result again.
func editWrapped(kek *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte, edit func(*keyset.Manager, *tinkpb.KeysetInfo) error) ([]byte, error) {
	h, err := unwrap(kek, wrapped, tenant, purpose)
	if err != nil {
		return nil, err
	}
	m := keyset.NewManagerFromHandle(h)
	if err := edit(m, h.KeysetInfo()); err != nil {
		return nil, err
	}
	nh, err := m.Handle()
	if err != nil {
		return nil, fmt.Errorf("keys: %s keyset: %w", purpose, err)
	}
	return wrap(kek, nh, tenant, purpose)
}
