// Command invoicing-dev runs the invoicing example with one command: on a throwaway PostgreSQL in a
// container (or the server of TENANTSEAL_TEST_DSN), with a loopback test identity provider that mints
// tokens for curl, and prints the curl calls to paste. Ctrl-C removes everything it made. It links the
// test harness (internal/pgtest) and the test issuer (authn/authntest): it is for development only.
//
//	go run ./examples/invoicing/cmd/invoicing-dev [-addr 127.0.0.1:8080] [-idp-addr 127.0.0.1:8081]
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
