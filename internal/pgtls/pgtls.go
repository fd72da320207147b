// Package pgtls makes the certificates of a throwaway PostgreSQL deployment: a certificate authority, a
// server certificate for the loopback names and a client certificate, written as PEM files. It is for
// tests and the development binary: the keys live in temporary files and in memory, never anywhere that
// outlasts the run.
package pgtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// LoopbackHosts are the names a server certificate from [Authority.WriteFiles] is valid for by default.
var LoopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// ClientCommonName is the subject common name of the client certificate, which PostgreSQL reports in
// pg_stat_ssl.client_dn.
const ClientCommonName = "tenantseal-test-client"

// Authority is a certificate authority held in memory. Its key signs the certificates it issues and is
// never written out.
type Authority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// NewAuthority creates a certificate authority valid for a day.
func NewAuthority() (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pgtls: %w", err)
	}
	tmpl, err := template("tenantseal test CA")
	if err != nil {
		return nil, err
	}
	// A name of its own: a verifier given another authority's certificate then reports an unknown
	// authority, not a signature that fails under the same name.
	id := tmpl.SerialNumber.Text(16)
	tmpl.Subject.CommonName += " " + id[:min(8, len(id))]
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pgtls: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pgtls: %w", err)
	}
	return &Authority{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// NewFiles writes the files of [Authority.WriteFiles] for a new authority, which is then forgotten:
// nothing else can ever be signed by it.
func NewFiles(dir string, hosts ...string) (Files, error) {
	a, err := NewAuthority()
	if err != nil {
		return Files{}, err
	}
	return a.WriteFiles(dir, hosts...)
}

// CertPEM is the authority's certificate, PEM-encoded.
func (a *Authority) CertPEM() []byte { return a.certPEM }

// Files are the PEM files that [Authority.WriteFiles] wrote. The key files have mode 0600.
type Files struct {
	Dir        string // the directory that holds them
	CA         string // the authority's certificate: sslrootcert, ssl_ca_file
	ServerCert string // ssl_cert_file
	ServerKey  string // ssl_key_file
	ClientCert string // sslcert, subject CN=ClientCommonName
	ClientKey  string // sslkey
}

// WriteFiles issues a server certificate for hosts (names or IP addresses; LoopbackHosts when none) and a
// client certificate, and writes them, their keys and the authority's certificate into dir.
func (a *Authority) WriteFiles(dir string, hosts ...string) (Files, error) {
	if len(hosts) == 0 {
		hosts = LoopbackHosts
	}
	f := Files{Dir: dir, CA: filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.key"),
		ClientCert: filepath.Join(dir, "client.crt"), ClientKey: filepath.Join(dir, "client.key")}
	if err := os.WriteFile(f.CA, a.certPEM, 0o644); err != nil {
		return Files{}, fmt.Errorf("pgtls: %w", err)
	}
	server, err := template(hosts[0])
	if err != nil {
		return Files{}, err
	}
	server.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			server.IPAddresses = append(server.IPAddresses, ip)
		} else {
			server.DNSNames = append(server.DNSNames, h)
		}
	}
	if err := a.issue(server, f.ServerCert, f.ServerKey); err != nil {
		return Files{}, err
	}
	client, err := template(ClientCommonName)
	if err != nil {
		return Files{}, err
	}
	client.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if err := a.issue(client, f.ClientCert, f.ClientKey); err != nil {
		return Files{}, err
	}
	return f, nil
}

// issue signs a certificate from tmpl for a new key and writes both.
func (a *Authority) issue(tmpl *x509.Certificate, certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pgtls: %w", err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return fmt.Errorf("pgtls: create certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pgtls: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("pgtls: %w", err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("pgtls: %w", err)
	}
	return nil
}

// template is a certificate valid from an hour ago (clocks of containers differ) for a day.
func template(commonName string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pgtls: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}, nil
}
