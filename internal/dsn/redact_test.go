package dsn_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/internal/dsn"
)

// TestRedact: over every accepted form, each password is gone from a message, in every spelling the
// message holds it, and the rest of the message is kept.
func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dsn     string
		secrets []string
		msg     string // %s is the connection string
		want    string
	}{
		{"postgres URL", "postgres://alice:Sup3r-secret@db.example:5432/app?sslmode=require", []string{"Sup3r-secret"},
			"connect %s: refused",
			"connect postgres://alice:xxxxx@db.example:5432/app?sslmode=require: refused"},
		{"postgresql URL", "postgresql://alice:Sup3r-secret@db.example/app", []string{"Sup3r-secret"},
			"connect %s: refused", "connect postgresql://alice:xxxxx@db.example/app: refused"},
		{"pgx5 URL", "pgx5://alice:Sup3r-secret@db.example/app?x-migrations-table=m", []string{"Sup3r-secret"},
			"cannot parse `%s`: failed (missing \"=\" after \"pgx5://alice:Sup3r-secret@db.example/app\")",
			"cannot parse `pgx5://alice:xxxxx@db.example/app?x-migrations-table=m`: failed (missing \"=\" after \"pgx5://alice:xxxxx@db.example/app\")"},
		{"pgx URL", "pgx://alice:Sup3r-secret@db.example/app", []string{"Sup3r-secret"},
			"%s", "pgx://alice:xxxxx@db.example/app"},
		{"percent-encoded password", "postgres://alice:p%40ss%2Fw%20rd@h/app", []string{"p@ss/w rd", "p%40ss%2Fw%20rd"},
			"dsn %s, decoded p@ss/w rd, query-escaped " + url.QueryEscape("p@ss/w rd") + ", path-escaped " + url.PathEscape("p@ss/w rd") + ", lower p%40ss%2fw%20rd",
			"dsn postgres://alice:xxxxx@h/app, decoded xxxxx, query-escaped xxxxx, path-escaped xxxxx, lower xxxxx"},
		{"keyword/value", "host=h user=alice password=Sup3r-secret dbname=app", []string{"Sup3r-secret"},
			"connect %s: refused", "connect host=h user=alice password=xxxxx dbname=app: refused"},
		{"keyword/value quoted with spaces and escaped quotes", `host=h password='it\'s a \\secret' dbname=app`, []string{`it's a \secret`, `it\'s a \\secret`},
			"connect %s; Go-quoted " + fmt.Sprintf("%q", `it's a \secret`) + "; raw it's a \\secret",
			`connect host=h password=xxxxx dbname=app; Go-quoted "xxxxx"; raw xxxxx`},
		{"password in the query string", "postgres://alice@h/app?password=Sup3r%26secret&sslmode=disable", []string{"Sup3r&secret", "Sup3r%26secret"},
			"connect %s: refused (password Sup3r&secret)",
			"connect postgres://alice@h/app?password=xxxxx&sslmode=disable: refused (password xxxxx)"},
		{"sslpassword", "host=h sslpassword=key-passphrase sslkey=/k.pem", []string{"key-passphrase"},
			"%s", "host=h sslpassword=xxxxx sslkey=/k.pem"},
		{"multi-host URL", "postgres://alice:Sup3r-secret@h1:5432,h2:5433/app?target_session_attrs=read-write", []string{"Sup3r-secret"},
			"connect %s: all hosts failed",
			"connect postgres://alice:xxxxx@h1:5432,h2:5433/app?target_session_attrs=read-write: all hosts failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := strings.ReplaceAll(tc.msg, "%s", tc.dsn)
			got := dsn.Redact(msg, tc.dsn)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			for _, sec := range tc.secrets {
				if strings.Contains(got, sec) {
					t.Errorf("got %q, want it without %q", got, sec)
				}
			}
			// What the program passes on, rendered either way, is redacted as well.
			s, err := dsn.Parse(tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			for _, out := range []string{s.ConnString(), s.URL()} {
				got := dsn.Redact("connect "+out, tc.dsn)
				for _, sec := range append(tc.secrets, s.Secrets()...) {
					if strings.Contains(got, sec) {
						t.Errorf("Redact(%q): got %q, want it without %q", out, got, sec)
					}
				}
			}
		})
	}
}

// TestRedactUnparsed: connection strings that do not parse, or were never registered, lose what stands
// where a password would, whatever their scheme.
func TestRedactUnparsed(t *testing.T) {
	for _, tc := range []struct{ name, msg, want string }{
		{"URL of another scheme", "dial mysql://bob:hunter22@h:3306/db failed", "dial mysql://bob:xxxxx@h:3306/db failed"},
		{"pgx5 URL never registered", "open pgx5://bob:hunter22@h/db: no", "open pgx5://bob:xxxxx@h/db: no"},
		{"keyword/value", "bad: host=h password=hunter22 nonsense", "bad: host=h password=xxxxx nonsense"},
		{"keyword/value with spaces", "bad: host=h password = 'hun ter\\'22' x", "bad: host=h password = xxxxx x"},
		{"query", "bad postgres://h/db?sslmode=x&password=hunter22&a=b", "bad postgres://h/db?sslmode=x&password=xxxxx&a=b"},
		{"quoted by %q", `missing "=" after "password=hunter22"`, `missing "=" after "password=xxxxx"`},
		{"no password", "password authentication failed for user \"bob\"", "password authentication failed for user \"bob\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dsn.Redact(tc.msg); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	// A string that does not parse still has its password registered: it is gone where no pattern
	// would find it.
	var r dsn.Redactor
	r.AddConnString("mysql://bob:hunter22@h/db")
	r.AddConnString("host=h password='hun ter' oops")
	if got, want := r.Redact("hunter22 and 'hun ter'"), "xxxxx and 'xxxxx'"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRedactorSecrets(t *testing.T) {
	var r dsn.Redactor
	r.AddSecret("ab") // too short to replace everywhere
	r.AddSecret("k1:0011aabb")
	r.AddSecret("0011aabb")
	if got, want := r.Redact("ab k1:0011aabb 0011aabb"), "ab xxxxx xxxxx"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRedactorHolds(t *testing.T) {
	var r dsn.Redactor
	r.AddSecret("pa ss/w@rd")
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"nothing here", false},
		{"password=elsewhere", false}, // a pattern Redact masks, but no registered secret
		{"raw pa ss/w@rd", true},
		{"postgres://u:pa%20ss%2Fw%40rd@h/db", true},
		{"q=pa+ss%2Fw%40rd", true},
	} {
		if got := r.Holds(tc.msg); got != tc.want {
			t.Errorf("Holds(%q): got %v, want %v", tc.msg, got, tc.want)
		}
	}
}
