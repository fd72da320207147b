package dsn

import (
	"regexp"
	"strings"
)

// schemes are the URL prefixes accepted; custom marks golang-migrate's, whose x-... parameters are
// golang-migrate's own.
var schemes = []struct {
	prefix string
	custom bool
}{
	{"postgresql://", false},
	{"postgres://", false},
	{"pgx5://", true},
	{"pgx4://", true},
	{"pgx://", true},
}

func cutScheme(s string) (rest string, custom, ok bool) {
	for _, sc := range schemes {
		if rest, ok := strings.CutPrefix(s, sc.prefix); ok {
			return rest, sc.custom, true
		}
	}
	return "", false, false
}

var schemePattern = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.\-]*)://`)

// urlScheme returns the scheme of a string that starts like a URL.
func urlScheme(s string) (string, bool) {
	m := schemePattern.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	return m[1], true
}

const spaces = " \t\n\r\v\f"

// parseKeywordValue parses libpq's keyword/value form: keyword = value pairs separated by whitespace, a
// value either bare (a backslash takes the next character literally) or in single quotes (\' and \\
// inside). A later keyword overrides an earlier one; an empty user is ignored, as pgx does.
func parseKeywordValue(s string) (map[string]string, error) {
	kv := map[string]string{}
	s = strings.TrimLeft(s, spaces)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, parseErrorf(`a keyword without "=" (neither keyword/value nor a postgres:// URL)`)
		}
		key := strings.Trim(s[:eq], spaces)
		if strings.ContainsAny(key, spaces) {
			return nil, parseErrorf(`a keyword holds a space or lacks its "="`)
		}
		s = strings.TrimLeft(s[eq+1:], spaces)
		var value string
		if strings.HasPrefix(s, "'") {
			end, ok := quotedEnd(s[1:])
			if !ok {
				return nil, parseErrorf("unterminated quoted value")
			}
			value, s = unescape(s[1:end+1]), s[end+2:]
		} else {
			end := 0
			for end < len(s) && !strings.ContainsRune(spaces, rune(s[end])) {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			end = min(end, len(s))
			value, s = unescape(s[:end]), s[end:]
		}
		s = strings.TrimLeft(s, spaces)
		key = canonical(key)
		if key == "" {
			return nil, parseErrorf("an empty keyword")
		}
		if key == User && value == "" {
			continue
		}
		kv[key] = value
	}
	return kv, nil
}

// quotedEnd returns the index of the quote that ends s, the text after an opening quote.
func quotedEnd(s string) (int, bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '\'':
			return i, true
		}
	}
	return 0, false
}

