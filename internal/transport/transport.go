// Package transport is the one rule of every pool tenantseal opens: TLS that verifies the server's
// certificate and host name, checked in the connection configuration before connecting and in
// pg_stat_ssl on every new session.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantseal/tenantseal"
)

// Pool checks pc's connection configuration with [Check] and returns a copy of pc whose every new
// connection first checks its session with [SessionTLS] (unless plaintext to loopback is allowed),
// before pc's own AfterConnect.
func Pool(pc *pgxpool.Config, allowPlaintextLoopback bool) (*pgxpool.Config, error) {
	if err := Check(&pc.ConnConfig.Config, allowPlaintextLoopback); err != nil {
		return nil, err
	}
	pc = pc.Copy()
	if allowPlaintextLoopback {
		return pc, nil
	}
	after := pc.AfterConnect
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if err := SessionTLS(ctx, conn); err != nil {
			return err
		}
		if after != nil {
			return after(ctx, conn)
		}
		return nil
	}
	return pc, nil
}

// Check refuses, with a [*tenantseal.TransportError], a connection configuration of which any attempt
// (the host itself and every fallback: pgx makes fallbacks for several hosts and for sslmode=allow and
// prefer) would not be TLS that verifies the server's certificate and host name, which only
// sslmode=verify-full (or sslrootcert=system) gives. With allowPlaintextLoopback, an attempt to a
// loopback host (127.0.0.0/8, ::1, "localhost", a Unix socket) may be anything.
func Check(cfg *pgconn.Config, allowPlaintextLoopback bool) error {
	if cfg == nil {
		return errors.New("tenantseal: nil connection config")
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
			return &tenantseal.TransportError{Host: a.Host, Problem: problem}
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

// SessionTLS asks the server whether the session runs over TLS: a proxy or pooler between the
// client and the server may end TLS and go on in plaintext.
func SessionTLS(ctx context.Context, conn *pgx.Conn) error {
	var ssl bool
	err := conn.QueryRow(ctx, "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)").Scan(&ssl)
	if err != nil {
		return fmt.Errorf("tenantseal: check the session's TLS in pg_stat_ssl: %w", err)
	}
	if !ssl {
		return &tenantseal.TransportError{Host: conn.Config().Host,
			Problem: "is TLS, but the server reports the session without it in pg_stat_ssl (a proxy or pooler in between goes on in plaintext)"}
	}
	return nil
}
