package uuid_test

import (
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/internal/uuid"
)

func FuzzParseUUID(f *testing.F) {
	f.Add("0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5b")
	f.Add("0190A5B2-7C3D-4E5F-8A9B-0C1D2E3F4A5B")
	f.Add("0190a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5")
	f.Add("zz90a5b2-7c3d-4e5f-8a9b-0c1d2e3f4a5b")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := uuid.Parse(s)
		if err != nil {
			return
		}
		// Whatever parses formats back to the same value, in lower case.
		if got := uuid.Format(u); got != strings.ToLower(s) {
			t.Errorf("got %q, want %q", got, strings.ToLower(s))
		}
	})
}
