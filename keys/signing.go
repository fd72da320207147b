package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/signature"
	tinked25519 "github.com/tink-crypto/tink-go/v2/signature/ed25519"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// SigningKey is an Ed25519 key that signs the audit log's checkpoints: a Tink keyset kept in a file,
// wrapped by the KEK, so that the key is usable only where the KEK (a KMS key in production) is, and
// never lives in the database. Build an audit.Signer from it with audit.NewSigner(k.Name(),
// k.PublicKey(), k.Sign). String prints no key material.
type SigningKey struct {
	name   string
	pub    ed25519.PublicKey
	signer tink.Signer
}

// signingKeyFormat names the file format of [CreateSigningKeyFile].
const signingKeyFormat = "tenantseal/audit-signing-key/v1"

// signingKeyFile is a signing key file: JSON, the keyset wrapped by the KEK with the format and the
// log's name as associated data, so that a keyset moved into another log's file does not open.
type signingKeyFile struct {
	Format string `json:"format"`
	Name   string `json:"name"`
	KEKID  string `json:"kek_id"`
	Keyset []byte `json:"keyset"`
}

func signingKeyAD(name string) []byte { return []byte(signingKeyFormat + "\x00" + name) }

// CreateSigningKeyFile creates an Ed25519 signing key for the log named name, wraps it with kek and
// writes it to path (mode 0600; it refuses to overwrite a file). It returns the key.
func CreateSigningKeyFile(kek *KEK, path, name string) (*SigningKey, error) {
	h, err := keyset.NewHandle(signature.ED25519KeyWithoutPrefixTemplate())
	if err != nil {
		return nil, fmt.Errorf("keys: new signing key: %w", err)
	}
	k, err := newSigningKey(name, h)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(describedWriter{&buf}, kek.aead, signingKeyAD(name)); err != nil {
		return nil, fmt.Errorf("keys: wrap signing key: %w", err)
	}
	b, err := json.MarshalIndent(signingKeyFile{Format: signingKeyFormat, Name: name, KEKID: kek.ID, Keyset: buf.Bytes()}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("keys: encode signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("keys: %s exists: refusing to overwrite a signing key", path)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: write signing key: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("keys: write signing key: %w", err)
	}
	return k, nil
}

// OpenSigningKeyFile reads a signing key file written by [CreateSigningKeyFile] and opens it with kek.
// A wrong KEK, a file of another log or an altered one fails with [ErrKeysetTampered].
func OpenSigningKeyFile(kek *KEK, path string) (*SigningKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: read signing key: %w", err)
	}
	var f signingKeyFile
	if err := json.Unmarshal(raw, &f); err != nil || f.Format != signingKeyFormat {
		return nil, fmt.Errorf("keys: %s is not a signing key file (format %s)", path, signingKeyFormat)
	}
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(f.Keyset)), kek.aead, signingKeyAD(f.Name))
	if err != nil {
		return nil, fmt.Errorf("%w: signing key %s does not open with %s (wrapped by %s)", ErrKeysetTampered, path, kek, f.KEKID)
	}
	return newSigningKey(f.Name, h)
}

func newSigningKey(name string, h *keyset.Handle) (*SigningKey, error) {
	e, err := h.Primary()
	if err != nil {
		return nil, fmt.Errorf("keys: signing key: %w", err)
	}
	priv, ok := e.Key().(*tinked25519.PrivateKey)
	if !ok || len(priv.OutputPrefix()) != 0 {
		return nil, errors.New("keys: signing key: not a raw Ed25519 key")
	}
	k, err := priv.PublicKey()
	pk, ok := k.(*tinked25519.PublicKey)
	if err != nil || !ok {
		return nil, errors.New("keys: signing key: no Ed25519 public key")
	}
	s, err := signature.NewSigner(h)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key: %w", err)
	}
	return &SigningKey{name: name, pub: ed25519.PublicKey(pk.KeyBytes()), signer: s}, nil
}

// Name is the name of the log the key signs for.
func (k *SigningKey) Name() string { return k.name }

// PublicKey is the key's Ed25519 public key.
func (k *SigningKey) PublicKey() ed25519.PublicKey { return k.pub }

// Sign returns the raw Ed25519 signature of msg.
func (k *SigningKey) Sign(msg []byte) ([]byte, error) { return k.signer.Sign(msg) }

func (k *SigningKey) String() string { return "SigningKey(" + k.name + ")" }
