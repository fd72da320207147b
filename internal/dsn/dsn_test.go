package dsn_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/internal/dsn"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]string
	}{
		{"empty", "", map[string]string{}},
		{"postgres URL", "postgres://u:pw@h:5433/db?sslmode=disable",
			map[string]string{"user": "u", "password": "pw", "host": "h", "port": "5433", "dbname": "db", "sslmode": "disable"}},
		{"postgresql URL", "postgresql://h/db", map[string]string{"host": "h", "dbname": "db"}},
		{"pgx5 URL drops golang-migrate's parameters", "pgx5://u:pw@h/db?x-migrations-table=m&sslmode=require",
			map[string]string{"user": "u", "password": "pw", "host": "h", "dbname": "db", "sslmode": "require"}},
		{"pgx URL", "pgx://u@h", map[string]string{"user": "u", "host": "h"}},
		{"pgx4 URL", "pgx4://u:pw@h:1/d", map[string]string{"user": "u", "password": "pw", "host": "h", "port": "1", "dbname": "d"}},
		{"percent-encoded", "postgres://us%65r:p%40ss%2Fw%3Ard@h/d%20b",
			map[string]string{"user": "user", "password": "p@ss/w:rd", "host": "h", "dbname": "d b"}},
		{"multi-host", "postgres://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write",
			map[string]string{"user": "u", "password": "pw", "host": "h1,h2", "port": "5432,5433", "dbname": "db", "target_session_attrs": "read-write"}},
		{"multi-host, one port", "postgres://h1,h2:5433/db", map[string]string{"host": "h1,h2", "port": ",5433", "dbname": "db"}},
		{"IPv6", "postgres://[::1]:5432/db", map[string]string{"host": "::1", "port": "5432", "dbname": "db"}},
		{"socket directory in the query", "postgres://u@/db?host=/var/run/postgresql",
			map[string]string{"user": "u", "host": "/var/run/postgresql", "dbname": "db"}},
		{"the query overrides", "postgres://h/db?dbname=other&database=last", map[string]string{"host": "h", "dbname": "last"}},
		{"ssl=true", "postgres://h?ssl=true", map[string]string{"host": "h", "sslmode": "require"}},
		{"password in the query", "postgres://u@h/db?password=p%26w", map[string]string{"user": "u", "host": "h", "dbname": "db", "password": "p&w"}},
		{"keyword/value", "host=h port=5432 user=u password=pw dbname=d",
			map[string]string{"host": "h", "port": "5432", "user": "u", "password": "pw", "dbname": "d"}},
		{"keyword/value quoted", `password='a b\'c\\d' dbname = 'x'  database=y`, map[string]string{"password": `a b'c\d`, "dbname": "y"}},
		{"keyword/value escaped space", `host=a\ b user='' application_name=''`, map[string]string{"host": "a b", "application_name": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := dsn.Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, maps.Collect(s.All())); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const secret = "s3cret-pw"
	for _, tc := range []struct{ in, want string }{
		{"mysql://u:" + secret + "@h/db", `unsupported scheme "mysql"`},
		{"postgres://u:" + secret + "%zz@h", "invalid percent-encoding in the password"},
		{"postgres://u:" + secret + "%00@h", "%00 in the password"},
		{"postgres://[" + secret, `no "]"`},
		{"postgres://h/db?a%20b=" + secret, "cannot be written as keyword/value"},
		{"postgres://h/db?password=" + secret + "=x", `a second "="`},
		{"postgres://h/db?" + secret, `without "="`},
		{"postgres://u:" + secret + " x@h", "a space inside the password"},
		{"host=h password='" + secret, "unterminated quoted value"},
		{"pgx5 u:" + secret, `a keyword without "="`},
		{"host=h pass word=" + secret, "a keyword holds a space"},
		{"=" + secret, "an empty keyword"},
		{"host=h\x00password=" + secret, "NUL byte"},
	} {
		_, err := dsn.Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q): got no error, want %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "dsn: ") {
			t.Errorf("Parse(%q): got error %q, want one starting \"dsn: \" and containing %q", tc.in, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Parse(%q): got error %q, want it without the input", tc.in, err)
		}
	}
}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		in, conn, url string
	}{
		{"postgres://u:pw@h:5433/db?sslmode=disable&connect_timeout=7",
			"host=h port=5433 user=u password=pw dbname=db connect_timeout=7 sslmode=disable",
			"postgres://u:pw@h:5433/db?connect_timeout=7&sslmode=disable"},
		{`host=/tmp user=u password='a b\'c' dbname=d`,
			`host=/tmp user=u password='a b\'c' dbname=d`,
			"postgres://u:a%20b%27c@/d?host=%2Ftmp"},
		{"pgx5://u:p%40ss@h1,h2:5433/db",
			"host=h1,h2 port=,5433 user=u password=p@ss dbname=db",
			"postgres://u:p%40ss@/db?host=h1%2Ch2&port=%2C5433"},
		{"postgres://[::1]/db", "host=::1 dbname=db", "postgres://[::1]/db"},
		{"application_name='' password=x", "password=x application_name=''", "postgres://:x@/?application_name="},
		{"", "", "postgres:///"},
	} {
		s, err := dsn.Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if got := s.ConnString(); got != tc.conn {
			t.Errorf("Parse(%q).ConnString(): got %q, want %q", tc.in, got, tc.conn)
		}
		if got := s.URL(); got != tc.url {
			t.Errorf("Parse(%q).URL(): got %q, want %q", tc.in, got, tc.url)
		}
		for _, out := range []string{s.ConnString(), s.URL()} {
			again, err := dsn.Parse(out)
			if err != nil {
				t.Errorf("Parse(%q): %v", out, err)
				continue
			}
			if diff := cmp.Diff(maps.Collect(s.All()), maps.Collect(again.All())); diff != "" {
				t.Errorf("round trip of %q through %q (-first +second):\n%s", tc.in, out, diff)
			}
		}
	}
}

