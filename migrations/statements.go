package migrations

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// statement is one top-level SQL statement of a migration file: its text and where it starts.
type statement struct {
	text  string // without the terminating semicolon, trimmed
	start int    // byte offset of its first character in the file
	end   int    // byte offset just past its terminating semicolon (or the file's end)
	line  int    // 1-based line of its first character
}

// splitStatements splits a migration file into its top-level statements: at semicolons outside string
// literals, quoted identifiers, comments and dollar-quoted bodies, as PostgreSQL's simple query protocol
// does. Comments and blank space between statements belong to none.
func splitStatements(src string) []statement {
	var out []statement
	begin := -1 // offset of the current statement's first character, -1 before it
	add := func(end, next int) {
		if begin >= 0 {
			out = append(out, statement{text: strings.TrimRight(src[begin:end], space), start: begin, end: next, line: 1 + strings.Count(src[:begin], "\n")})
		}
		begin = -1
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			if j := strings.IndexByte(src[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(src)
			}
			continue
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			i = skipBlockComment(src, i)
			continue
		case c == ';':
			add(i, i+1)
			i++
			continue
		case strings.IndexByte(space, c) >= 0:
			i++
			continue
		}
		if begin < 0 {
			begin = i
		}
		switch {
		case c == '\'':
			escapes := i > 0 && (src[i-1] == 'E' || src[i-1] == 'e') && (i < 2 || !isIdentByte(src[i-2]))
			i = skipQuoted(src, i, '\'', escapes)
		case c == '"':
			i = skipQuoted(src, i, '"', false)
		case c == '$':
			if tag, ok := dollarTag(src[i:]); ok && (i == 0 || !isIdentByte(src[i-1])) {
				if j := strings.Index(src[i+len(tag):], tag); j >= 0 {
					i += len(tag) + j + len(tag)
				} else {
					i = len(src)
				}
			} else {
				i++
			}
		default:
			i++
		}
	}
	add(len(src), len(src))
	return out
}

// space is what PostgreSQL's scanner takes for white space.
const space = " \t\n\r\f\v"

// elideLiterals returns src with the contents of its quoted and dollar-quoted string literals replaced
// by "...".
func elideLiterals(src string) string {
	var b strings.Builder
	for i := 0; i < len(src); {
		switch c := src[i]; {
		case c == '\'':
			escapes := i > 0 && (src[i-1] == 'E' || src[i-1] == 'e')
			i = skipQuoted(src, i, '\'', escapes)
			b.WriteString("'...'")
		case c == '$':
			tag, ok := dollarTag(src[i:])
			if !ok || (i > 0 && isIdentByte(src[i-1])) {
				b.WriteByte(c)
				i++
				continue
			}
			if j := strings.Index(src[i+len(tag):], tag); j >= 0 {
				i += len(tag) + j + len(tag)
			} else {
				i = len(src)
			}
			b.WriteString(tag + "..." + tag)
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// skipBlockComment returns the offset past the (nestable) block comment at i.
func skipBlockComment(src string, i int) int {
	depth := 0
	for i < len(src) {
		switch {
		case strings.HasPrefix(src[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(src[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// skipQuoted returns the offset past the literal or identifier quoted with q at i; a doubled q stands
// for itself, and with escapes a backslash escapes the next byte.
func skipQuoted(src string, i int, q byte, escapes bool) int {
	for i++; i < len(src); i++ {
		switch {
		case escapes && src[i] == '\\':
			i++
		case src[i] == q && i+1 < len(src) && src[i+1] == q:
			i++
		case src[i] == q:
			return i + 1
		}
	}
	return i
}

// dollarTag returns the $tag$ that s starts with.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		switch {
		case s[j] == '$':
			return s[:j+1], true
		case !isIdentByte(s[j]) || (j == 1 && s[j] >= '0' && s[j] <= '9'):
			return "", false
		}
	}
	return "", false
}

func isIdentByte(b byte) bool {
	return b == '_' || b >= 0x80 || (b >= '0' && b <= '9') || unicode.IsLetter(rune(b))
}

// statementAt returns the statement that holds the character at position pos (1-based, in characters
// as PostgreSQL counts), and the line of that character.
func statementAt(src string, pos int) (statement, int, bool) {
	off := 0
	for n := 1; n < pos && off < len(src); n++ {
		_, size := utf8.DecodeRuneInString(src[off:])
		off += size
	}
	if pos <= 0 || off >= len(src) {
		return statement{}, 0, false
	}
	line := 1 + strings.Count(src[:off], "\n")
	for _, s := range splitStatements(src) {
		if off >= s.start && off < s.end {
			return s, line, true
		}
	}
	return statement{}, line, false
}

// transactionControl are the statements that end PostgreSQL's implicit transaction of a file sent as one
// query, or cannot run in it: a file without them at top level is applied whole or not at all. (PREPARE
// is counted though only PREPARE TRANSACTION matters: a file in doubt is not taken as atomic.)
var transactionControl = []string{"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE", "VACUUM"}

// atomic reports whether src has no top-level statement that controls transactions.
func atomic(src string) bool {
	for _, s := range splitStatements(src) {
		words := strings.FieldsFunc(s.text, func(r rune) bool { return !unicode.IsLetter(r) })
		if len(words) > 0 && slices.Contains(transactionControl, strings.ToUpper(words[0])) {
			return false
		}
	}
	return true
}
