package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the audit log's state: its first Size entries have the RFC 6962
// Merkle tree root Root, the tree whose leaves are the entries' canonical encodings (the bytes
// tenantseal.audit_canonical returns), in sequence order. Origin names the log; it is the name of the
// key that signs it.
//
// Its signed form is a note (golang.org/x/mod/sumdb/note) in the transparency-log checkpoint
// convention: the origin line, the size in decimal, the root in standard base64, each ending in a
// newline, then a blank line and the Ed25519 signature line.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// body is the checkpoint's text, the part the signature covers.
func (c Checkpoint) body() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// parseCheckpoint reads a checkpoint's text: origin, size and root lines; extension lines after them
// are allowed by the convention and ignored.
func parseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 || !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, errors.New("not a checkpoint: want an origin, a size and a root line")
	}
	var c Checkpoint
	c.Origin = strings.TrimSuffix(lines[0], "\n")
	sz := strings.TrimSuffix(lines[1], "\n")
	n, err := strconv.ParseInt(sz, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != sz {
		return Checkpoint{}, fmt.Errorf("not a checkpoint: size line %q is not a decimal count", truncateForMessage(sz))
	}
	c.Size = n
	root, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, errors.New("not a checkpoint: root line is not a base64 SHA-256 hash")
	}
	copy(c.Root[:], root)
	return c, nil
}

func truncateForMessage(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// CheckpointError is a checkpoint that does not verify: signed by another key, a bad signature, another
// log's origin, malformed, or contradicting another checkpoint of the same size. Name is where it was
// read from (a file name).
type CheckpointError struct {
	Name   string
	Reason string
}

func (e *CheckpointError) Error() string {
	return fmt.Sprintf("audit: checkpoint %s: %s", e.Name, e.Reason)
}

// OpenCheckpoint checks the signature on a signed checkpoint with v, and that it is of v's log (its
// origin line is v's name), and returns it. Every failure is a [*CheckpointError] naming name.
func OpenCheckpoint(name string, signed []byte, v note.Verifier) (Checkpoint, error) {
	bad := func(format string, a ...any) (Checkpoint, error) {
		return Checkpoint{}, &CheckpointError{Name: name, Reason: fmt.Sprintf(format, a...)}
	}
	n, err := note.Open(signed, note.VerifierList(v))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		var by []string
		for _, s := range unverified.Note.UnverifiedSigs {
			by = append(by, s.Name)
		}
		return bad("not signed by the verifier key %s (signed by %s): a checkpoint of another log, or forged", v.Name(), strings.Join(by, ", "))
	case errors.As(err, &invalid):
		return bad("its signature by %s does not verify: altered or forged", v.Name())
	case err != nil:
		return bad("malformed: not a signed note")
	}
	c, err := parseCheckpoint(n.Text)
	if err != nil {
		return bad("%v", err)
	}
	if c.Origin != v.Name() {
		return bad("of log %q, not %q", truncateForMessage(c.Origin), v.Name())
	}
	return c, nil
}

// Signer signs checkpoints with an Ed25519 key held outside the database: a key file of the note
// format for development ([OpenKeyFile]), or a Tink keyset wrapped by the KEK (keys.OpenSigningKeyFile),
// whose Sign method it takes. It implements note.Signer. String prints no key material.
type Signer struct {
	name string
	hash uint32
	vkey string
	sign func([]byte) ([]byte, error)
}

// NewSigner returns a Signer for the log named name (the checkpoints' origin line) that signs with
// sign, an Ed25519 signature (64 bytes, no prefix) by the private key of pub. It signs and verifies a
// probe message, so that a sign function that does not match pub is refused here, not by a verifier later.
func NewSigner(name string, pub ed25519.PublicKey, sign func(msg []byte) ([]byte, error)) (*Signer, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit: signer: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if err := checkLogName(name); err != nil {
		return nil, err
	}
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, fmt.Errorf("audit: signer: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("audit: signer: %w", err)
	}
	probe := []byte("tenantseal/audit-signer-probe/v1\n")
	sig, err := sign(probe)
	if err != nil {
		return nil, fmt.Errorf("audit: signer: sign: %w", err)
	}
	if !v.Verify(probe, sig) {
		return nil, errors.New("audit: signer: its signatures do not verify with its public key (want raw Ed25519, no output prefix)")
	}
	return &Signer{name: name, hash: v.KeyHash(), vkey: vkey, sign: sign}, nil
}