// TestAgreesWithPgconn: what pgx makes of a connection string, it makes of Parse's rendering of it.
func TestAgreesWithPgconn(t *testing.T) {
	for _, in := range []string{
		"postgres://u:pw@h:5433/db?sslmode=disable&connect_timeout=7&application_name=x%20y",
		"postgresql://u:p%40ss%2Fw@h1:5432,h2:5433/db?target_session_attrs=read-write",
		"postgres://h1,h2:5433/db?sslmode=disable",
		"postgres://[::1]:5432/db?sslmode=disable",
		"postgres://u@/db?host=/var/run/postgresql",
		`host=h port=5432 user=u password='a b\'c\\d' dbname='my db' sslmode=disable`,
		`host=a\ b user=u sslmode=disable`,
		"pgx5://u:pw@h/db?sslmode=disable",
	} {
		want := mustPgconn(t, pgxForm(in))
		s, err := dsn.Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		for _, out := range []string{s.ConnString(), s.URL()} {
			if diff := cmp.Diff(want, mustPgconn(t, out)); diff != "" {
				t.Errorf("pgconn reads %q and %q differently (-first +second):\n%s", in, out, diff)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	const secret = "s3cret'pw"
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:s3cret%27pw@h:port/x", "invalid port"},
		{`host=h password='s3cret\'pw' sslmode=bogus`, "sslmode is invalid"},
		{`host=h,i,j port=1,2 password='s3cret\'pw'`, "could not match 2 port numbers to 3 hosts"},
	} {
		s, err := dsn.Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		err = s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "dsn: ") {
			t.Errorf("Validate(%q): got %v, want an error starting \"dsn: \" and containing %q", tc.in, err, tc.want)
			continue
		}
		for _, leak := range []string{secret, `s3cret\'pw`, "s3cret", "'pw"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("Validate(%q): got %q, want it without %q", tc.in, err, leak)
			}
		}
	}
	s, err := dsn.Parse("pgx5://u:pw@h/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate: got %v, want none", err)
	}
}

func TestEdit(t *testing.T) {
	s, err := dsn.Parse("postgres://u:pw@h/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	c := s.Clone()
	c.Set(dsn.Database, "o'db")
	c.Set("database", `back\slash`) // pgx's spelling of the same keyword
	c.Set(dsn.ConnectTimeout, "3")
	c.Delete(dsn.Password)
	if got, want := c.ConnString(), `host=h user=u dbname='back\\slash' connect_timeout=3 sslmode=disable`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := s.Get(dsn.Database); got != "db" {
		t.Errorf("the original: got dbname %q, want %q (Clone must copy)", got, "db")
	}
	if !c.Has("dbname") || c.Has(dsn.Password) || c.Get("database") != `back\slash` {
		t.Errorf("got Has(dbname) %v, Has(password) %v, Get(database) %q, want true, false, %q", c.Has("dbname"), c.Has(dsn.Password), c.Get("database"), `back\slash`)
	}

	for _, tc := range []struct{ in, name string }{
		{"postgres://u:p@h:5432/postgres?sslmode=disable", "o'db"},
		{"host=h port=5432 user=u password=p dbname=postgres sslmode=disable", `back\slash`},
		{"pgx5://u:p@h/x", "new"},
	} {
		out, err := dsn.WithDatabase(tc.in, tc.name)
		if err != nil {
			t.Fatalf("WithDatabase(%q): %v", tc.in, err)
		}
		if strings.Contains(tc.in, "://") != strings.HasPrefix(out, "postgres://") {
			t.Errorf("WithDatabase(%q) = %q, want the form of the input", tc.in, out)
		}
		cfg := mustPgconn(t, out)
		if cfg.Database != tc.name || cfg.Host != "h" || cfg.User != "u" || cfg.Password != "p" {
			t.Errorf("WithDatabase(%q, %q) = %q: got %+v, want database %q on h as u", tc.in, tc.name, out, cfg, tc.name)
		}
	}
}

func TestStringMasksPasswords(t *testing.T) {
	s, err := dsn.Parse("postgres://u:hunter22@h/db?sslpassword=keypass1")
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%q", s), fmt.Sprintf("%+v", *s), fmt.Sprintf("%#v", s), fmt.Sprintf("%#v", *s)} {
		if strings.Contains(got, "hunter22") || strings.Contains(got, "keypass1") {
			t.Errorf("got %q, want no password", got)
		}
	}
	if got, want := s.String(), "host=h user=u password=xxxxx dbname=db sslpassword=xxxxx"; got != want {
		t.Errorf("got String %q, want %q", got, want)
	}
	if got, want := s.Secrets(), []string{"hunter22", "keypass1"}; !cmp.Equal(got, want) {
		t.Errorf("got Secrets %q, want %q", got, want)
	}
}
