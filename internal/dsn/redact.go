package dsn

import (
	"cmp"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MinSecretLen is the length below which a secret is not replaced wherever it appears (it would garble
// messages); it is still masked where a connection string holds it.
const MinSecretLen = 3

// Redactor keeps secrets out of messages. Register the connection strings in play with AddConnString and
// other secrets with AddSecret, then pass every message through Redact. The zero value is ready to use and
// safe for concurrent use.
type Redactor struct {
	mu    sync.Mutex
	forms []string // every spelling of every secret, longest first
}

// AddConnString registers the passwords of connString: those it holds when it parses, and whatever stands
// where a password would stand when it does not (or parses other than intended).
func (r *Redactor) AddConnString(connString string) {
	if s, err := Parse(connString); err == nil {
		for _, sec := range s.Secrets() {
			r.AddSecret(sec)
		}
	}
	for _, sec := range candidates(connString) {
		r.AddSecret(sec)
	}
}

// AddSecret registers secret, in every spelling a message may hold it: as it is, percent-encoded for a
// URL query, path or userinfo, backslash-escaped as keyword/value quotes it, and Go-quoted as %q prints
// it. Secrets shorter than MinSecretLen are ignored.
func (r *Redactor) AddSecret(secret string) {
	if len(secret) < MinSecretLen {
		return
	}
	u := (&url.URL{User: url.UserPassword("u", secret)}).User.String()
	forms := []string{
		secret,
		url.QueryEscape(secret),
		url.PathEscape(secret),
		strings.TrimPrefix(u, "u:"),
		escape(secret),
		strings.ToLower(escape(secret)),
		quoteEscaper.Replace(secret),
		strings.Trim(strconv.Quote(secret), `"`),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range forms {
		if !slices.Contains(r.forms, f) {
			r.forms = append(r.forms, f)
		}
	}
	// Longest first: a secret that contains another is replaced whole.
	slices.SortStableFunc(r.forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
}

// Redact returns msg with every registered secret replaced by xxxxx, then with whatever still stands
// where a connection string holds a password masked: the userinfo password of a URL of any scheme,
// password= and sslpassword= in a query or as keyword/value.
func (r *Redactor) Redact(msg string) string {
	r.mu.Lock()
	forms := r.forms
	r.mu.Unlock()
	for _, f := range forms {
		msg = strings.ReplaceAll(msg, f, mask)
	}
	msg = userinfoPassword.ReplaceAllString(msg, "${1}"+mask+"@")
	msg = queryPassword.ReplaceAllString(msg, "${1}"+mask)
	return keywordPassword.ReplaceAllString(msg, "${1}"+mask)
}

// Holds reports whether msg holds a registered secret, in any of the spellings Redact replaces (not the
// patterns it masks besides).
func (r *Redactor) Holds(msg string) bool {
	r.mu.Lock()
	forms := r.forms
	r.mu.Unlock()
	for _, f := range forms {
		if strings.Contains(msg, f) {
			return true
		}
	}
	return false
}

// Redact returns msg with the passwords of connStrings masked, as a Redactor given them would.
func Redact(msg string, connStrings ...string) string {
	var r Redactor
	for _, cs := range connStrings {
		r.AddConnString(cs)
	}
	return r.Redact(msg)
}

// Patterns of a password in a connection string, for strings that never went through Parse. The quote
// characters end a value because messages quote connection strings in them.
var (
	// scheme://user:PASSWORD@
	userinfoPassword = regexp.MustCompile("(\\b[A-Za-z][A-Za-z0-9+.\\-]*://[^\\s:/?#@'\"`]*:)[^\\s@'\"`]+@")
	// ?password=PASSWORD or &sslpassword=PASSWORD
	queryPassword = regexp.MustCompile("(?i)([?&](?:ssl)?password=)[^\\s&#'\"`]+")
	// password=PASSWORD, password = 'PASS WORD' as keyword/value (not after ? or &: that is the query)
	keywordPassword = regexp.MustCompile("(?i)((?:^|[\\s'\"`(,;])(?:ssl)?password\\s*=\\s*)('(?:[^'\\\\]|\\\\.)*'?|(?:[^\\s'\"`\\\\]|\\\\.)+)")
)

// candidates returns what stands where a password would in s, read by the patterns: for a string that
// does not parse, or whose password a malformed URL moved elsewhere.
func candidates(s string) []string {
	var out []string
	for _, m := range userinfoPassword.FindAllStringSubmatchIndex(s, -1) {
		// The match is prefix ":" PASSWORD "@"; the prefix ends at group 1.
		pw := s[m[3] : m[1]-1]
		out = append(out, pw)
		if d, err := url.PathUnescape(pw); err == nil {
			out = append(out, d)
		}
	}
	for _, m := range queryPassword.FindAllStringSubmatchIndex(s, -1) {
		v := s[m[3]:m[1]]
		out = append(out, v)
		if d, err := url.QueryUnescape(v); err == nil {
			out = append(out, d)
		}
	}
	for _, m := range keywordPassword.FindAllStringSubmatch(s, -1) {
		v := m[2]
		if strings.HasPrefix(v, "'") {
			v = strings.TrimSuffix(v[1:], "'")
		}
		out = append(out, v, unescape(v))
	}
	return out
}
