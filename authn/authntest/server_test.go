package authntest_test

import (
	"net"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/authn/authntest"
)

// A client's connection that never sent a request (an HTTP transport's spare dial) does not make Close
// fail: net/http's graceful shutdown waits up to five seconds for such a connection, as long as Close
// waited before giving up.
func TestCloseWithAConnectionThatSentNothing(t *testing.T) {
	s, err := authntest.NewServer("127.0.0.1:0", authntest.Options{Issuers: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
