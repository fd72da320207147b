// Command tenantseal-dev is tenantseal for development: demo and bench start a throwaway PostgreSQL in a
// container when they get no --dsn. `make demo` and `make bench` run it; it is never shipped, since it
// links the test harness (internal/pgtest, testcontainers-go).
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
