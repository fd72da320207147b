package authn_test

import (
	"testing"
	"time"
)

// BenchmarkAuthenticate measures one token's verification: parse, issuer routing, go-oidc's checks,
// the RS256 signature with the cached key, claims, registry. The part of a request's cost that is
// authentication's; examples/invoicing's BenchmarkRequest has the whole stack.
func BenchmarkAuthenticate(b *testing.B) {
	w := newWorld(b)
	ctx := testContext(b)
	for _, bc := range []struct{ name, token string }{
		{"tenant user", w.userToken(map[string]any{"exp": w.clock.Now().Add(50 * time.Minute).Unix()})},
		{"staff", w.staffToken(nil)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.auth.Authenticate(ctx, bc.token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
