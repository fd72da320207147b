package audit

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// FailedLogin is a refused login to the database as its server log tells it.
type FailedLogin struct {
	// At is the time in the line's prefix (log_line_prefix %m or %t), zero when the prefix has none.
	At time.Time `json:"at"`
	// User, Database and Host are what the message names; empty when it names none.
	User     string `json:"user,omitempty"`
	Database string `json:"database,omitempty"`
	Host     string `json:"host,omitempty"`
	// Reason is the server's message, after "FATAL:".
	Reason string `json:"reason"`
}

// The FATAL messages of PostgreSQL (15) that refuse a login, and the names they carry.
var loginFailures = []*regexp.Regexp{
	regexp.MustCompile(`^(?:\w+ )?authentication failed for user "(?P<user>[^"]*)"`),
	regexp.MustCompile(`^no pg_hba\.conf entry for (?:replication connection from )?host "(?P<host>[^"]*)", user "(?P<user>[^"]*)"(?:, database "(?P<database>[^"]*)")?`),
	regexp.MustCompile(`^pg_hba\.conf rejects (?:replication )?connection for host "(?P<host>[^"]*)", user "(?P<user>[^"]*)"(?:, database "(?P<database>[^"]*)")?`),
	regexp.MustCompile(`^role "(?P<user>[^"]*)" does not exist`),
	regexp.MustCompile(`^role "(?P<user>[^"]*)" is not permitted to log in`),
	regexp.MustCompile(`^database "(?P<database>[^"]*)" does not exist`),
	regexp.MustCompile(`^permission denied for database "(?P<database>[^"]*)"`),
	regexp.MustCompile(`^too many connections for role "(?P<user>[^"]*)"`),
}

// Time layouts of log_line_prefix %m (milliseconds) and %t.
var logTimeLayouts = []string{"2006-01-02 15:04:05.000 MST", "2006-01-02 15:04:05 MST"}

// MaxLogLine bounds one line of a server log that FailedLogins reads; a longer line is an error.
const MaxLogLine = 1 << 20

// FailedLogins reads a PostgreSQL server log in its stderr format (any log_line_prefix that starts with
// %m or %t keeps the time; others leave At zero) and returns the refused logins it tells, oldest first:
// failed password, certificate, peer or other authentication, no or a rejecting pg_hba.conf entry,
// unknown roles and databases, roles without LOGIN or CONNECT, too many connections for a role. The
// server logs these whatever its settings; what it does not log (a client that gave up before
// authenticating) is not here. Nothing secret is in these lines: the server never logs a password.
func FailedLogins(r io.Reader) ([]FailedLogin, error) {
	var out []FailedLogin
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), MaxLogLine)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "FATAL:  ")
		if i < 0 {
			continue
		}
		msg := line[i+len("FATAL:  "):]
		for _, re := range loginFailures {
			m := re.FindStringSubmatch(msg)
			if m == nil {
				continue
			}
			fl := FailedLogin{At: logTime(line[:i]), Reason: msg}
			for j, name := range re.SubexpNames() {
				switch name {
				case "user":
					fl.User = m[j]
				case "database":
					fl.Database = m[j]
				case "host":
					fl.Host = m[j]
				}
			}
			out = append(out, fl)
			break
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("audit: read server log: %w", err)
	}
	return out, nil
}

// logTime parses the time at the start of a log line's prefix, or returns zero.
func logTime(prefix string) time.Time {
	f := strings.Fields(prefix)
	if len(f) < 3 {
		return time.Time{}
	}
	for _, layout := range logTimeLayouts {
		if t, err := time.Parse(layout, strings.Join(f[:3], " ")); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
