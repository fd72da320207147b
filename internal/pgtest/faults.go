package pgtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// StartFaultServer starts PostgreSQL in a container for fault injection: its data lives in the container
// (not on tmpfs) and survives a stop or a kill, its port on 127.0.0.1 stays the same across restarts, and
// commits are durable (no fsync=off, no synchronous_commit=off), so that a pool can reconnect to the same
// address and find every committed row. It needs a Docker engine even when TENANTSEAL_TEST_DSN is set.
// Stop it with [Server.Stop].
func StartFaultServer(ctx context.Context) (*Server, error) {
	prepareDocker()
	image, err := chooseImage(ctx)
	if err != nil {
		return nil, err
	}
	port, err := stablePort()
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
		testcontainers.WithEnv(map[string]string{
			"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "postgres",
			// Durability of the data is under test, not of initdb's own files.
			"POSTGRES_INITDB_ARGS": "--no-sync",
		}),
		testcontainers.WithExposedPorts("5432/tcp"),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}}}
		}),
		testcontainers.WithCmdArgs("-c", "max_connections=100"),
		testcontainers.WithLabels(map[string]string{ContainerLabel: "1"}),
		testcontainers.WithWaitStrategyAndDeadline(90*time.Second, wait.ForListeningPort("5432/tcp")),
	)
	if err != nil {
		if c != nil {
			_ = c.Terminate(context.WithoutCancel(ctx))
		}
		os.RemoveAll(files.Dir)
		return nil, fmt.Errorf("pgtest: start %s: %w", image, err)
	}
	s := &Server{container: c, Image: image, TLS: files}
	s.SuperDSN = superDSN(password, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), files.CA)
	if err := waitReady(ctx, s.SuperDSN, 60*time.Second); err != nil {
		s.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgtest: %s never accepted connections: %w", image, err)
	}
	return s, nil
}

func (s *Server) docker(ctx context.Context, what string, op func(*client.Client, string) error) error {
	if s.container == nil {
		return fmt.Errorf("pgtest: %s: the server is not a container the harness started", what)
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("pgtest: docker: %w", err)
	}
	defer cli.Close()
	if err := op(cli.Client, s.container.GetContainerID()); err != nil {
		return fmt.Errorf("pgtest: %s: %w", what, err)
	}
	return nil
}

// Pause freezes every process of the server's container: connections stay open and hang.
func (s *Server) Pause(ctx context.Context) error {
	return s.docker(ctx, "pause", func(c *client.Client, id string) error {
		_, err := c.ContainerPause(ctx, id, client.ContainerPauseOptions{})
		return err
	})
}

// Unpause resumes a paused server.
func (s *Server) Unpause(ctx context.Context) error {
	return s.docker(ctx, "unpause", func(c *client.Client, id string) error {
		_, err := c.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
		return err
	})
}

// Kill sends SIGKILL to the server's container: every process dies at once, as in a power cut of the
// process tree (the kernel's page cache survives).
// Kill returns once the container has stopped.
func (s *Server) Kill(ctx context.Context) error {
	if err := s.docker(ctx, "kill", func(c *client.Client, id string) error {
		_, err := c.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"})
		return err
	}); err != nil {
		return err
	}
	// The engine sends the signal and returns: a Restart before the container is down would find it
	// still running and then lose it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := s.container.State(ctx)
		if err != nil {
			return fmt.Errorf("pgtest: kill: %w", err)
		}
		if !st.Running {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: kill: the container still runs 30s after SIGKILL")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Halt stops the container the way an orchestrator does: the stop signal (a fast shutdown), then SIGKILL
// after timeout.
func (s *Server) Halt(ctx context.Context, timeout time.Duration) error {
	if s.container == nil {
		return fmt.Errorf("pgtest: halt: the server is not a container the harness started")
	}
	return s.container.Stop(ctx, &timeout)
}

// Restart starts a halted or killed container again and waits until it accepts connections.
func (s *Server) Restart(ctx context.Context) error {
	if s.container == nil {
		return fmt.Errorf("pgtest: restart: the server is not a container the harness started")
	}
	if err := s.container.Start(ctx); err != nil {
		return fmt.Errorf("pgtest: restart: %w; server log: %s", err, s.LogTail(ctx))
	}
	if err := waitReady(ctx, s.SuperDSN, 60*time.Second); err != nil {
		return fmt.Errorf("pgtest: restart: %w; server log: %s", err, s.LogTail(context.WithoutCancel(ctx)))
	}
	return nil
}

// LogTail returns the last lines of the server's log on one line, for failure messages.
func (s *Server) LogTail(ctx context.Context) string {
	rc, err := s.container.Logs(ctx)
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, " | ")
}

// stablePort picks a free loopback port below the kernel's ephemeral range, so that while the server is
// down no outgoing connection of this machine can be given the port that its restart must bind again.
func stablePort() (int, error) {
	for range 200 {
		port := 20000 + rand.IntN(10000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("pgtest: no free port between 20000 and 30000")
}
