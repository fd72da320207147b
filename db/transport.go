package db

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrInsecureTransport means a connection would not be TLS with the server's certificate and host name
// verified (sslmode=verify-full), or the server reports a session without TLS; see [TransportError].
// Use errors.Is.
var ErrInsecureTransport = errors.New("tenantseal: connection is not verified TLS")

// TransportError reports a connection that [Open] (or [CheckTransport]) refuses, and how to fix it. It
// names the host, never anything else of the connection string.
type TransportError struct {
	Host    string // the host name, address or socket directory
	Problem string // e.g. "does not use TLS (sslmode=disable)"
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("tenantseal: refusing to connect to %s: the connection %s; use sslmode=verify-full with "+
		"sslrootcert=<the CA file of the server's certificate> and a host name that the certificate names, or, for "+
		"development on this machine only, allow plaintext to loopback (db.Config.AllowPlaintextLoopback; the "+
		"tenantseal command: %s=1)", e.Host, e.Problem, EnvAllowPlaintextLoopback)
}

// Unwrap makes errors.Is(err, ErrInsecureTransport) true.
func (e *TransportError) Unwrap() error { return ErrInsecureTransport }

// EnvAllowPlaintextLoopback is the environment variable with which the tenantseal command allows
// plaintext (and unverified TLS) connections to loopback hosts, as Config.AllowPlaintextLoopback does.
const EnvAllowPlaintextLoopback = "TENANTSEAL_ALLOW_PLAINTEXT_LOOPBACK"

// CheckTransport refuses, with a [*TransportError], a connection configuration of which any attempt
// (the host itself and every fallback: pgx makes fallbacks for several hosts and for sslmode=allow and
// prefer) would not be TLS that verifies the server's certificate and host name, which only
// sslmode=verify-full (or sslrootcert=system) gives. With allowPlaintextLoopback, an attempt to a
// loopback host (127.0.0.0/8, ::1, "localhost", a Unix socket) may be anything.
func CheckTransport(cfg *pgconn.Config, allowPlaintextLoopback bool) error {
	if cfg == nil {
		return errors.New("db: nil connection config")
	}
	attempts := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	for _, a := range attempts {
		if problem := transportProblem(a.Host, a.TLSConfig); problem != "" {
			if allowPlaintextLoopback {
				if loopback(a.Host) {
					continue
				}
				problem += " and plaintext is allowed to loopback hosts only"
			}
			return &TransportError{Host: a.Host, Problem: problem}
		}
	}
	return nil
}

// transportProblem says what is wrong with one connection attempt, "" when nothing is.
func transportProblem(host string, tc *tls.Config) string {
	switch {
	case tc == nil && strings.HasPrefix(host, "/"):
		return "goes over a Unix socket, where pgx uses no TLS"
	case tc == nil:
		return "does not use TLS (sslmode=disable, or the plaintext attempt of sslmode=allow or prefer)"
	case tc.InsecureSkipVerify:
		// pgx verifies the chain alone for verify-ca (and require with sslrootcert) in a callback of its own.
		return "does not verify the server's host name or certificate (sslmode=prefer, allow, require or verify-ca)"
	}
	return ""
}

// loopback reports whether host is this machine: a loopback address, "localhost", a Unix socket.
func loopback(host string) bool {
	if strings.HasPrefix(host, "/") || strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// checkSessionTLS asks the server whether the session runs over TLS: a proxy or pooler between the
// client and the server may end TLS and go on in plaintext.
func checkSessionTLS(ctx context.Context, conn *pgx.Conn) error {
	var ssl bool
	err := conn.QueryRow(ctx, "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)").Scan(&ssl)
	if err != nil {
		return fmt.Errorf("db: check the session's TLS in pg_stat_ssl: %w", err)
	}
	if !ssl {
		return &TransportError{Host: conn.Config().Host,
			Problem: "is TLS, but the server reports the session without it in pg_stat_ssl (a proxy or pooler in between goes on in plaintext)"}
	}
	return nil
}
