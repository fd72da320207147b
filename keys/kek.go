package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
	"google.golang.org/protobuf/proto"
)

// LocalKEKScheme prefixes the URI of a development KEK kept in a local keyset file.
const LocalKEKScheme = "local-keyset://"

// KEK is the key-encryption key that wraps every tenant keyset. It never lives in the database: it is a
// local keyset file (development) or a key in a KMS reached through Tink's KMS client registry. String
// prints only its fingerprint.
type KEK struct {
	// ID fingerprints the key, not the spelling of its URI: for a local keyset file, a hash of the key
	// material (so a file reached by a relative, an absolute or a linked path has one id); for a KMS key,
	// a hash of its URI in canonical form (scheme in lower case, no surrounding space).
	// Stored beside each wrapped keyset to name the KEK in messages and in `keys status`. Not secret, and
	// not what decides: a keyset opens with the right key whatever its id.
	ID   string
	aead tink.AEAD
}

func (k *KEK) String() string { return "KEK(" + k.ID + ")" }

// KMSClient reaches keys held in a KMS: Tink's registry.KMSClient, so that every Tink KMS extension
// (tink-go-awskms, tink-go-gcpkms, tink-go-hcvault) and any client of the caller's own fits.
// Package keys/kms provides the extensions' clients, connecting on first use.
type KMSClient = registry.KMSClient

// RegisterKMSClient adds c to Tink's process-wide KMS client registry, which [OpenKEK] consults for
// every URI that is not a local keyset: a binary that registers its KMS client at startup can then open
// KEKs by URI anywhere. The first registered client that supports a URI serves it.
func RegisterKMSClient(c KMSClient) { registry.RegisterKMSClient(c) }

// OpenKEK opens the KEK named by uri: "local-keyset://<path>" for a keyset file written by
// [InitLocalKEK], or any URI a registered Tink KMS client supports (gcp-kms://, aws-kms://, hcvault://,
// fake-kms:// in tests; see [RegisterKMSClient]). It does not contact the database: pgstore.CheckKEK
// compares it with the database's canary.
func OpenKEK(ctx context.Context, uri string) (*KEK, error) { return OpenKEKWith(ctx, uri) }

// OpenKEKWith is [OpenKEK] that asks clients first, in order, and the registry after them: a caller
// that holds its own KMS clients (a test's, one per tenant's account) needs no process-wide state.
func OpenKEKWith(ctx context.Context, uri string, clients ...KMSClient) (*KEK, error) {
	uri = strings.TrimSpace(uri)
	if uri == "" {
		return nil, fmt.Errorf("%w: no KEK URI configured (set --kek or TENANTSEAL_KEK_URI)", ErrKEK)
	}
	if path, ok := strings.CutPrefix(uri, LocalKEKScheme); ok {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: read local KEK: %w", ErrKEK, err)
		}
		h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(raw)))
		if err != nil {
			return nil, fmt.Errorf("%w: local KEK file %s is not a Tink keyset", ErrKEK, path)
		}
		a, err := aead.New(h)
		if err != nil {
			return nil, fmt.Errorf("%w: local KEK file %s is not an AEAD keyset", ErrKEK, path)
		}
		id, err := materialID(h)
		if err != nil {
			return nil, err
		}
		return &KEK{ID: id, aead: a}, nil
	}
	client, err := kmsClient(uri, clients)
	if err != nil {
		return nil, err
	}
	a, err := client.GetAEAD(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: KMS %s: %s", ErrKEK, redactURI(uri), redactAll(err.Error(), uri))
	}
	return &KEK{ID: kekID(canonicalURI(uri)), aead: a}, nil
}

// kmsClient returns the first of clients, else of the registry, that supports uri.
func kmsClient(uri string, clients []KMSClient) (KMSClient, error) {
	for _, c := range clients {
		if c.Supported(uri) {
			return c, nil
		}
	}
	c, err := registry.GetKMSClient(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: no KMS client registered for %s", ErrKEK, redactURI(uri))
	}
	return c, nil
}

// materialID fingerprints a local keyset by its key material, domain-separated: the same key under any
// path has the same id, and the hash reveals nothing of the key.
func materialID(h *keyset.Handle) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(insecurecleartextkeyset.KeysetMaterial(h))
	if err != nil {
		return "", fmt.Errorf("%w: fingerprint local KEK: %w", ErrKEK, err)
	}
	return kekID("tenantseal/kek-material/v1\x00" + string(b)), nil
}

// canonicalURI is a KMS key URI in one spelling: no surrounding space, the scheme in lower case. The
// rest is the KMS's name of the key, kept as it is (a fake-kms URI is base64, where case and slashes
// count).
func canonicalURI(uri string) string {
	uri = strings.TrimSpace(uri)
	if scheme, rest, ok := strings.Cut(uri, "://"); ok {
		return strings.ToLower(scheme) + "://" + rest
	}
	return uri
}

// redactAll removes the parts of uri (which name accounts and key paths) from a KMS client's message.
func redactAll(msg, uri string) string {
	if _, rest, ok := strings.Cut(uri, "://"); ok && rest != "" {
		msg = strings.ReplaceAll(msg, rest, "…")
	}
	return msg
}

// NewKEK wraps an AEAD the caller already holds (a KMS AEAD built elsewhere, a test key) as a KEK named
// by id.
func NewKEK(id string, a tink.AEAD) *KEK { return &KEK{ID: id, aead: a} }

// InitLocalKEK writes a new AES-256-GCM keyset to path with mode 0600 and returns its URI. It refuses to
// overwrite an existing file. For development only: the key sits in clear on disk.
func InitLocalKEK(path string) (string, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return "", fmt.Errorf("keys: new KEK: %w", err)
	}
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return "", fmt.Errorf("keys: encode KEK: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("keys: %s exists: refusing to overwrite a KEK (every keyset it wraps would be lost)", path)
	}
	if err != nil {
		return "", fmt.Errorf("keys: write KEK: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return "", fmt.Errorf("keys: write KEK: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("keys: write KEK: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return LocalKEKScheme + abs, nil
}

func kekID(uri string) string {
	sum := sha256.Sum256([]byte(uri))
	return "kek-" + hex.EncodeToString(sum[:8])
}

// redactURI keeps the scheme and drops the rest: KMS URIs name accounts and key paths.
func redactURI(uri string) string {
	if scheme, _, ok := strings.Cut(uri, "://"); ok {
		return scheme + "://…"
	}
	return "(not a URI)"
}

var canaryAD = []byte("tenantseal/kek-canary/v1")

const canaryPlain = "tenantseal kek canary"

// NewCanary encrypts a fixed value under the KEK. Stored beside the wrapped keysets, it lets a process
// tell a wrong KEK ([ErrKEK]) from a tampered keyset ([ErrKeysetTampered]) before it decrypts anything:
// see [KEK.OpensCanary] and [Wrapped.Canary]. It reveals nothing of the KEK.
func (k *KEK) NewCanary() ([]byte, error) {
	ct, err := k.aead.Encrypt([]byte(canaryPlain), canaryAD)
	if err != nil {
		return nil, fmt.Errorf("%w: encrypt canary: %w", ErrKEK, err)
	}
	return ct, nil
}

// OpensCanary reports whether ct is a canary made by this KEK with [KEK.NewCanary].
func (k *KEK) OpensCanary(ct []byte) bool {
	pt, err := k.aead.Decrypt(ct, canaryAD)
	return err == nil && string(pt) == canaryPlain
}
