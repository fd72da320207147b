package pgtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/tenantseal/tenantseal/internal/pgtls"
)

func TestWriteFiles(t *testing.T) {
	a, err := pgtls.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(a.CertPEM()) {
		t.Fatal("the authority's certificate does not parse")
	}
	leaf := func(certFile, keyFile string) *x509.Certificate {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return pair.Leaf
	}
	server := leaf(f.ServerCert, f.ServerKey)
	for _, host := range pgtls.LoopbackHosts {
		if _, err := server.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{DNSName: "db.example.com", Roots: roots}); err == nil {
		t.Error("the server certificate verifies for db.example.com, want it valid for the loopback names only")
	}
	other, err := pgtls.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	otherRoots := x509.NewCertPool()
	otherRoots.AppendCertsFromPEM(other.CertPEM())
	if _, err := server.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: otherRoots}); err == nil {
		t.Error("the server certificate verifies against another authority")
	}
	client := leaf(f.ClientCert, f.ClientKey)
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if client.Subject.CommonName != pgtls.ClientCommonName {
		t.Errorf("got client CN %q, want %q", client.Subject.CommonName, pgtls.ClientCommonName)
	}
	for _, key := range []string{f.ServerKey, f.ClientKey} {
		st, err := os.Stat(key)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: got mode %v, want 0600", key, st.Mode().Perm())
		}
	}
}
