package keys_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// Every keyset unwrap is recorded, on a cache miss only: the tenant, the purpose, the KEK's id and the
// process, and nothing of the keys (the detail is exactly that sentence).
func TestUnwrapRecordedOnCacheMissOnly(t *testing.T) {
	fx := newFixture(t, 2, func(c *keys.Config) { c.Instance = "billing-7" })
	a, b := fx.ids[0], fx.ids[1]
	unwrap := func(tenant tenantseal.TenantID, purpose string) tenantseal.Event {
		return tenantseal.Event{Kind: tenantseal.EventKeyUnwrap, TargetTenant: tenant, Table: "tenantseal.tenant_keysets", Operation: "unwrap",
			RowKey: purpose, Detail: purpose + " keyset unwrapped with shared KEK " + fx.kek.ID + " by billing-7"}
	}
	ct := mustEncrypt(t, fx.kr, as(t, a), email, "x")
	mustEncrypt(t, fx.kr, as(t, a), email, "y")
	if _, err := fx.kr.Decrypt(as(t, a), email, ct); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]tenantseal.Event{unwrap(a, keys.PurposeAEAD), unwrap(a, keys.PurposePRF)}, fx.rec.takeUnwraps()); diff != "" {
		t.Errorf("one miss and two hits of A: unwraps (-want +got):\n%s", diff)
	}
	mustEncrypt(t, fx.kr, as(t, b), email, "z")
	fx.kr.Invalidate(a)
	mustEncrypt(t, fx.kr, as(t, a), email, "w")
	want := []tenantseal.Event{unwrap(b, keys.PurposeAEAD), unwrap(b, keys.PurposePRF), unwrap(a, keys.PurposeAEAD), unwrap(a, keys.PurposePRF)}
	if diff := cmp.Diff(want, fx.rec.takeUnwraps()); diff != "" {
		t.Errorf("B's miss, then A's after Invalidate: unwraps (-want +got):\n%s", diff)
	}
	if ev := fx.rec.take(); len(ev) != 0 {
		t.Errorf("got other events %v, want none", ev)
	}
}

// A keyset that does not open with the KEK is recorded too, as such.
func TestFailedUnwrapRecorded(t *testing.T) {
	fx := newFixture(t, 1, func(c *keys.Config) { c.Instance = "billing-7" })
	other := fakeKEK(t)
	kr, err := keys.NewKeyring(keys.Config{KEK: other, Loader: fx.l, Recorder: fx.rec, Instance: "billing-7"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Encrypt(as(t, fx.ids[0]), email, []byte("x")); err == nil {
		t.Fatal("encrypt with keysets wrapped by another KEK: got no error")
	}
	want := []tenantseal.Event{{Kind: tenantseal.EventKeyUnwrap, TargetTenant: fx.ids[0], Table: "tenantseal.tenant_keysets", Operation: "unwrap",
		RowKey: keys.PurposeAEAD, Detail: "aead keyset did not open with shared KEK " + other.ID + " in billing-7"}}
	if diff := cmp.Diff(want, fx.rec.takeUnwraps()); diff != "" {
		t.Errorf("unwraps (-want +got):\n%s", diff)
	}
}
