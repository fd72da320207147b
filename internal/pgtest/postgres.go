package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/tenantseal/tenantseal/internal/pgtls"
)

// Images, in order of preference when TENANTSEAL_PG_IMAGE is not set.
const (
	OfficialImage = "postgres:17-alpine"
	// LocalImage is built by `make pg-image` from the machine's Debian PostgreSQL when no registry is
	// reachable.
	LocalImage = "tenantseal/postgres:15-local"
	// ContainerLabel marks every container the harness starts, so `make test` can remove leftovers of a
	// killed run.
	ContainerLabel = "dev.tenantseal.harness"
)

// Server is a PostgreSQL server for tests: a container the harness started, or the server named by
// TENANTSEAL_TEST_DSN.
type Server struct {
	// SuperDSN connects as a superuser to the postgres database.
	SuperDSN string
	// container is nil when TENANTSEAL_TEST_DSN names the server.
	container testcontainers.Container
	// Image the container runs, empty without a container.
	Image string
	// TLS are the certificate files of a server the harness started (its connection strings name TLS.CA
	// as sslrootcert); zero for the server of TENANTSEAL_TEST_DSN.
	TLS pgtls.Files
}

// StartServer starts PostgreSQL in a container, or uses TENANTSEAL_TEST_DSN when set. The image is
// TENANTSEAL_PG_IMAGE when set, else the official postgres:17-alpine when present or pullable, else
// LocalImage. Stop it with [Server.Stop].
func StartServer(ctx context.Context) (*Server, error) { return startServer(ctx) }

// startServer is StartServer; extra (a network, say) customizes the container after the defaults.
func startServer(ctx context.Context, extra ...testcontainers.ContainerCustomizer) (*Server, error) {
	if dsn := os.Getenv("TENANTSEAL_TEST_DSN"); dsn != "" {
		if err := waitReady(ctx, dsn, 10*time.Second); err != nil {
			return nil, fmt.Errorf("pgtest: TENANTSEAL_TEST_DSN: %w", err)
		}
		return &Server{SuperDSN: dsn}, nil
	}
	prepareDocker()
	image, err := chooseImage(ctx)
	if err != nil {
		return nil, err
	}
	files, err := newTLSFiles()
	if err != nil {
		return nil, err
	}
	password := randomHex(16)
	opts := []testcontainers.ContainerCustomizer{
		tlsContainer(files),
		testcontainers.WithEnv(map[string]string{
			"POSTGRES_USER":     "postgres",
			"POSTGRES_PASSWORD": password,
			"POSTGRES_DB":       "postgres",
		}),
		testcontainers.WithExposedPorts("5432/tcp"),
		// Durability is not under test; speed is welcome.
		testcontainers.WithCmdArgs("-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=300"),
		testcontainers.WithLabels(map[string]string{ContainerLabel: "1"}),
		testcontainers.WithWaitStrategyAndDeadline(60*time.Second, wait.ForListeningPort("5432/tcp")),
	}
	if image == LocalImage {
		// initdb on the engine's overlay storage takes seconds; on tmpfs, one.
		opts = append(opts, testcontainers.WithTmpfs(map[string]string{
			"/var/lib/postgresql/data": "rw,uid=999,gid=999,mode=0700"}))
	}
	c, err := testcontainers.Run(ctx, image, append(opts, extra...)...)
	if err != nil {
		if c != nil {
			_ = c.Terminate(context.WithoutCancel(ctx))
		}
		os.RemoveAll(files.Dir)
		return nil, fmt.Errorf("pgtest: start %s: %w", image, err)
	}
	s := &Server{container: c, Image: image, TLS: files}
	endpoint, err := c.PortEndpoint(ctx, "5432/tcp", "")
	if err != nil {
		s.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s.SuperDSN = superDSN(password, endpoint, files.CA)
	if err := waitReady(ctx, s.SuperDSN, 30*time.Second); err != nil {
		s.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgtest: %s never accepted connections: %w", image, err)
	}
	return s, nil
}

// Started reports whether the harness started the server (a container), as opposed to using the
// server TENANTSEAL_TEST_DSN names.
func (s *Server) Started() bool { return s != nil && s.container != nil }

// Stop removes the container, if the harness started one, and its certificate files.
func (s *Server) Stop(ctx context.Context) error {
	if s == nil || s.container == nil {
		return nil
	}
	err := s.container.Terminate(ctx)
	os.RemoveAll(s.TLS.Dir)
	return err
}

// prepareDocker sets testcontainers up for this machine before any container starts.
// It runs once per process: tests start servers concurrently.
func prepareDocker() { dockerOnce.Do(setUpDocker) }

var dockerOnce sync.Once

func setUpDocker() {
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		// The reaper image cannot be pulled without a registry; Stop and the Makefile clean up instead.
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" && !strings.HasPrefix(os.Getenv("DOCKER_HOST"), "tcp://") {
		// A local engine publishes ports on loopback; testcontainers would otherwise guess the default
		// gateway when it believes it runs inside a container.
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
	// Quiet unless something fails: errors carry what matters.
	tclog.SetDefault(tclog.NewNoopLogger())
}

func chooseImage(ctx context.Context) (string, error) {
	if img := os.Getenv("TENANTSEAL_PG_IMAGE"); img != "" {
		return img, nil
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return "", fmt.Errorf("pgtest: docker: %w", err)
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, OfficialImage); err == nil {
		return OfficialImage, nil
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if resp, err := cli.ImagePull(pctx, OfficialImage, client.ImagePullOptions{}); err == nil {
		_, err = io.Copy(io.Discard, resp)
		resp.Close()
		if _, ierr := cli.ImageInspect(ctx, OfficialImage); err == nil && ierr == nil {
			return OfficialImage, nil
		}
	}
	if _, err := cli.ImageInspect(ctx, LocalImage); err == nil {
		return LocalImage, nil
	}
	return "", fmt.Errorf("pgtest: neither %s nor %s is present: run `make pg-image`, or set TENANTSEAL_PG_IMAGE or TENANTSEAL_TEST_DSN", OfficialImage, LocalImage)
}

func waitReady(ctx context.Context, dsn string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := pgx.Connect(cctx, dsn)
		if err == nil {
			err = conn.Ping(cctx)
			conn.Close(context.WithoutCancel(ctx))
		}
		ccancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
