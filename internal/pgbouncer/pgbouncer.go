// Package pgbouncer runs Debian's pgbouncer on loopback in transaction pooling mode, for the tests and
// benchmarks that check tenantseal behind a pooler.
package pgbouncer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/pgtls"
)

// Options configure a pgbouncer in transaction pooling mode in front of a server.
type Options struct {
	// Upstream is a connection string of the server; its host and port are what pgbouncer connects to.
	Upstream string
	// Databases are the databases pgbouncer serves, each under its own name.
	Databases []string
	// PoolSize is the number of server connections per database and user: fewer than the clients is the
	// point of pooling. Default 4.
	PoolSize int
	// Users maps each role that may log in through pgbouncer to its password. pgbouncer uses the password
	// for SCRAM towards its clients and towards the server.
	Users map[string]string
	// ServerPlaintext connects to the server without TLS whatever Upstream says: a pooler that ends TLS,
	// for tests of what a client can detect.
	ServerPlaintext bool
}

// Bouncer is a pgbouncer process on loopback, started by [Start]. It requires TLS of its clients, with a
// certificate of its own authority for 127.0.0.1 that [Bouncer.DSN] verifies, and connects to the server
// with TLS verify-full against Upstream's sslrootcert when Upstream uses TLS.
type Bouncer struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// SingleSuffix names, appended to a database name, the same database with a pool of one server
	// connection: every client of it shares one server session, one after the other.
	SingleSuffix string
	cmd          *exec.Cmd
	dir          string
	done         chan error
	caFile       string // what clients verify pgbouncer's certificate with
}

// Binary is the pgbouncer executable: $TENANTSEAL_PGBOUNCER, else pgbouncer on PATH, else
// /usr/sbin/pgbouncer (where Debian's package puts it; `make pgbouncer` installs it).
func Binary() (string, error) {
	if p := os.Getenv("TENANTSEAL_PGBOUNCER"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", errors.New("pgbouncer: not found: run `make pgbouncer` (apt-get install pgbouncer) or set TENANTSEAL_PGBOUNCER")
}

// Start starts pgbouncer on a free loopback port in transaction pooling mode and waits until it
// accepts connections. Stop it with [Bouncer.Stop]. As root it runs as the user nobody: pgbouncer
// refuses to run as root.
func Start(ctx context.Context, opts Options) (*Bouncer, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	// A URL or a keyword/value string: pgconn reads both.
	up, err := pgconn.ParseConfig(opts.Upstream)
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: upstream: %w", err)
	}
	host, port := up.Host, strconv.Itoa(int(up.Port))
	if opts.PoolSize == 0 {
		opts.PoolSize = 4
	}
	listenPort, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tenantseal-pgbouncer")
	if err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	b := &Bouncer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(listenPort)), SingleSuffix: "_single", dir: dir, done: make(chan error, 1)}
	var dbs, users strings.Builder
	for _, name := range opts.Databases {
		fmt.Fprintf(&dbs, "%s = host=%s port=%s dbname=%s\n", name, host, port, name)
		fmt.Fprintf(&dbs, "%s%s = host=%s port=%s dbname=%s pool_size=1\n", name, b.SingleSuffix, host, port, name)
	}
	for u, pw := range opts.Users {
		fmt.Fprintf(&users, "%q %q\n", u, pw)
	}
	ini := fmt.Sprintf(`[databases]
%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = transaction
default_pool_size = %d
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
max_db_connections = 0
server_lifetime = 3600
server_idle_timeout = 600
ignore_startup_parameters = extra_float_digits
logfile = %s
`, dbs.String(), listenPort, filepath.Join(dir, "userlist.txt"), opts.PoolSize, filepath.Join(dir, "pgbouncer.log"))
	files := map[string]string{"pgbouncer.ini": ini, "userlist.txt": users.String(), "pgbouncer.log": ""}
	tlsIni, err := tlsSettings(dir, opts.Upstream, up.TLSConfig != nil && !opts.ServerPlaintext)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	files["pgbouncer.ini"] += tlsIni
	b.caFile = filepath.Join(dir, "ca.crt")
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer: %w", err)
		}
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		// pgbouncer will not run as root: hand it its files and let it switch to nobody.
		u, err := user.Lookup("nobody")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer: as root, it needs the user nobody: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		entries, err := os.ReadDir(dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer: %w", err)
		}
		paths := []string{dir}
		for _, e := range entries {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
		for _, p := range paths {
			if err := os.Chown(p, uid, gid); err != nil {
				os.RemoveAll(dir)
				return nil, fmt.Errorf("pgbouncer: %w", err)
			}
		}
		args = append([]string{"-u", "nobody"}, args...)
	}
	b.cmd = exec.Command(bin, args...)
	b.cmd.Stdout, b.cmd.Stderr = nil, nil
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgbouncer: start pgbouncer: %w", err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr, time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		select {
		case werr := <-b.done:
			b.done <- werr
			log := b.Log()
			b.Stop()
			return nil, fmt.Errorf("pgbouncer: exited (%v): %s", werr, log)
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log := b.Log()
			b.Stop()
			return nil, fmt.Errorf("pgbouncer: did not listen on %s within 15s: %s", b.Addr, log)
		}
	}
}

// tlsSettings writes pgbouncer's certificate for 127.0.0.1, of an authority of its own, into dir and
// returns the settings that require TLS of its clients and, if serverTLS, verify the server as upstream
// does (its sslrootcert; the system's roots without one).
func tlsSettings(dir, upstream string, serverTLS bool) (string, error) {
	f, err := pgtls.NewFiles(dir, "127.0.0.1")
	if err != nil {
		return "", fmt.Errorf("pgbouncer: %w", err)
	}
	ini := fmt.Sprintf("client_tls_sslmode = require\nclient_tls_cert_file = %s\nclient_tls_key_file = %s\n", f.ServerCert, f.ServerKey)
	if !serverTLS {
		return ini + "server_tls_sslmode = disable\n", nil
	}
	ini += "server_tls_sslmode = verify-full\n"
	up, err := dsn.Parse(upstream)
	if err != nil {
		return "", fmt.Errorf("pgbouncer: upstream: %w", err)
	}
	if ca := up.Get("sslrootcert"); ca != "" && ca != "system" {
		data, err := os.ReadFile(ca)
		if err != nil {
			return "", fmt.Errorf("pgbouncer: upstream's sslrootcert: %w", err)
		}
		// A copy of its own: as nobody it reads only what it owns.
		upstreamCA := filepath.Join(dir, "upstream-ca.crt")
		if err := os.WriteFile(upstreamCA, data, 0o600); err != nil {
			return "", fmt.Errorf("pgbouncer: %w", err)
		}
		ini += "server_tls_ca_file = " + upstreamCA + "\n"
	}
	return ini, nil
}

// DSN returns a connection string through pgbouncer for user to database, TLS verify-full with
// pgbouncer's certificate.
func (b *Bouncer) DSN(user, password, database string) string {
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {b.caFile}}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: b.Addr, Path: "/" + database, RawQuery: q.Encode()}
	return u.String()
}

// Log returns pgbouncer's log so far, for failure messages.
func (b *Bouncer) Log() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
	return strings.TrimSpace(string(data))
}

// Stop ends pgbouncer (SIGINT: immediate shutdown) and removes its files.
func (b *Bouncer) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			b.cmd.Process.Kill()
			<-b.done
		}
		b.cmd = nil
	}
	os.RemoveAll(b.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgbouncer: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
