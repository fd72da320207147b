package db_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/db"
)

func FuzzParseContextKey(f *testing.F) {
	f.Add("k1:" + strings.Repeat("ab", 32))
	f.Add("k1:" + strings.Repeat("ab", 31))
	f.Add("K1:" + strings.Repeat("ab", 32))
	f.Add(":")
	f.Add("k1:zz")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := db.ParseContextKey(s)
		if err != nil {
			if strings.Contains(err.Error(), s) && len(s) > 8 {
				t.Errorf("error %q repeats the input, which may hold a secret", err)
			}
			return
		}
		if len(k.Secret) < 32 || k.ID == "" {
			t.Errorf("accepted %q as %v with a %d-byte secret", s, k, len(k.Secret))
		}
		// Neither String nor %v nor %#v shows the secret.
		for _, out := range []string{k.String(), fmt.Sprintf("%v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%+v", k)} {
			if strings.Contains(strings.ToLower(out), fmt.Sprintf("%x", k.Secret[:8])) {
				t.Errorf("formatted key %q shows the secret", out)
			}
		}
	})
}
