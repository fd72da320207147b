// Package token encodes and signs the tenant context tokens that the database's verifier
// (tenantseal.verify_token and tenantseal.current_tenant) checks. The wire format is fixed by that verifier:
//
//	v1.<kid>.<tenant uuid>.<expiry unix seconds>.<flags>.<subject hex>.<hex HMAC-SHA256 of all before>
//
// and, for the explicit unsigned mode, u1.<tenant uuid>.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal/internal/uuid"
)

// MaxSubjectLen is the longest subject, in bytes, that a token carries.
const MaxSubjectLen = 256

var kidPattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// ValidKeyID reports whether id can name a signing key.
func ValidKeyID(id string) bool { return kidPattern.MatchString(id) }

// Claims is what a token asserts.
type Claims struct {
	Tenant   [16]byte
	Subject  string
	Expires  time.Time
	Elevated bool
}

// Sign returns the signed token for c under the key kid/secret.
func Sign(kid string, secret []byte, c Claims) (string, error) {
	if !ValidKeyID(kid) {
		return "", errors.New("token: key id must match [a-z0-9-]{1,32}")
	}
	if len(secret) < 32 {
		return "", errors.New("token: signing secret shorter than 32 bytes")
	}
	if len(c.Subject) > MaxSubjectLen {
		return "", fmt.Errorf("token: subject longer than %d bytes", MaxSubjectLen)
	}
	flags := ""
	if c.Elevated {
		flags = "e"
	}
	var b strings.Builder
	b.Grow(160 + 2*len(c.Subject))
	b.WriteString("v1.")
	b.WriteString(kid)
	b.WriteByte('.')
	b.WriteString(uuid.Format(c.Tenant))
	b.WriteByte('.')
	b.WriteString(strconv.FormatInt(c.Expires.Unix(), 10))
	b.WriteByte('.')
	b.WriteString(flags)
	b.WriteByte('.')
	b.WriteString(hex.EncodeToString([]byte(c.Subject)))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(b.String()))
	b.WriteByte('.')
	b.WriteString(hex.EncodeToString(mac.Sum(nil)))
	return b.String(), nil
}

// Unsigned returns the token of the explicit unsigned mode.
func Unsigned(tenant [16]byte) string { return "u1." + uuid.Format(tenant) }

// Pads returns the inner and outer padded HMAC-SHA256 keys that the database stores instead of the
// secret: sha256(opad || sha256(ipad || m)) is HMAC-SHA256(secret, m).
func Pads(secret []byte) (ipad, opad []byte) {
	key := secret
	if len(key) > sha256.BlockSize {
		h := sha256.Sum256(key)
		key = h[:]
	}
	ipad = make([]byte, sha256.BlockSize)
	opad = make([]byte, sha256.BlockSize)
	copy(ipad, key)
	copy(opad, key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	return ipad, opad
}
