package tenantseal

import (
	"errors"
	"fmt"
)

// ErrInsecureTransport means a connection would not be TLS with the server's certificate and host name
// verified (sslmode=verify-full), or the server reports a session without TLS; see [TransportError].
// Use errors.Is.
var ErrInsecureTransport = errors.New("tenantseal: connection is not verified TLS")

// EnvAllowPlaintextLoopback is the environment variable with which the tenantseal command allows
// plaintext (and unverified TLS) connections to loopback hosts, as AllowPlaintextLoopback in db.Config
// and audit.Config does.
const EnvAllowPlaintextLoopback = "TENANTSEAL_ALLOW_PLAINTEXT_LOOPBACK"

// TransportError reports a connection that the pool (db.Open), the audit writer or the tenantseal
// command refuses, and how to fix it. It names the host, never anything else of the connection string.
type TransportError struct {
	Host    string // the host name, address or socket directory
	Problem string // e.g. "does not use TLS (sslmode=disable)"
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("tenantseal: refusing to connect to %s: the connection %s; use sslmode=verify-full with "+
		"sslrootcert=<the CA file of the server's certificate> and a host name that the certificate names, or, for "+
		"development on this machine only, allow plaintext to loopback (AllowPlaintextLoopback in db.Config and "+
		"audit.Config; the tenantseal command: %s=1)", e.Host, e.Problem, EnvAllowPlaintextLoopback)
}

// Unwrap makes errors.Is(err, ErrInsecureTransport) true.
func (e *TransportError) Unwrap() error { return ErrInsecureTransport }
