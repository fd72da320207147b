package rekey

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/tenantseal/tenantseal"
)

func TestWrapGivesOnePrefix(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"bare cause", errors.New("ERROR: permission denied for table x (SQLSTATE 42501)"), "rekey: read x: ERROR: permission denied for table x (SQLSTATE 42501)"},
		{"network", io.ErrUnexpectedEOF, "rekey: read x: unexpected EOF"},
		{"a package's error", fmt.Errorf("db: commit: %w", io.EOF), "db: commit: EOF (rekey: read x)"},
		{"a sentinel", tenantseal.ErrNoTenant, "tenantseal: no tenant in context (rekey: read x)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := wrap("read x", tc.err)
			if got.Error() != tc.want || !errors.Is(got, tc.err) {
				t.Errorf("got %q, want %q wrapping the cause", got, tc.want)
			}
		})
	}
}
