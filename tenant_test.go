package tenantseal_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/uuid"
)

// The handles are those tenantseal.tenant_handle computes in SQL (migration 21); the migrations tests
// compare the two on the server as well.
func TestTenantIDHandle(t *testing.T) {
	for _, c := range []struct{ key, handle string }{
		{"42", "e3b1360e-7ba7-8a44-8d4d-31bd60e598ef"},
		{"acme-corp", "aa334b61-f242-8c7d-b42c-139fd63366ab"},
		{"3f2504e0-4f89-41d3-9a0c-0305e82c3301", "3f2504e0-4f89-41d3-9a0c-0305e82c3301"},
	} {
		id, err := tenantseal.ParseTenantID(c.key)
		if err != nil {
			t.Fatal(err)
		}
		if got := uuid.Format(id.Handle()); got != c.handle {
			t.Errorf("handle of %q = %s, want %s", c.key, got, c.handle)
		}
		if id.String() != c.key {
			t.Errorf("key of %q = %q", c.key, id.String())
		}
	}
}

func TestParseTenantID(t *testing.T) {
	upper, err := tenantseal.ParseTenantID("3F2504E0-4F89-41D3-9A0C-0305E82C3301")
	if err != nil || upper.String() != "3f2504e0-4f89-41d3-9a0c-0305e82c3301" {
		t.Errorf("upper-case uuid = %q, %v; want it in lower case", upper.String(), err)
	}
	for _, bad := range []string{"", strings.Repeat("x", tenantseal.MaxTenantKeyLen+1), "a\x00b", "tab\there", "\xff"} {
		if _, err := tenantseal.ParseTenantID(bad); err == nil {
			t.Errorf("ParseTenantID(%q) accepted", bad)
		}
	}
	n := tenantseal.TenantIDFromInt(-7)
	if v, ok := n.Int64(); !ok || v != -7 || n.String() != "-7" {
		t.Errorf("TenantIDFromInt(-7) = %q %d %v", n.String(), v, ok)
	}
	for _, s := range []string{"007", "acme", "1e3", "+5"} {
		id, _ := tenantseal.ParseTenantID(s)
		if _, ok := id.Int64(); ok {
			t.Errorf("%q read as an integer: its canonical form is not %q", s, s)
		}
		if _, err := id.Int64Value(); err == nil {
			t.Errorf("%q encodes as a bigint", s)
		}
	}
	a, _ := tenantseal.ParseTenantID("42")
	if a != tenantseal.TenantIDFromInt(42) {
		t.Error("ParseTenantID(\"42\") != TenantIDFromInt(42)")
	}
	if (tenantseal.TenantID{}).IsZero() != true || a.IsZero() {
		t.Error("IsZero")
	}
}

func TestTenantIDJSON(t *testing.T) {
	in := map[string]tenantseal.TenantID{"a": tenantseal.TenantIDFromInt(9), "b": tenantseal.TenantIDFromUUID([16]byte{1})}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]tenantseal.TenantID
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out["a"] != in["a"] || out["b"] != in["b"] {
		t.Errorf("round trip %s: %v", b, out)
	}
	if err := json.Unmarshal([]byte(`{"a":""}`), &out); err == nil {
		t.Error("an empty tenant id unmarshalled")
	}
}

// A handle of a key that is not a uuid does not scan as a TenantID: it would name another tenant.
func TestScanHandleRefused(t *testing.T) {
	var id tenantseal.TenantID
	h := tenantseal.TenantIDFromInt(42).Handle()
	if err := id.ScanUUID(pgUUID(h)); err == nil {
		t.Errorf("the handle of 42 scanned as %q", id.String())
	}
	u := [16]byte{0x3f, 0x25, 0x04, 0xe0, 0x4f, 0x89, 0x41, 0xd3, 0x9a}
	if err := id.ScanUUID(pgUUID(u)); err != nil || id != tenantseal.TenantIDFromUUID(u) {
		t.Errorf("a v4 uuid: %v", err)
	}
}

func pgUUID(u [16]byte) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }
