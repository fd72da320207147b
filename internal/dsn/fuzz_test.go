package dsn_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/internal/dsn"
)

// FuzzParse: what Parse accepts renders to keyword/value and to a URL that parse back to the same
// settings and that pgconn reads as it reads the input; what pgconn accepts, Parse accepts; no password
// survives redaction; errors never quote the input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"postgres://u:pw@h:5433/db?sslmode=disable&connect_timeout=7",
		"postgresql://u:p%40ss%2Fw@h1:5432,h2:5433/db?target_session_attrs=read-write",
		"pgx5://u:pw@h/db?x-migrations-table=m&sslmode=disable",
		"postgres://[::1]:5432/db",
		"postgres://u@/db?host=/var/run/postgresql&password=a%26b",
		"postgres://h?ssl=true&sslmode=disable&ssl=x",
		`host=h port=5432 user=u password='a b\'c\\d' dbname='my db'`,
		`host=a\ b user= sslpassword=x\`,
		"mysql://u:pw@h/db",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := dsn.Parse(in)
		if err != nil {
			// The messages are fixed texts ('@' in none of them) and a scheme.
			if strings.Contains(in, "@") && strings.Contains(err.Error(), in) {
				t.Errorf("Parse(%q): the error %q quotes the input", in, err)
			}
			// pgx accepts no more than Parse does, but for what keyword/value cannot hold.
			if _, perr := pgconn.ParseConfig(pgxForm(in)); perr == nil && !strings.Contains(err.Error(), "cannot be written") &&
				!strings.Contains(err.Error(), "unsupported scheme") {
				t.Errorf("Parse(%q): %v, but pgconn accepts it", in, err)
			}
			return
		}
		first := maps.Collect(s.All())
		outs := []string{s.ConnString()}
		if s.Get("ssl") != "true" { // the one setting a URL cannot carry: libpq reads it as sslmode=require
			outs = append(outs, s.URL())
		}
		want, wantErr := pgconn.ParseConfig(pgxForm(in))
		for _, out := range outs {
			again, err := dsn.Parse(out)
			if err != nil {
				t.Fatalf("Parse(%q) renders %q, which does not parse: %v", in, out, err)
			}
			if diff := cmp.Diff(first, maps.Collect(again.All())); diff != "" {
				t.Fatalf("round trip of %q through %q (-first +second):\n%s", in, out, diff)
			}
			if wantErr != nil || strings.Contains(in, "x-") {
				continue
			}
			got, err := pgconn.ParseConfig(out)
			if err != nil {
				t.Fatalf("pgconn reads %q but not its rendering %q: %v", in, out, err)
			}
			w := view(want)
			if w.User == "" { // a URL's user name that decodes to "": Parse leaves the default
				w.User = got.User
			}
			if diff := cmp.Diff(w, view(got)); diff != "" {
				t.Fatalf("pgconn reads %q and %q differently (-first +second):\n%s", in, out, diff)
			}
		}
		for _, sec := range s.Secrets() {
			if len(sec) < dsn.MinSecretLen || strings.Contains("xxxxx", sec) { // the mask itself
				continue
			}
			for _, out := range append(outs, in) {
				if got := dsn.Redact("connect "+out+" failed", in); strings.Contains(got, sec) {
					t.Fatalf("Redact of %q keeps the password %q: %q", out, sec, got)
				}
			}
		}
	})
}
