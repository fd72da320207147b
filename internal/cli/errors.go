package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// errHelp: the usage was printed on request; exit 0.
	errHelp = errors.New("help requested")
	// errReported: the command already said why it failed; exit 1 without another line.
	errReported = errors.New("failure already reported")
)

// usageError is a malformed command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// describe turns err into a message for an operator. Connection failures name the server, the user and
// the database and say what went wrong, instead of pgx's multi-line account of every address it tried.
func describe(err error) string {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || ce.Config == nil {
		return err.Error()
	}
	cfg := ce.Config
	where := cfg.Host
	if !strings.HasPrefix(where, "/") {
		where = net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	}
	var cause string
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		switch pe.Code {
		case "28P01":
			cause = "password authentication failed (wrong password, or no such role)"
		case "28000":
			cause = pe.Message + " (check pg_hba.conf and the role's LOGIN attribute)"
		case "3D000":
			cause = fmt.Sprintf("database %q does not exist (did 'tenantseal bootstrap' run with this --database?)", cfg.Database)
		default:
			cause = fmt.Sprintf("%s (SQLSTATE %s)", pe.Message, pe.Code)
		}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		cause = "timed out"
		if cfg.ConnectTimeout > 0 {
			cause = "timed out after " + cfg.ConnectTimeout.String()
		}
	case errors.Is(err, context.Canceled):
		cause = "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		cause = "connection refused (is PostgreSQL running and listening there?)"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		cause = "host unreachable"
	default:
		// The innermost distinct message: pgx nests "address (host): dial error: dial tcp ...: reason".
		cause = err.Error()
		if i := strings.LastIndex(cause, ": "); i >= 0 {
			cause = cause[i+2:]
		}
	}
	return fmt.Sprintf("cannot connect to %s as user %q, database %q: %s", where, cfg.User, cfg.Database, cause)
}

// ownerError explains the Postgres failures of owner-side commands that an operator can fix.
func ownerError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "42P01", "3F000", "42883":
			return fmt.Errorf("the database lacks the tenantseal schema or part of it: run 'tenantseal migrate up' first (%w)", err)
		case "42501":
			return fmt.Errorf("permission denied: connect as the owner role (TENANTSEAL_OWNER_DSN): %w", err)
		}
	}
	return err
}

// checkOwner fails unless c's role owns tenantseal's tables (or is a member of the role that does; the
// registry is in public before migration 6):
// another role would see, through row-level security, one tenant's rows or none, and cmd would report
// that as the whole truth.
func checkOwner(ctx context.Context, c *pgx.Conn, cmd string) error {
	var owner, user string
	var ok bool
	err := c.QueryRow(ctx, `SELECT pg_get_userbyid(relowner), current_user, pg_has_role(current_user, relowner, 'USAGE')
		FROM pg_class WHERE oid = coalesce(to_regclass('tenantseal.tenants'), to_regclass('public.tenants'))`).Scan(&owner, &user, &ok)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s: the database has no tenantseal schema: run 'tenantseal migrate up' first", cmd)
	case err != nil:
		return fmt.Errorf("%s: %w", cmd, ownerError(err))
	case !ok:
		return fmt.Errorf("%s needs the owner role %s, but is connected as %s: connect as the owner role (--dsn, $%s or the secrets file), not as the app or the auditor",
			cmd, owner, user, envOwnerDSN)
	}
	return nil
}

// unprefixed drops the "tenantseal: " that library sentinels start with: exit adds its own.
func unprefixed(msg string) string {
	return strings.ReplaceAll(strings.TrimPrefix(msg, "tenantseal: "), ": tenantseal: ", ": ")
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.NewReplacer("\r\n", "; ", "\n\t", "; ", "\n", "; ", "\t", " ").Replace(s)
	return s
}
