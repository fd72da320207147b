package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/tenantseal/tenantseal/internal/pgtls"
)

// Benchmark servers run in a container on the host's network: clients reach them on loopback directly,
// not through Docker's userland proxy, whose round trip (about 200 us here) would hide what the server
// itself costs.

// BenchLabel marks the benchmark servers: `make bench` removes their leftovers, `make test` does not
// touch them (nor a benchmark the test servers, which ContainerLabel marks).
const BenchLabel = "dev.tenantseal.bench"

// serverArgs are the settings of every benchmark server: durability is not measured.
var serverArgs = []string{"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
	"-c", "max_connections=300", "-c", "listen_addresses=127.0.0.1"}

// StartHostServer starts PostgreSQL in a container on the host's network, listening on a free port of
// 127.0.0.1 only, with the image StartServer would choose. Stop it with [Server.Stop].
func StartHostServer(ctx context.Context) (*Server, error) {
	prepareDocker()
	image, err := chooseImage(ctx)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	files, err := newTLSFiles()
	if err != nil {
		return nil, err
	}
	password := randomHex(16)
	c, err := testcontainers.Run(ctx, image,
		tlsContainer(files),
		testcontainers.WithEnv(map[string]string{"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "postgres"}),
		testcontainers.WithCmdArgs(append(slices.Clone(serverArgs), "-c", "port="+strconv.Itoa(port))...),
		testcontainers.WithLabels(map[string]string{BenchLabel: "1"}),
		testcontainers.WithTmpfs(map[string]string{"/var/lib/postgresql/data": "rw,uid=999,gid=999,mode=0700"}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "host" }),
		testcontainers.WithWaitStrategyAndDeadline(60*time.Second, wait.ForLog("database system is ready to accept connections")),
	)
	if err != nil {
		if c != nil {
			_ = c.Terminate(context.WithoutCancel(ctx))
		}
		os.RemoveAll(files.Dir)
		return nil, fmt.Errorf("pgtest: start %s on the host's network: %w", image, err)
	}
	s := &Server{container: c, Image: image, TLS: files, SuperDSN: loopbackDSN(password, port, files.CA)}
	if err := waitReady(ctx, s.SuperDSN, 30*time.Second); err != nil {
		s.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgtest: %s never accepted connections: %w", image, err)
	}
	return s, nil
}

// CallgrindServer is PostgreSQL on the host's network that runs at full speed until [Instrument], and
// from then on with every process under valgrind's callgrind, which counts the instructions each
// backend executed when it exits. For instruction counts, which stay stable on a noisy machine.
type CallgrindServer struct {
	SuperDSN string
	c        testcontainers.Container
	dir      string // the host directory the counts are written to
	tls      pgtls.Files
}

// Valgrind's files on the host (Debian's package), mounted into the container: the image's libc is the
// host's, so they run there as they are.
const (
	valgrindBin = "/usr/bin/valgrind.bin"
	valgrindLib = "/usr/libexec/valgrind"
)

// callgrindScript initialises a cluster, runs it normally until /tmp/instrument exists, then again
// under callgrind, both times serving TLS with the certificate of $TENANTSEAL_SSL_CERT. It runs as the
// image's postgres user.
const callgrindScript = `set -e
D=/tmp/pgdata
printf '%s\n' "$PGPASSWORD" >/tmp/pw
initdb -D $D --no-locale -E UTF8 -U postgres --auth-host=scram-sha-256 --auth-local=trust --pwfile=/tmp/pw >/dev/null
rm /tmp/pw
cp "$TENANTSEAL_SSL_CERT" $D/server.crt
cat "$TENANTSEAL_SSL_KEY" >$D/server.key
chmod 0600 $D/server.key
set -- -c ssl=on -c ssl_cert_file=$D/server.crt -c ssl_key_file=$D/server.key "$@"
postgres -D $D "$@" & pid=$!
while [ ! -f /tmp/instrument ]; do sleep 0.1; done
kill -INT $pid; wait $pid || true
exec valgrind.bin --tool=callgrind --callgrind-out-file=/counts/cg.%p --dump-line=no --compress-strings=no --compress-pos=no postgres -D $D "$@"
`

// StartCallgrindServer starts a [CallgrindServer]. It needs valgrind installed on the host.
func StartCallgrindServer(ctx context.Context) (*CallgrindServer, error) {
	if _, err := os.Stat(valgrindBin); err != nil {
		return nil, fmt.Errorf("pgtest: valgrind is not installed (%s): apt-get install valgrind", valgrindBin)
	}
	prepareDocker()
	image, err := chooseImage(ctx)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tenantseal-callgrind-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o777); err != nil { // written by the container's uid 999
		os.RemoveAll(dir)
		return nil, err
	}
	files, err := newTLSFiles()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	password := randomHex(16)
	args := append(slices.Clone(serverArgs), "-c", "port="+strconv.Itoa(port), "-c", "autovacuum=off")
	c, err := testcontainers.Run(ctx, image,
		tlsContainer(files),
		testcontainers.WithEnv(map[string]string{"PGPASSWORD": password}),
		testcontainers.WithEntrypoint("/bin/sh", "-c", callgrindScript, "callgrind"),
		testcontainers.WithCmd(args...),
		testcontainers.WithLabels(map[string]string{BenchLabel: "1"}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.NetworkMode = "host"
			hc.Binds = append(hc.Binds, valgrindBin+":"+valgrindBin+":ro", valgrindLib+":"+valgrindLib+":ro", dir+":/counts")
		}),
		testcontainers.WithWaitStrategyAndDeadline(60*time.Second, wait.ForLog("database system is ready to accept connections")),
	)
	if err != nil {
		if c != nil {
			_ = c.Terminate(context.WithoutCancel(ctx))
		}
		os.RemoveAll(dir)
		os.RemoveAll(files.Dir)
		return nil, fmt.Errorf("pgtest: start %s for callgrind: %w", image, err)
	}
	s := &CallgrindServer{SuperDSN: loopbackDSN(password, port, files.CA), c: c, dir: dir, tls: files}
	if err := waitReady(ctx, s.SuperDSN, 30*time.Second); err != nil {
		s.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgtest: %s never accepted connections: %w", image, err)
	}
	return s, nil
}

