// Command tenantseal bootstraps, migrates and administers a tenantseal database. Run `tenantseal help`.
// KEKs may live in AWS KMS, Google Cloud KMS or HashiCorp Vault: it links Tink's KMS extensions
// (package keys/kms).
package main

import (
	"os"

	"github.com/tenantseal/tenantseal/internal/cli"
	"github.com/tenantseal/tenantseal/keys/kms"
)

func main() {
	os.Exit(cli.RunWith(cli.Options{KMS: kms.Clients}, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
