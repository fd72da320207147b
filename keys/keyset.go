package keys

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/tenantseal/tenantseal"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"google.golang.org/protobuf/proto"
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
	if err := h.WriteWithAssociatedData(describedWriter{&buf}, kek.aead, keysetAD(tenant, purpose)); err != nil {
		return nil, fmt.Errorf("keys: wrap %s keyset: %w", purpose, err)
	}
	return buf.Bytes(), nil
}

// describedWriter writes an encrypted keyset with the description of its keys that Tink's BinaryWriter
// drops (ids, statuses, the primary; no key material), so that [WrappedKeys] can list them without the
// KEK. Tink's BinaryReader reads it as any other.
type describedWriter struct{ w *bytes.Buffer }

func (d describedWriter) Write(*tinkpb.Keyset) error {
	return errors.New("keys: refusing to write a keyset in clear")
}

func (d describedWriter) WriteEncrypted(ek *tinkpb.EncryptedKeyset) error {
	b, err := proto.Marshal(ek)
	if err != nil {
		return err
	}
	_, err = d.w.Write(b)
	return err
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
// kek, and returns it with the new key's id. Old keys keep decrypting (and old blind indexes keep
// matching) until they are retired.
func RotateWrapped(kek *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte) ([]byte, uint32, error) {
	tmpl, err := template(purpose)
	if err != nil {
		return nil, 0, err
	}
	var id uint32
	out, err := editWrapped(kek, tenant, purpose, wrapped, func(m *keyset.Manager, _ *tinkpb.KeysetInfo) error {
		var err error
		id, err = m.Add(tmpl)
		if err == nil {
			err = m.SetPrimary(id)
		}
		if err != nil {
			return fmt.Errorf("keys: rotate %s keyset: %w", purpose, err)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, id, nil
}

// KeyUsage counts, per key id, the stored values of one tenant that still need a key: ciphertexts for
// AEAD keys, blind indexes for PRF keys. rekey.Usage computes it.
type KeyUsage struct {
	// Tenant is the tenant whose values were counted: [RetireWrapped] refuses the usage of another.
	Tenant    tenantseal.TenantID
	AEAD, PRF map[uint32]int64
	// QuarantinedAEAD and QuarantinedPRF count the part of AEAD and PRF that belongs to quarantined
	// values: recorded as unreadable (tampered, or under a key the keyset lacks), so that no key makes
	// them readable again. [RetireOptions.SkipQuarantined] lets a retirement or destruction go on
	// without them.
	QuarantinedAEAD, QuarantinedPRF map[uint32]int64
}

// need returns how many stored values still need key id of purpose: all of them, or with skip those not
// quarantined.
func (u KeyUsage) need(purpose string, id uint32, skip bool) int64 {
	used, quarantined := u.AEAD, u.QuarantinedAEAD
	if purpose == PurposePRF {
		used, quarantined = u.PRF, u.QuarantinedPRF
	}
	n := used[id]
	if skip {
		n -= quarantined[id]
	}
	return n
}

// RetireOptions change what [RetireWrapped] and [DestroyWrapped] wait for.
type RetireOptions struct {
	// SkipQuarantined goes on although quarantined values (see [KeyUsage]) still name the key: they
	// stay unreadable, as they are already. Without it a quarantined value blocks like any other.
	SkipQuarantined bool
}

// RetireWrapped disables every enabled, non-primary key of the tenant's keyset for purpose that usage
// shows no stored value needs, and returns the keyset wrapped by kek with the ids it disabled. A
// disabled key stays in the keyset: [EnableWrapped] turns it back on until [DestroyWrapped] removes it.
// It refuses with [ErrKeyInUse] while a value still needs a non-primary key, and with
// [tenantseal.ErrTenantMismatch] a usage counted for another tenant (or for none).
func RetireWrapped(kek *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte, usage KeyUsage, opts RetireOptions) ([]byte, []uint32, error) {
	return changeKeys(kek, tenant, purpose, wrapped, usage, func(m *keyset.Manager, ki *tinkpb.KeysetInfo_KeyInfo, primary bool) (bool, error) {
		if primary || ki.GetStatus() != tinkpb.KeyStatusType_ENABLED {
			return false, nil
		}
		if n := usage.need(purpose, ki.GetKeyId(), opts.SkipQuarantined); n > 0 {
			return false, fmt.Errorf("%w: %d stored values of tenant %s still need %s key %d: run keys reencrypt first", ErrKeyInUse, n, tenant, purpose, ki.GetKeyId())
		}
		if err := m.Disable(ki.GetKeyId()); err != nil {
			return false, fmt.Errorf("keys: disable %s key %d: %w", purpose, ki.GetKeyId(), err)
		}
		return true, nil
	})
}

// EnableWrapped turns the disabled keys of the tenant's keyset for purpose back on (those of ids, or
// every one when ids is empty): what undoes [RetireWrapped]. It returns the keyset wrapped by kek with
// the ids it enabled; ids the keyset does not hold disabled are ignored.
func EnableWrapped(kek *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte, ids []uint32) ([]byte, []uint32, error) {
	return changeKeys(kek, tenant, purpose, wrapped, KeyUsage{Tenant: tenant}, func(m *keyset.Manager, ki *tinkpb.KeysetInfo_KeyInfo, _ bool) (bool, error) {
		if ki.GetStatus() != tinkpb.KeyStatusType_DISABLED || (len(ids) > 0 && !slices.Contains(ids, ki.GetKeyId())) {
			return false, nil
		}
		if err := m.Enable(ki.GetKeyId()); err != nil {
			return false, fmt.Errorf("keys: enable %s key %d: %w", purpose, ki.GetKeyId(), err)
		}
		return true, nil
	})
}

// DestroyWrapped removes every disabled key of the tenant's keyset for purpose from it, key material and
// all, and returns the keyset wrapped by kek with the ids it removed: nothing brings them back, and
// values under them are lost for good. It refuses with [ErrKeyInUse] while usage shows a stored value
// that still names a disabled key (re-enable it and re-encrypt instead), and with
// [tenantseal.ErrTenantMismatch] a usage of another tenant.
func DestroyWrapped(kek *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte, usage KeyUsage, opts RetireOptions) ([]byte, []uint32, error) {
	return changeKeys(kek, tenant, purpose, wrapped, usage, func(m *keyset.Manager, ki *tinkpb.KeysetInfo_KeyInfo, _ bool) (bool, error) {
		if ki.GetStatus() != tinkpb.KeyStatusType_DISABLED {
			return false, nil
		}
		if n := usage.need(purpose, ki.GetKeyId(), opts.SkipQuarantined); n > 0 {
			return false, fmt.Errorf("%w: %d stored values of tenant %s still name disabled %s key %d: re-enable it (keys enable) and run keys reencrypt instead", ErrKeyInUse, n, tenant, purpose, ki.GetKeyId())
		}
		if err := m.Delete(ki.GetKeyId()); err != nil {
			return false, fmt.Errorf("keys: destroy %s key %d: %w", purpose, ki.GetKeyId(), err)
		}
		return true, nil
	})
}

// changeKeys opens the keyset, calls change for each key (with whether it is the primary) and returns
// the keyset wrapped again with the ids of the keys change changed. Nothing is returned on an error.
func changeKeys(kek *KEK, tenant tenantseal.TenantID, purpose string, wrapped []byte, usage KeyUsage,
	change func(m *keyset.Manager, ki *tinkpb.KeysetInfo_KeyInfo, primary bool) (bool, error)) ([]byte, []uint32, error) {
	if usage.Tenant != tenant {
		return nil, nil, fmt.Errorf("%w: key usage of tenant %s cannot change keys of tenant %s", tenantseal.ErrTenantMismatch, usage.Tenant, tenant)
	}
	if _, err := template(purpose); err != nil {
		return nil, nil, err
	}
	var changed []uint32
	out, err := editWrapped(kek, tenant, purpose, wrapped, func(m *keyset.Manager, info *tinkpb.KeysetInfo) error {
		for _, ki := range info.GetKeyInfo() {
			ok, err := change(m, ki, ki.GetKeyId() == info.GetPrimaryKeyId())
			if err != nil {
				return err
			}
			if ok {
				changed = append(changed, ki.GetKeyId())
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, changed, nil
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
