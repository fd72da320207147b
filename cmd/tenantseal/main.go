// Command tenantseal bootstraps, migrates and administers a tenantseal database. Run `tenantseal help`.
package main

import (
	"os"

	"github.com/tenantseal/tenantseal/internal/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
