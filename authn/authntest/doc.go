// Package authntest is an OpenID provider for tests and development: issuers that sign access tokens
// with keys they rotate on demand and serve their discovery document and JWKS on loopback, counting
// the key fetches. It is a test kit: the product never imports it, and it signs whatever it is asked
// to, so it must never run where anything real is.
//
//	srv, err := authntest.NewServer("127.0.0.1:0", authntest.Options{Issuers: []string{"customers", "staff"}})
//	defer srv.Close()
//	iss := srv.Issuer("customers") // iss.URL() is http://127.0.0.1:<port>/customers
//	tok := iss.Token("alice", "invoicing", map[string]any{"org_id": "org_acme"})
package authntest
