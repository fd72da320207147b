package dsn

import (
	"strings"
)

// mask replaces a secret in what is printed.
const mask = "xxxxx"

// ConnString writes s as keyword/value, every keyword once, values quoted where libpq needs it.
func (s *Settings) ConnString() string {
	var b strings.Builder
	for k, v := range s.All() {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(quote(v))
	}
	return b.String()
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// quote writes a keyword/value value: bare when that is unambiguous, else in single quotes.
func quote(v string) string {
	if v != "" && !strings.ContainsAny(v, spaces+`'\`) {
		return v
	}
	return "'" + quoteEscaper.Replace(v) + "'"
}

// URL writes s as a postgres:// URL. A single host name or address and its port go into the authority;
// several hosts, a socket directory and anything else that the authority cannot hold go into the query,
// where libpq reads them too.
func (s *Settings) URL() string {
	rest := s.Clone()
	var b strings.Builder
	b.WriteString("postgres://")
	user, pw := rest.kv[User], rest.kv[Password]
	if user != "" || pw != "" {
		b.WriteString(escape(user))
		if pw != "" {
			b.WriteString(":" + escape(pw))
			rest.Delete(Password)
		}
		b.WriteByte('@')
		if user != "" {
			rest.Delete(User)
		}
	}
	host, hasHost := rest.kv[Host]
	port, hasPort := rest.kv[Port]
	if hasHost && authorityHost(host) && (!hasPort || port != "" && strings.Trim(port, "0123456789") == "") {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		b.WriteString(host)
		if hasPort {
			b.WriteString(":" + port)
			rest.Delete(Port)
		}
		rest.Delete(Host)
	}
	b.WriteByte('/')
	if db := rest.kv[Database]; db != "" {
		b.WriteString(escape(db))
		rest.Delete(Database)
	}
	sep := "?"
	for k, v := range rest.All() {
		b.WriteString(sep + escape(k) + "=" + escape(v))
		sep = "&"
	}
	return b.String()
}

// authorityHost reports whether host can stand in a URL's authority as it is: one DNS name, IPv4 or
// IPv6 address.
func authorityHost(host string) bool {
	if host == "" {
		return false
	}
	ipv6 := strings.Contains(host, ":")
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '.':
		case ipv6 && c == ':':
		case !ipv6 && (c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z' || c == '-' || c == '_'):
		default:
			return false
		}
	}
	return true
}

// escape percent-encodes every byte but the unreserved ones of RFC 3986, which libpq decodes everywhere
// in a URL (it does not read '+' as a space).
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
