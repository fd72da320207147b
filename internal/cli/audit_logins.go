package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tenantseal/tenantseal/audit"
)

// failedLogins prints the refused logins that the server log at path tells (- for stdin).
func failedLogins(s *session, path, format string) error {
	if path == "" {
		return usageErrorf("audit logins: --log is required: the PostgreSQL server log to read, - for stdin")
	}
	if format != "" && format != "text" && format != "json" && format != "jsonl" {
		return usageErrorf("audit logins: --format %q: want text or json", format)
	}
	var r io.Reader = s.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("audit logins: %w", err)
		}
		defer f.Close()
		r = f
	}
	logins, err := audit.FailedLogins(r)
	if err != nil {
		return fmt.Errorf("audit logins: %s: %w", path, err)
	}
	w := bufio.NewWriter(s.stdout)
	for _, fl := range logins {
		if format == "json" || format == "jsonl" {
			b, err := json.Marshal(fl)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s\n", b)
			continue
		}
		at := "-"
		if !fl.At.IsZero() {
			at = fl.At.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(w, "%s\tuser=%s\tdatabase=%s\thost=%s\t%s\n", at, orDash(fl.User), orDash(fl.Database), orDash(fl.Host), fl.Reason)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	s.info("%d refused logins in %s\n", len(logins), path)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