// Name is the log's name: the checkpoints' origin line and the signature line's key name.
func (s *Signer) Name() string { return s.name }

// KeyHash is the note key hash of the signer's public key.
func (s *Signer) KeyHash() uint32 { return s.hash }

// Sign signs msg.
func (s *Signer) Sign(msg []byte) ([]byte, error) { return s.sign(msg) }

// VerifierKey is the public key that verifies the signer's checkpoints, in the note verifier key format
// (<name>+<hash>+<base64 key>): what `tenantseal audit verify --verifier-key` reads.
func (s *Signer) VerifierKey() string { return s.vkey }

// Verifier returns the note.Verifier of the signer's public key.
func (s *Signer) Verifier() note.Verifier {
	v, err := note.NewVerifier(s.vkey)
	if err != nil {
		panic(err) // NewSigner built the key from a valid one
	}
	return v
}

func (s *Signer) String() string { return "audit.Signer(" + s.vkey + ")" }

// signCheckpoint returns the signed note of c.
func (s *Signer) signCheckpoint(c Checkpoint) ([]byte, error) {
	b, err := note.Sign(&note.Note{Text: c.body()}, s)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return b, nil
}

// ParseVerifierKey reads a verifier key (<name>+<hash>+<base64 key>, surrounding space ignored), the
// form [Signer.VerifierKey] and [CreateKeyFile] write.
func ParseVerifierKey(text []byte) (note.Verifier, error) {
	v, err := note.NewVerifier(string(bytes.TrimSpace(text)))
	if err != nil {
		return nil, errors.New("audit: not a verifier key: want <name>+<hash>+<base64 Ed25519 key>, as 'tenantseal audit keygen' writes")
	}
	return v, nil
}

// localKeyPrefix starts a note private key, the form of a development key file.
const localKeyPrefix = "PRIVATE+KEY+"

// IsLocalKeyFile reports whether data is a development signing key ([CreateKeyFile]) rather than a key
// wrapped by the KEK.
func IsLocalKeyFile(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte(localKeyPrefix))
}

// CreateKeyFile writes a new Ed25519 signing key for the log named name to path, mode 0600, in the note
// private key format, and returns its verifier key. It refuses to overwrite a file. For development: the
// key sits in clear on disk; in production keep it wrapped by the KEK (keys.CreateSigningKeyFile).
func CreateKeyFile(path, name string) (string, error) {
	if err := checkLogName(name); err != nil {
		return "", err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("audit: new signing key: %w", err)
	}
	if err := writeNew(path, []byte(skey+"\n"), 0o600); err != nil {
		return "", err
	}
	return vkey, nil
}

// checkLogName refuses a log name that cannot be a checkpoint's origin line and a note key name: empty,
// longer than 256 bytes, or holding space, '+' or anything unprintable.
func checkLogName(name string) error {
	if name == "" || len(name) > 256 || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool {
		return r == '+' || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) {
		return fmt.Errorf("audit: log name %q: want 1 to 256 printable characters, no space or '+' (such as example.com/audit)", truncateForMessage(name))
	}
	return nil
}

// writeNew writes data to a new file at path with mode perm; it never replaces a file.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("audit: %s exists: refusing to overwrite it", path)
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("audit: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("audit: write %s: %w", path, err)
	}
	return nil
}

// OpenKeyFile reads a development signing key written by [CreateKeyFile]. It refuses a file that
// others than its owner may read or write. No message contains the key.
func OpenKeyFile(path string) (*Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit: signing key %s has mode %04o: want 0600 (no access for group or others)", path, st.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key: %w", err)
	}
	return parseKey(path, string(bytes.TrimSpace(raw)))
}

// parseKey reads a note private key: PRIVATE+KEY+<name>+<hash>+<base64 of 0x01 and the 32-byte seed>.
func parseKey(path, skey string) (*Signer, error) {
	bad := fmt.Errorf("audit: signing key %s is not an Ed25519 note private key (as 'tenantseal audit keygen' writes)", path)
	if _, err := note.NewSigner(skey); err != nil {
		return nil, bad
	}
	rest := strings.TrimPrefix(skey, localKeyPrefix)
	name, rest, _ := strings.Cut(rest, "+")
	_, b64, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return nil, bad
	}
	priv := ed25519.NewKeyFromSeed(key[1:])
	return NewSigner(name, priv.Public().(ed25519.PublicKey), func(msg []byte) ([]byte, error) {
		return ed25519.Sign(priv, msg), nil
	})
}
