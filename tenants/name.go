package tenants

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// MaxNameLen is the longest tenant name, in bytes.
const MaxNameLen = 200

// ValidateName fails with [ErrInvalidName] unless name is 1 to MaxNameLen bytes of valid UTF-8 without
// control characters (which would break a listing or drive a terminal). The message names the limits,
// never the name.
func ValidateName(name string) error {
	want := fmt.Sprintf("want 1 to %d bytes of UTF-8 without control characters", MaxNameLen)
	switch {
	case name == "":
		return fmt.Errorf("%w: empty: %s", ErrInvalidName, want)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %d bytes: %s", ErrInvalidName, len(name), want)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not valid UTF-8: %s", ErrInvalidName, want)
	case strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("%w: holds a control character: %s", ErrInvalidName, want)
	case strings.HasPrefix(name, pgstore.IsolationTenantPrefix):
		return fmt.Errorf("%w: names beginning %q are the isolation check's own: %s", ErrInvalidName, pgstore.IsolationTenantPrefix, want)
	}
	return nil
}
