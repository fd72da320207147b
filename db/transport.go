package db

import (
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/transport"
)

// ErrInsecureTransport means a connection would not be TLS with the server's certificate and host name
// verified (sslmode=verify-full), or the server reports a session without TLS; see [TransportError].
// Use errors.Is.
var ErrInsecureTransport = tenantseal.ErrInsecureTransport

// TransportError reports a connection that [Open] (or [CheckTransport]) refuses, and how to fix it. It
// names the host, never anything else of the connection string.
type TransportError = tenantseal.TransportError

// EnvAllowPlaintextLoopback is the environment variable with which the tenantseal command allows
// plaintext (and unverified TLS) connections to loopback hosts, as Config.AllowPlaintextLoopback does.
const EnvAllowPlaintextLoopback = tenantseal.EnvAllowPlaintextLoopback

// CheckTransport refuses, with a [*TransportError], a connection configuration of which any attempt
// (the host itself and every fallback: pgx makes fallbacks for several hosts and for sslmode=allow and
// prefer) would not be TLS that verifies the server's certificate and host name, which only
// sslmode=verify-full (or sslrootcert=system) gives. With allowPlaintextLoopback, an attempt to a
// loopback host (127.0.0.0/8, ::1, "localhost", a Unix socket) may be anything.
func CheckTransport(cfg *pgconn.Config, allowPlaintextLoopback bool) error {
	return transport.Check(cfg, allowPlaintextLoopback)
}
