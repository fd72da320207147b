package keys_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/tenantseal/tenantseal/keys"
)

func benchKeyring(b *testing.B, n int) (*keys.Keyring, []tenantseal.TenantID) {
	fx := newFixture(b, n, func(c *keys.Config) { c.MaxFieldSize, c.Recorder = 1<<17, nil })
	return fx.kr, fx.ids
}

var sizes = []int{64, 1024, 64 * 1024}

// BenchmarkBareAESGCM is the floor that field encryption is measured against: a bare Tink AES-256-GCM
// call with associated data of the same length.
func BenchmarkBareAESGCM(b *testing.B) {
	h, _ := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	a, _ := aead.New(h)
	ad := make([]byte, 70)
	for _, n := range sizes {
		pt := make([]byte, n)
		ct, _ := a.Encrypt(pt, ad)
		b.Run(fmt.Sprintf("encrypt/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				a.Encrypt(pt, ad)
			}
		})
		b.Run(fmt.Sprintf("decrypt/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				a.Decrypt(ct, ad)
			}
		})
	}
}

func BenchmarkField(b *testing.B) {
	kr, ids := benchKeyring(b, 1)
	ctx := as(b, ids[0])
	f := keys.Field{Table: "customers", Column: "notes", Row: "7d0c5a8e-0000-4000-8000-000000000001"}
	for _, n := range sizes {
		pt := make([]byte, n)
		ct, err := kr.Encrypt(ctx, f, pt)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("encrypt/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				kr.Encrypt(ctx, f, pt)
			}
		})
		b.Run(fmt.Sprintf("decrypt/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				kr.Decrypt(ctx, f, ct)
			}
		})
	}
	b.Run("blind-index", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			kr.BlindIndex(ctx, f, "Ada@Example.com", keys.NormalizeEmail)
		}
	})
}

// BenchmarkCache measures a cache hit alone (PrimaryKeyIDs does nothing but look the tenant up) and a
// miss (unwrap both keysets and build the primitives), and reports the heap held per cached tenant.
func BenchmarkCache(b *testing.B) {
	b.Run("hit", func(b *testing.B) {
		kr, ids := benchKeyring(b, 1)
		ctx := as(b, ids[0])
		kr.PrimaryKeyIDs(ctx)
		b.ReportAllocs()
		for b.Loop() {
			kr.PrimaryKeyIDs(ctx)
		}
	})
	b.Run("miss", func(b *testing.B) {
		kr, ids := benchKeyring(b, 1)
		ctx := as(b, ids[0])
		b.ReportAllocs()
		for b.Loop() {
			kr.Invalidate(ids[0])
			kr.PrimaryKeyIDs(ctx)
		}
	})
	b.Run("bytes-per-tenant", func(b *testing.B) {
		const n = 500
		for b.Loop() {
			kr, ids := benchKeyring(b, n)
			ctxs := make([]context.Context, n)
			for i, id := range ids {
				ctxs[i] = as(b, id)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for _, ctx := range ctxs {
				kr.PrimaryKeyIDs(ctx)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/tenant")
			runtime.KeepAlive(kr)
		}
	})
}
