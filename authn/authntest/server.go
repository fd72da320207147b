package authntest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Options configure a [Server].
type Options struct {
	// Issuers names the issuers to serve, each at http://<address>/<name>.
	Issuers []string
	// DevTokens serves each issuer's [Issuer.DevTokenHandler] at <issuer>/dev-token.
	DevTokens bool
}

// Server serves issuers on one loopback listener.
type Server struct {
	srv     *http.Server
	done    chan error
	base    string
	issuers map[string]*Issuer
}

// NewServer listens on addr ("127.0.0.1:0" for any free port; a loopback address, since the issuers
// sign anything) and serves the issuers of o.
func NewServer(addr string, o Options) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("authntest: %q is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("authntest: %w", err)
	}
	s := &Server{base: "http://" + ln.Addr().String(), issuers: map[string]*Issuer{}, done: make(chan error, 1)}
	mux := http.NewServeMux()
	for _, name := range o.Issuers {
		iss, err := NewIssuer(s.base + "/" + name)
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.issuers[name] = iss
		mux.Handle("/"+name+"/", iss.Handler())
		if o.DevTokens {
			mux.Handle("POST /"+name+"/dev-token", iss.DevTokenHandler())
		}
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// URL returns http://<address>.
func (s *Server) URL() string { return s.base }

// Issuer returns the issuer named name, or nil.
func (s *Server) Issuer(name string) *Issuer { return s.issuers[name] }

// Close stops the server: requests under way get a second to finish, then every connection is closed.
// A test identity provider has nothing to drain, and net/http's graceful shutdown alone would wait up to
// five seconds for a client's connection that never sent a request (a transport's spare dial).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		if cerr := s.srv.Close(); cerr != nil {
			return cerr
		}
	}
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return nil
}
