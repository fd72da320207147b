package keys_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/testing/fakekms"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// staticLoader serves keysets from memory; applications use pgstore.Loader over their pool.
type staticLoader map[tenantseal.TenantID]keys.Wrapped

func (s staticLoader) LoadKeysets(_ context.Context, t tenantseal.TenantID) (keys.Wrapped, error) {
	if w, ok := s[t]; ok {
		return w, nil
	}
	return keys.Wrapped{}, keys.ErrNoKeyset
}

func Example() {
	// A KEK in Tink's fake KMS stands in for gcp-kms://, aws-kms:// or hcvault://.
	uri, _ := fakekms.NewKeyURI()
	kmsAEAD, _ := fakekms.NewAEAD(uri)
	kek := keys.NewKEK("example-kek", kmsAEAD)

	acme, _ := tenantseal.ParseTenantID("0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5b")
	globex, _ := tenantseal.ParseTenantID("0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5c")
	loader := staticLoader{}
	for _, t := range []tenantseal.TenantID{acme, globex} {
		loader[t], _ = keys.NewTenantKeysets(kek, t)
	}
	kr, _ := keys.NewKeyring(keys.Config{KEK: kek, Loader: loader})

	// The tenant comes from the Principal in the context, never from an argument.
	ctx := context.Background()
	asAcme := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: acme, Subject: "ada"})
	asGlobex := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: globex, Subject: "grace"})

	email := keys.Field{Table: "customers", Column: "email", Row: "7d0c5a8e-0000-4000-8000-000000000001"}
	ct, _ := kr.Encrypt(asAcme, email, []byte("ada@example.com"))
	pt, _ := kr.Decrypt(asAcme, email, ct)
	fmt.Println(string(pt))

	// The same bytes read from another row, or by another tenant, do not decrypt.
	otherRow := email
	otherRow.Row = "7d0c5a8e-0000-4000-8000-000000000002"
	_, err := kr.Decrypt(asAcme, otherRow, ct)
	fmt.Println(errors.Is(err, keys.ErrTampered))
	_, err = kr.Decrypt(asGlobex, email, ct)
	fmt.Println(errors.Is(err, keys.ErrTampered))

	// A field that names its row's tenant is refused outright to a Principal of another.
	acmeRow := email
	acmeRow.Tenant = acme
	_, err = kr.Decrypt(asGlobex, acmeRow, ct)
	fmt.Println(errors.Is(err, tenantseal.ErrTenantMismatch))

	// Blind indexes match equal normalised values within a tenant, never across tenants.
	i1, _ := kr.BlindIndex(asAcme, email, "Ada@Example.com ", keys.NormalizeEmail)
	i2, _ := kr.BlindIndex(asAcme, email, "ada@example.com", keys.NormalizeEmail)
	i3, _ := kr.BlindIndex(asGlobex, email, "ada@example.com", keys.NormalizeEmail)
	fmt.Println(string(i1) == string(i2), string(i2) == string(i3), len(i1))
	// Output:
	// ada@example.com
	// true
	// true
	// true
	// true false 20
}

// Rotation and retirement work on wrapped keysets, so that storage never holds an opened one.
func ExampleRetireWrapped() {
	uri, _ := fakekms.NewKeyURI()
	kmsAEAD, _ := fakekms.NewAEAD(uri)
	kek := keys.NewKEK("example-kek", kmsAEAD)
	acme, _ := tenantseal.ParseTenantID("0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5b")
	w, _ := keys.NewTenantKeysets(kek, acme)
	kr, _ := keys.NewKeyring(keys.Config{KEK: kek, Loader: staticLoader{acme: w}})
	ctx := tenantseal.WithPrincipal(context.Background(), tenantseal.Principal{Tenant: acme, Subject: "ada"})
	ct, _ := kr.Encrypt(ctx, keys.Field{Table: "customers", Column: "notes", Row: "1"}, []byte("net 30"))
	old, _ := keys.CiphertextKeyID(ct)

	rotated, _, _ := keys.RotateWrapped(kek, acme, keys.PurposeAEAD, w.AEAD)
	// Until re-encryption, a stored value still needs the old key: retirement refuses.
	_, _, err := keys.RetireWrapped(kek, acme, keys.PurposeAEAD, rotated, keys.KeyUsage{Tenant: acme, AEAD: map[uint32]int64{old: 1}}, keys.RetireOptions{})
	fmt.Println(errors.Is(err, keys.ErrKeyInUse))

	// Once nothing needs it, the old key is disabled; it stays in the keyset, and can be enabled again.
	retiredSet, retired, _ := keys.RetireWrapped(kek, acme, keys.PurposeAEAD, rotated, keys.KeyUsage{Tenant: acme}, keys.RetireOptions{})
	fmt.Println(len(retired), retired[0] == old)

	// Destroying removes it for good.
	_, destroyed, _ := keys.DestroyWrapped(kek, acme, keys.PurposeAEAD, retiredSet, keys.KeyUsage{Tenant: acme}, keys.RetireOptions{})
	fmt.Println(destroyed[0] == old)
	// Output:
	// true
	// 1 true
	// true
}