// unescape drops each backslash and keeps the character after it; a trailing backslash is dropped.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseURL parses what follows the scheme of a connection URL as libpq does: the userinfo ends at the
// first '@' before any '/', hosts and ports are comma-separated lists that stay aligned (h1,h2:5433 is
// host "h1,h2", port ",5433"), an empty path leaves the database unset, query parameters override the
// rest and ssl=true means sslmode=require.
func parseURL(s string, custom bool) (map[string]string, error) {
	kv := map[string]string{}
	if i := strings.IndexAny(s, "@/"); i >= 0 && s[i] == '@' {
		user, password, hasPassword := strings.Cut(s[:i], ":")
		s = s[i+1:]
		if user != "" {
			v, err := decode(user, "user name")
			if err != nil {
				return nil, err
			}
			if v != "" { // pgx would send an empty user name (" " decodes to ""); the default is meant
				kv[User] = v
			}
		}
		if hasPassword && password != "" {
			v, err := decode(password, "password")
			if err != nil {
				return nil, err
			}
			kv[Password] = v
		}
	}

	var hosts, ports strings.Builder
	for {
		if strings.HasPrefix(s, "[") {
			end := strings.IndexByte(s, ']')
			switch {
			case end < 0:
				return nil, parseErrorf(`no "]" after an IPv6 host address`)
			case end == 1:
				return nil, parseErrorf("an empty IPv6 host address")
			}
			hosts.WriteString(s[1:end])
			s = s[end+1:]
			if s != "" && !strings.ContainsRune(":/?,", rune(s[0])) {
				return nil, parseErrorf(`unexpected character after an IPv6 host address (want ":" or "/")`)
			}
		} else {
			end := indexOr(s, ":/?,")
			hosts.WriteString(s[:end])
			s = s[end:]
		}
		if strings.HasPrefix(s, ":") {
			s = s[1:]
			end := indexOr(s, "/?,")
			ports.WriteString(s[:end])
			s = s[end:]
		}
		if !strings.HasPrefix(s, ",") {
			break
		}
		s = s[1:]
		hosts.WriteByte(',')
		ports.WriteByte(',')
	}
	if hosts.Len() > 0 {
		v, err := decode(hosts.String(), "host")
		if err != nil {
			return nil, err
		}
		kv[Host] = v
	}
	if ports.Len() > 0 {
		v, err := decode(ports.String(), "port")
		if err != nil {
			return nil, err
		}
		kv[Port] = v
	}

	if rest, ok := strings.CutPrefix(s, "/"); ok {
		path, query, hasQuery := strings.Cut(rest, "?")
		s = ""
		if hasQuery {
			s = "?" + query
		}
		if path != "" {
			v, err := decode(path, "database name")
			if err != nil {
				return nil, err
			}
			kv[Database] = v
		}
	}
	if rest, ok := strings.CutPrefix(s, "?"); ok {
		if err := parseQuery(rest, kv, custom); err != nil {
			return nil, err
		}
	}
	return kv, nil
}

func indexOr(s, chars string) int {
	if i := strings.IndexAny(s, chars); i >= 0 {
		return i
	}
	return len(s)
}

// parseQuery adds the '&'-separated key=value pairs of a URL query to kv: exactly one '=' each, both
// halves percent-decoded, the last occurrence winning.
func parseQuery(q string, kv map[string]string, custom bool) error {
	sslLast := false
	query := map[string]string{}
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		rawKey, rawValue, ok := strings.Cut(pair, "=")
		if !ok {
			return parseErrorf(`a query parameter without "="`)
		}
		if strings.Contains(rawValue, "=") {
			return parseErrorf(`a query parameter with a second "="`)
		}
		key, err := decode(rawKey, "query parameter name")
		if err != nil {
			return err
		}
		key = canonical(key)
		value, err := decode(rawValue, "value of a query parameter")
		if err != nil {
			return err
		}
		switch key {
		case "ssl":
			sslLast = true
		case "sslmode":
			sslLast = false
		}
		query[key] = value
	}
	if query["ssl"] == "true" {
		delete(query, "ssl")
		if sslLast {
			query["sslmode"] = "require"
		}
	}
	for k, v := range query {
		if custom && strings.HasPrefix(k, "x-") {
			continue // golang-migrate's own (x-migrations-table, ...), never sent to the server
		}
		kv[k] = v
	}
	return nil
}

// decode percent-decodes one URL component as libpq does: %XX with two hex digits, never %00, leading and
// trailing spaces skipped, no space inside. Errors name the component, never its text.
func decode(raw, what string) (string, error) {
	raw = strings.TrimLeft(raw, " ")
	trimmed := strings.TrimRight(raw, " ")
	if strings.Contains(trimmed, " ") {
		return "", parseErrorf("a space inside the %s (write %%20)", what)
	}
	if !strings.Contains(trimmed, "%") {
		return trimmed, nil
	}
	var b strings.Builder
	for i := 0; i < len(trimmed); i++ {
		c := trimmed[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		hi, ok1 := unhex(trimmed, i+1)
		lo, ok2 := unhex(trimmed, i+2)
		if !ok1 || !ok2 {
			return "", parseErrorf("invalid percent-encoding in the %s", what)
		}
		if hi<<4|lo == 0 {
			return "", parseErrorf("%%00 in the %s", what)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(s string, i int) (byte, bool) {
	if i >= len(s) {
		return 0, false
	}
	switch c := s[i]; {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
