package adopt_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tenantseal/tenantseal/adopt"
)

// FuzzParseDeclaration: every input is a declaration or an ErrDeclaration, and a declaration survives
// being written back and read again.
func FuzzParseDeclaration(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"schemas": ["shop"], "tenant_column": "company_id", "tenant_columns": {"billing": "account_id"},
		  "registry": {"table": "shop.companies", "key": "id", "name": "name"}, "global": ["plans"], "exclude": ["x.y"]}`,
		`{"global": ["a"], "exclude": ["a"]}`,
		`{"registry": {"table": "a.b.c"}}`,
		`{"schemas": ["tenantseal"]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, err := adopt.ParseDeclaration(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, adopt.ErrDeclaration) {
				t.Fatalf("got %v, want ErrDeclaration", err)
			}
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		again, err := adopt.ParseDeclaration(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("%s: written back, does not parse: %v", b, err)
		}
		if diff := cmp.Diff(d, again, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	})
}

// FuzzParseRegistry: a registry parsed from text names a table and no parentheses.
func FuzzParseRegistry(f *testing.F) {
	for _, s := range []string{"public.companies(id)", "accounts", "a(b", "(x)", " t ( k ) "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := adopt.ParseRegistry(in)
		if err != nil {
			if !errors.Is(err, adopt.ErrDeclaration) {
				t.Fatalf("got %v, want ErrDeclaration", err)
			}
			return
		}
		if r.Table == "" || strings.ContainsAny(r.Table+r.Key, "()") {
			t.Errorf("ParseRegistry(%q) = %+v", in, r)
		}
	})
}
