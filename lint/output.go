package lint

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// WriteText writes findings for people, one per line with its fix hint below, then a summary line:
//
//	TS002 error public.invoices: row-level security is enabled but not forced: ...
//		fix: ALTER TABLE public.invoices FORCE ROW LEVEL SECURITY
//	1 finding: 1 error, 0 warnings
func WriteText(w io.Writer, fs []Finding) error {
	bw := bufio.NewWriter(w)
	errs := 0
	for _, f := range fs {
		if f.Severity == SeverityError {
			errs++
		}
		fmt.Fprintf(bw, "%s %s %s: %s\n", f.Rule, f.Severity, f.Object, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(bw, "\tfix: %s\n", f.Fix)
		}
	}
	switch len(fs) {
	case 0:
		fmt.Fprintln(bw, "no findings")
	default:
		fmt.Fprintf(bw, "%d %s: %d %s, %d %s\n", len(fs), plural(len(fs), "finding"),
			errs, plural(errs, "error"), len(fs)-errs, plural(len(fs)-errs, "warning"))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("lint: write: %w", err)
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// WriteJSON writes findings for machines: a JSON array of objects with the keys rule, severity,
// object, message and fix; an empty array when there are none.
func WriteJSON(w io.Writer, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(fs); err != nil {
		return fmt.Errorf("lint: write: %w", err)
	}
	return nil
}

// runnableFix matches a fix hint that is SQL as it stands: it starts with a statement and carries no
// prose alternative ("..., or ...") or placeholder ("<...>", "...").
var runnableFix = regexp.MustCompile(`^(ALTER|CREATE|DROP|REVOKE|GRANT|SELECT) `)

func isRunnable(fix string) bool {
	return runnableFix.MatchString(fix) && !strings.Contains(fix, " or ") && !strings.Contains(fix, ", or") &&
		!strings.Contains(fix, "<") && !strings.Contains(fix, "...") && !strings.Contains(fix, "(for ") &&
		!strings.Contains(fix, " (after ")
}

// WriteFixes writes the findings' fix hints as an SQL script for a DBA to review: each finding as a
// comment, then its fix as statements when the hint is SQL as it stands, else as a comment too. Nothing
// here is ever run by tenantseal; some fixes (a new key, a revoked privilege) change what the
// application may do.
func WriteFixes(w io.Writer, fs []Finding) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "-- tenantseal lint --fix: %d %s. Review every statement before running it.\n", len(fs), plural(len(fs), "finding"))
	for _, f := range fs {
		fmt.Fprintf(bw, "\n-- %s %s %s: %s\n", f.Rule, f.Severity, f.Object, oneLineComment(f.Message))
		switch {
		case f.Fix == "":
			fmt.Fprintln(bw, "-- (no fix hint)")
		case isRunnable(f.Fix):
			fmt.Fprintln(bw, strings.TrimSuffix(f.Fix, ";")+";")
		default:
			fmt.Fprintf(bw, "-- hint: %s\n", oneLineComment(f.Fix))
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("lint: write: %w", err)
	}
	return nil
}

func oneLineComment(s string) string { return strings.ReplaceAll(s, "\n", " ") }
