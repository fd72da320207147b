package kms

import (
	"github.com/hashicorp/vault/api"
	"github.com/tink-crypto/tink-go-hcvault/v2/integration/hcvault"
	"github.com/tink-crypto/tink-go/v2/core/registry"
)

// hcvaultClient is Tink's Vault client over client, passing associated data as Vault's
// associated_data (not the legacy context parameter, which derived keys use).
func hcvaultClient(prefix string, client *api.Client) (registry.KMSClient, error) {
	return hcvault.NewClientWithAEADOptions(prefix, client.Logical())
}
