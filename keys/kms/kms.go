// Package kms gives tenantseal's KEKs the key management services that Tink's KMS extensions reach: AWS
// KMS (aws-kms://), Google Cloud KMS (gcp-kms://) and HashiCorp Vault's transit engine (hcvault://).
//
// Each client connects on the first key asked of it, with the service's standard credentials, so that
// registering all three costs nothing until one is used, and a binary can name any of them by URI:
//
//	for _, c := range kms.Clients(ctx) {
//		keys.RegisterKMSClient(c)
//	}
//	kek, err := keys.OpenKEK(ctx, "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/…")
//
// or, without process-wide state, keys.OpenKEKWith(ctx, uri, kms.Clients(ctx)...). A client of the
// caller's own (another account, an endpoint of its own) is any Tink KMS client, passed the same way
// before these.
//
// Credentials:
//
//   - aws-kms://arn:<partition>:kms:<region>:<account>:key/<id>: the AWS SDK's default chain
//     (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared files, an instance or
//     task role); AWS_ENDPOINT_URL_KMS (or AWS_ENDPOINT_URL) points it at a KMS-compatible endpoint.
//   - gcp-kms://projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>: Application Default
//     Credentials (GOOGLE_APPLICATION_CREDENTIALS, the metadata server).
//   - hcvault://<host>[:<port>]/<mount>/keys/<name>: VAULT_TOKEN, over https://<host>:<port>, or over
//     VAULT_ADDR when set (and VAULT_CACERT, VAULT_SKIP_VERIFY as the Vault client reads them). The key
//     must not be derived (derived=false): keysets are wrapped with associated data.
package kms

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"
	"github.com/tink-crypto/tink-go-awskms/v3/integration/awskms"
	"github.com/tink-crypto/tink-go-gcpkms/v2/integration/gcpkms"
	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tenantseal/tenantseal/keys"
)

// Schemes of the key URIs these clients serve.
const (
	AWSScheme   = "aws-kms://"
	GCPScheme   = "gcp-kms://"
	VaultScheme = "hcvault://"
)

// Clients returns a client each for AWS KMS, Google Cloud KMS and Vault, which connect on first use.
// ctx bounds their connecting (loading credentials, dialing); keep it alive as long as the clients are
// used.
func Clients(ctx context.Context) []keys.KMSClient {
	return []keys.KMSClient{AWS(ctx), GCP(ctx), Vault(ctx)}
}

// AWS returns a client for aws-kms:// key URIs, one AWS KMS client per region.
func AWS(ctx context.Context) keys.KMSClient {
	return newLazy(ctx, AWSScheme, func(ctx context.Context, uri string) (string, registry.KMSClient, error) {
		// arn:<partition>:kms:<region>:...: one client per partition and region.
		parts := strings.SplitN(strings.TrimPrefix(uri, AWSScheme), ":", 5)
		if len(parts) < 5 || parts[0] != "arn" || parts[2] != "kms" {
			return "", nil, fmt.Errorf("kms: not an AWS KMS key ARN")
		}
		prefix := AWSScheme + strings.Join(parts[:4], ":") + ":"
		c, err := awskms.NewClientWithOptions(ctx, prefix)
		return prefix, c, err
	})
}

// GCP returns a client for gcp-kms:// key URIs.
func GCP(ctx context.Context) keys.KMSClient {
	return newLazy(ctx, GCPScheme, func(ctx context.Context, _ string) (string, registry.KMSClient, error) {
		c, err := gcpkms.NewClient(ctx, GCPScheme)
		return GCPScheme, c, err
	})
}

// Vault returns a client for hcvault:// key URIs, one Vault client per server.
func Vault(ctx context.Context) keys.KMSClient {
	return newLazy(ctx, VaultScheme, func(_ context.Context, uri string) (string, registry.KMSClient, error) {
		u, err := url.Parse(uri)
		if err != nil || u.Host == "" {
			return "", nil, fmt.Errorf("kms: not a Vault key URI (hcvault://<host>[:<port>]/<mount>/keys/<name>)")
		}
		prefix := VaultScheme + u.Host + "/"
		cfg := api.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY...
		if cfg.Error != nil {
			return "", nil, fmt.Errorf("kms: Vault configuration: %w", cfg.Error)
		}
		if os.Getenv("VAULT_ADDR") == "" {
			cfg.Address = "https://" + u.Host
		}
		client, err := api.NewClient(cfg) // reads VAULT_TOKEN
		if err != nil {
			return "", nil, fmt.Errorf("kms: Vault client: %w", err)
		}
		c, err := hcvaultClient(prefix, client)
		return prefix, c, err
	})
}

// lazy is a KMS client for one scheme that builds the real clients on first use, one per prefix that
// open returns, and keeps them.
type lazy struct {
	ctx    context.Context
	scheme string
	open   func(ctx context.Context, uri string) (prefix string, c registry.KMSClient, err error)

	mu      sync.Mutex
	clients map[string]registry.KMSClient
}

func newLazy(ctx context.Context, scheme string, open func(context.Context, string) (string, registry.KMSClient, error)) *lazy {
	return &lazy{ctx: ctx, scheme: scheme, open: open, clients: map[string]registry.KMSClient{}}
}

// Supported reports whether uri has the client's scheme.
func (l *lazy) Supported(uri string) bool { return strings.HasPrefix(strings.ToLower(uri), l.scheme) }

// GetAEAD returns the AEAD of the key that uri names, connecting to its service on first use.
func (l *lazy) GetAEAD(uri string) (tink.AEAD, error) {
	if !l.Supported(uri) {
		return nil, fmt.Errorf("kms: %s is not a %s URI", strings.SplitN(uri, "://", 2)[0], l.scheme)
	}
	uri = l.scheme + uri[len(l.scheme):] // the scheme as the extensions expect it, in lower case
	l.mu.Lock()
	defer l.mu.Unlock()
	for prefix, c := range l.clients {
		if strings.HasPrefix(uri, prefix) {
			return c.GetAEAD(uri)
		}
	}
	prefix, c, err := l.open(l.ctx, uri)
	if err != nil {
		return nil, err
	}
	l.clients[prefix] = c
	return c.GetAEAD(uri)
}
