package pgtest

import (
	"fmt"
	"net/url"
	"os"
	"sync"

	"github.com/tenantseal/tenantseal/internal/dsn"

	"github.com/testcontainers/testcontainers-go"

	"github.com/tenantseal/tenantseal/internal/pgtls"
)

// Every server the harness starts serves TLS with a certificate of one authority per process, for the
// loopback names; every connection string it hands out verifies it (sslmode=verify-full).

// authority is the process's certificate authority, made on first use.
var authority = sync.OnceValues(pgtls.NewAuthority)

// Where the certificates are inside a container: copies the entrypoint hands to the server.
const (
	containerCert = "/tmp/tenantseal-tls/server.crt"
	containerKey  = "/tmp/tenantseal-tls/server.key"
	containerCA   = "/tmp/tenantseal-tls/ca.crt"
)

// newTLSFiles writes a server certificate for the loopback names, a client certificate and the
// authority's certificate into a new temporary directory; [Server.Stop] removes it.
func newTLSFiles() (pgtls.Files, error) {
	a, err := authority()
	if err != nil {
		return pgtls.Files{}, fmt.Errorf("pgtest: %w", err)
	}
	dir, err := os.MkdirTemp("", "tenantseal-tls-")
	if err != nil {
		return pgtls.Files{}, fmt.Errorf("pgtest: %w", err)
	}
	f, err := a.WriteFiles(dir)
	if err != nil {
		os.RemoveAll(dir)
		return pgtls.Files{}, fmt.Errorf("pgtest: %w", err)
	}
	return f, nil
}

// tlsContainer copies the server's certificate, key and the authority's certificate into the container
// (readable by its uid 999: the entrypoint copies the key again with mode 0600) and names them to the
// entrypoint.
func tlsContainer(f pgtls.Files) testcontainers.CustomizeRequestOption {
	return func(req *testcontainers.GenericContainerRequest) error {
		if err := testcontainers.WithFiles(
			testcontainers.ContainerFile{HostFilePath: f.ServerCert, ContainerFilePath: containerCert, FileMode: 0o644},
			testcontainers.ContainerFile{HostFilePath: f.ServerKey, ContainerFilePath: containerKey, FileMode: 0o644},
			testcontainers.ContainerFile{HostFilePath: f.CA, ContainerFilePath: containerCA, FileMode: 0o644},
		)(req); err != nil {
			return err
		}
		return testcontainers.WithEnv(map[string]string{
			"TENANTSEAL_SSL_CERT": containerCert, "TENANTSEAL_SSL_KEY": containerKey, "TENANTSEAL_SSL_CA": containerCA,
		})(req)
	}
}

// superDSN is the superuser's connection string to host:port, verifying the server's certificate
// against the authority and its name.
func superDSN(password, hostPort, caFile string) string {
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {caFile}}
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password), Host: hostPort,
		Path: "/postgres", RawQuery: q.Encode()}
	return u.String()
}

// tlsKeys are the TLS settings of a connection string.
var tlsKeys = []string{"sslmode", "sslrootcert", "sslcert", "sslkey", "sslsni", "channel_binding"}

// TLSParams returns the TLS settings of the database's connection strings (sslmode=verify-full and
// sslrootcert for a server the harness started), for a test that writes a connection string of its own:
// Encode() for a URL's query.
func (d *Database) TLSParams() url.Values {
	s, err := dsn.Parse(d.SuperDSN)
	if err != nil {
		panic("pgtest: " + err.Error()) // the error never quotes the connection string
	}
	q := url.Values{}
	for _, k := range tlsKeys {
		if s.Has(k) {
			q.Set(k, s.Get(k))
		}
	}
	return q
}

// WithSettings returns connString, a URL or keyword/value, with settings changed, given as keyword,
// value pairs (an empty value deletes the keyword), as keyword/value.
func WithSettings(connString string, settings ...string) string {
	s, err := dsn.Parse(connString)
	if err != nil {
		panic("pgtest: " + err.Error()) // the error never quotes connString
	}
	for i := 0; i+1 < len(settings); i += 2 {
		if settings[i+1] == "" {
			s.Delete(settings[i])
		} else {
			s.Set(settings[i], settings[i+1])
		}
	}
	return s.ConnString()
}
