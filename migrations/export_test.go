package migrations

// Statement is a statement of a migration file, as the tests see it.
type Statement struct {
	Text string
	Line int
}

// SplitStatements is splitStatements for the tests.
func SplitStatements(src string) []Statement {
	var out []Statement
	for _, s := range splitStatements(src) {
		out = append(out, Statement{Text: s.text, Line: s.line})
	}
	return out
}

// StatementAt is statementAt for the tests.
func StatementAt(src string, pos int) (Statement, int, bool) {
	s, line, ok := statementAt(src, pos)
	return Statement{Text: s.text, Line: s.line}, line, ok
}

// Atomic is atomic for the tests.
func Atomic(src string) bool { return atomic(src) }

// ElideLiterals is elideLiterals for the tests.
func ElideLiterals(src string) string { return elideLiterals(src) }
