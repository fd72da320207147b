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

func template(purpose string) *tinkpb.KeyTemplate {
	if purpose == PurposePRF {
		return prf.HMACSHA256PRFKeyTemplate()
	}
	return aead.AES256GCMKeyTemplate()
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
	h, err := keyset.NewHandle(template(purpose))
	if err != nil {
		return nil, fmt.Errorf("keys: new %s keyset: %w", purpose, err)
	}
	return wrap(kek, h, tenant, purpose)
}

// NewTenantKeysets creates a tenant's AEAD and PRF keysets, wrapped by kek: what [Admin.CreateTenant]
// stores, for callers that keep keysets elsewhere and bring their own [Loader].
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
