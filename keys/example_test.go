package keys_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantseal/tenantseal"

	"github.com/tink-crypto/tink-go/v2/testing/fakekms"

	"github.com/tenantseal/tenantseal/keys"
)

// staticLoader serves keysets from memory; applications use keys.PoolLoader over their *db.Pool.
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
	ctx := context.Background()

	email := keys.Field{Table: "customers", Column: "email", Row: "7d0c5a8e-0000-4000-8000-000000000001"}
	ct, _ := kr.Encrypt(ctx, acme, email, []byte("ada@example.com"))
	pt, _ := kr.Decrypt(ctx, acme, email, ct)
	fmt.Println(string(pt))

	// The same bytes read from another row or tenant do not decrypt.
	otherRow := email
	otherRow.Row = "7d0c5a8e-0000-4000-8000-000000000002"
	_, err := kr.Decrypt(ctx, acme, otherRow, ct)
	fmt.Println(errors.Is(err, keys.ErrTampered))
	_, err = kr.Decrypt(ctx, globex, email, ct)
	fmt.Println(errors.Is(err, keys.ErrTampered))

	// Blind indexes match equal normalised values within a tenant, never across tenants.
	i1, _ := kr.BlindIndex(ctx, acme, email, "Ada@Example.com ", keys.NormalizeEmail)
	i2, _ := kr.BlindIndex(ctx, acme, email, "ada@example.com", keys.NormalizeEmail)
	i3, _ := kr.BlindIndex(ctx, globex, email, "ada@example.com", keys.NormalizeEmail)
	fmt.Println(string(i1) == string(i2), string(i2) == string(i3), len(i1))
	// Output:
	// ada@example.com
	// true
	// true
	// true false 20
}
