package dsn

import (
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Keywords that tenantseal reads or changes; every other libpq keyword is kept as it was written.
const (
	Host           = "host"
	Port           = "port"
	User           = "user"
	Password       = "password"
	Database       = "dbname"
	SSLPassword    = "sslpassword"
	ConnectTimeout = "connect_timeout"
)

// secretKeys are the keywords whose values are secrets.
var secretKeys = []string{Password, SSLPassword}

// Settings are the settings of one connection string, by libpq keyword; the parts of a URL are stored
// under the keywords they stand for (user, password, host, port, dbname). Nothing is read from the
// environment or a password file: those still apply when pgx connects.
type Settings struct {
	kv map[string]string
}

// Parse parses a connection string in any accepted form (see the package documentation). An empty string
// gives empty Settings, as pgx reads it: everything from the environment and the defaults. Parse checks
// the syntax only; [Settings.Validate] asks pgx about the values. Its errors never quote connString.
func Parse(connString string) (*Settings, error) {
	if strings.IndexByte(connString, 0) >= 0 {
		return nil, parseErrorf("NUL byte")
	}
	var (
		kv  map[string]string
		err error
	)
	if rest, custom, ok := cutScheme(connString); ok {
		kv, err = parseURL(rest, custom)
	} else if scheme, isURL := urlScheme(connString); isURL {
		return nil, parseErrorf("unsupported scheme %q: want postgres://, postgresql://, pgx5:// or keyword/value", scheme)
	} else {
		kv, err = parseKeywordValue(connString)
	}
	if err != nil {
		return nil, err
	}
	for k := range kv {
		if k == "" || strings.ContainsAny(k, "= \t\n\r\v\f") || strings.Contains(k, "://") {
			return nil, parseErrorf(`a parameter name holds a space, "=" or "://" and cannot be written as keyword/value`)
		}
	}
	return &Settings{kv: kv}, nil
}

func parseErrorf(format string, a ...any) error {
	return fmt.Errorf("dsn: cannot parse connection string: "+format, a...)
}

// WithDatabase returns connString pointed at database, in its own form: a URL as a postgres:// URL,
// keyword/value as keyword/value.
func WithDatabase(connString, database string) (string, error) {
	s, err := Parse(connString)
	if err != nil {
		return "", err
	}
	s.Set(Database, database)
	if _, _, isURL := cutScheme(connString); isURL {
		return s.URL(), nil
	}
	return s.ConnString(), nil
}

// canonical maps the spellings pgx accepts for one setting to libpq's keyword.
func canonical(key string) string {
	if key == "database" {
		return Database
	}
	return key
}

// Get returns the value of keyword key ("" when unset).
func (s *Settings) Get(key string) string {
	return s.kv[canonical(key)]
}

// Has reports whether keyword key is set, possibly to "".
func (s *Settings) Has(key string) bool {
	_, ok := s.kv[canonical(key)]
	return ok
}

// Set sets keyword key to value.
func (s *Settings) Set(key, value string) {
	if s.kv == nil {
		s.kv = map[string]string{}
	}
	s.kv[canonical(key)] = value
}

// Delete unsets keyword key.
func (s *Settings) Delete(key string) {
	delete(s.kv, canonical(key))
}

// Clone returns a copy that changes independently of s.
func (s *Settings) Clone() *Settings {
	return &Settings{kv: maps.Clone(s.kv)}
}

// leading are the keywords written first, in this order; the others follow sorted.
var leading = []string{Host, Port, User, Password, Database}

// All yields every keyword and its value, in the order ConnString writes them.
func (s *Settings) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, k := range s.keys() {
			if !yield(k, s.kv[k]) {
				return
			}
		}
	}
}

func (s *Settings) keys() []string {
	var keys []string
	for _, k := range leading {
		if _, ok := s.kv[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range s.kv {
		if !slices.Contains(leading, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

// Secrets returns the passwords s holds (password, sslpassword), for a [Redactor].
func (s *Settings) Secrets() []string {
	var out []string
	for _, k := range secretKeys {
		if v := s.kv[k]; v != "" {
			out = append(out, v)
		}
	}
	return out
}

// String writes s as keyword/value with every password masked. It and GoString have value receivers so
// that printing Settings, or a pointer to it, with any verb shows no password.
func (s Settings) String() string {
	m := s.Clone()
	for _, k := range secretKeys {
		if m.Has(k) {
			m.Set(k, mask)
		}
	}
	return m.ConnString()
}

// GoString is String, for %#v.
func (s Settings) GoString() string { return "dsn.Settings(" + s.String() + ")" }

// Validate reports what pgconn.ParseConfig finds wrong with s (an invalid port, sslmode, ...), with every
// password of s masked.
func (s *Settings) Validate() error {
	_, err := pgconn.ParseConfig(s.ConnString())
	if err == nil {
		return nil
	}
	msg := err.Error()
	// pgconn quotes the connection string, redacted as well as it can: drop it, the caller has it.
	if rest, ok := strings.CutPrefix(msg, "cannot parse `"); ok {
		if i := strings.Index(rest, "`: "); i >= 0 {
			msg = rest[i+3:]
		}
	}
	var r Redactor
	for _, sec := range s.Secrets() {
		r.AddSecret(sec)
	}
	return errors.New("dsn: cannot parse connection string: " + r.Redact(msg))
}