// DSN is the superuser's connection string.
func (s *CallgrindServer) DSN() string { return s.SuperDSN }

// Instrument restarts the server under callgrind and waits until it accepts connections again (slowly:
// every instruction is counted).
func (s *CallgrindServer) Instrument(ctx context.Context) error {
	code, _, err := s.c.Exec(ctx, []string{"touch", "/tmp/instrument"})
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d", code)
	}
	if err != nil {
		return fmt.Errorf("pgtest: instrument: %w", err)
	}
	// The first count file is the postmaster's startup process: the server under callgrind is up.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if names, _ := filepath.Glob(filepath.Join(s.dir, "cg.*")); len(names) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("pgtest: the server did not come back under callgrind")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return waitReady(ctx, s.SuperDSN, 2*time.Minute)
}

// Counts returns the instructions of every process that has exited under callgrind, by file name.
func (s *CallgrindServer) Counts() (map[string]int64, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "cg.*"))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		// A file being written has no summary line yet: counted once it has.
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "summary: "); ok {
				if ir, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					out[filepath.Base(n)] = ir
				}
			}
		}
	}
	return out, nil
}

// Stop removes the container, the counts and the certificate files.
func (s *CallgrindServer) Stop(ctx context.Context) error {
	err := s.c.Terminate(ctx)
	os.RemoveAll(s.dir)
	os.RemoveAll(s.tls.Dir)
	return err
}

func loopbackDSN(password string, port int, caFile string) string {
	return superDSN(password, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), caFile)
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
