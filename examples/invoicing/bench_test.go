package invoicing_test

import (
	"testing"
	"time"
)

// BenchmarkRequest measures requests through the whole stack over loopback HTTP: the bearer token
// verified (RS256, cached key), the Principal mapped through the registry, the tenant context signed
// and sent with the statement, PostgreSQL's row-level security, the fields decrypted with the
// tenant's keys, JSON out. ns/op is the latency of one request at a time; 1e9 / ns/op the requests per
// second one client holds.
func BenchmarkRequest(b *testing.B) {
	e := newEnv(b)
	alice := e.userToken("alice", "org_acme", map[string]any{"exp": e.clock.Now().Add(55 * time.Minute).Unix()})
	cust, inv := e.seed(b, alice, "ada")
	for _, bc := range []struct{ name, path string }{
		{"get customer", "/v1/customers/" + cust},
		{"get invoice with customer", "/v1/invoices/" + inv},
		{"list invoices", "/v1/invoices"},
		{"find customer by email", "/v1/customers/search?email=ADA@example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := e.do(b, "GET", bc.path, alice, nil); r.status != 200 {
					b.Fatalf("got %d %s", r.status, r.body)
				}
			}
		})
	}
	b.Run("refused token", func(b *testing.B) {
		forged := alice[:len(alice)-4] + "AAAA"
		b.ReportAllocs()
		for b.Loop() {
			if r := e.do(b, "GET", "/v1/invoices", forged, nil); r.status != 401 {
				b.Fatalf("got %d, want 401", r.status)
			}
		}
	})
}
