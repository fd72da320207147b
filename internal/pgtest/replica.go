package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/dsn"
)

// primaryAlias is the primary's name on the replica set's network.
const primaryAlias = "primary"

// ErrNoContainers means a replica set was asked for while TENANTSEAL_TEST_DSN names the server: the
// harness starts a primary and its standbys itself, as containers.
var ErrNoContainers = errors.New("pgtest: a replica set needs containers of its own; TENANTSEAL_TEST_DSN names a single server")

// ReplicaSet is a primary and its streaming hot standbys, containers of the same image on a Docker
// network of their own. The standbys are made with pg_basebackup -R from the primary.
type ReplicaSet struct {
	Primary *Server
	// Replica is the first standby, shared by the tests of a process; [ReplicaSet.StartReplica] adds
	// others for tests that stop theirs.
	Replica *Server
	// Cluster is the bootstrapped template on the primary; its databases reach the standbys by
	// replication.
	Cluster *Cluster

	network  *testcontainers.DockerNetwork
	password string
	settings []string // the primary's command-line settings, which a standby must match or exceed

	mu       sync.Mutex
	replicas []*Server
}

// StartReplicaSet starts a primary, allows replication connections to it, bootstraps a cluster on it
// and starts one standby. Stop it with [ReplicaSet.Stop].
func StartReplicaSet(ctx context.Context) (*ReplicaSet, error) {
	if os.Getenv("TENANTSEAL_TEST_DSN") != "" {
		return nil, ErrNoContainers
	}
	prepareDocker()
	rs := &ReplicaSet{}
	if err := rs.start(ctx); err != nil {
		if serr := rs.Stop(context.WithoutCancel(ctx)); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return rs, nil
}

func (rs *ReplicaSet) start(ctx context.Context) (err error) {
	if rs.network, err = tcnetwork.New(ctx, tcnetwork.WithLabels(map[string]string{ContainerLabel: "1"})); err != nil {
		return fmt.Errorf("pgtest: replica set network: %w", err)
	}
	if rs.Primary, err = startServer(ctx, tcnetwork.WithNetwork([]string{primaryAlias}, rs.network)); err != nil {
		return err
	}
	if err := rs.preparePrimary(ctx); err != nil {
		return err
	}
	if rs.Cluster, err = NewCluster(ctx, rs.Primary); err != nil {
		return err
	}
	rs.Replica, err = rs.StartReplica(ctx)
	return err
}

// preparePrimary allows replication connections to the primary and reads the settings a standby needs.
func (rs *ReplicaSet) preparePrimary(ctx context.Context) error {
	// The image allows password logins to every database, which does not cover replication.
	code, out, err := rs.Primary.container.Exec(ctx, []string{"sh", "-c",
		`printf '\nhost replication all all scram-sha-256\n' >>"${PGDATA:-/var/lib/postgresql/data}/pg_hba.conf"`})
	if err == nil && code != 0 {
		msg, _ := io.ReadAll(out)
		err = fmt.Errorf("exit %d: %s", code, strings.TrimSpace(string(msg)))
	}
	if err != nil {
		return fmt.Errorf("pgtest: allow replication on the primary: %w", err)
	}
	conn, err := pgx.Connect(ctx, rs.Primary.SuperDSN)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The standbys use no replication slot: without WAL kept back, a standby whose stream broke off
	// while a checkpoint recycled the segments it still needs could never catch up again.
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET wal_keep_size = '1GB'"); err != nil {
		return fmt.Errorf("pgtest: keep WAL for the standbys: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("pgtest: reload the primary's configuration: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT name || '=' || setting FROM pg_settings WHERE source = 'command line' ORDER BY name")
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if rs.settings, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	s, err := dsn.Parse(rs.Primary.SuperDSN)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	rs.password = s.Get("password")
	return nil
}

// StartReplica starts another hot standby of the primary, removed with the set.
func (rs *ReplicaSet) StartReplica(ctx context.Context) (*Server, error) {
	const data = "/var/lib/postgresql/data"
	// pg_basebackup -R writes the primary's address into the standby's configuration; PGPASSWORD, in the
	// environment of the server it starts, is what the WAL receiver logs in with.
	script := `set -e
pg_basebackup -h ` + primaryAlias + ` -p 5432 -U postgres -D "$PGDATA" -R -X stream -c fast
exec /usr/local/bin/docker-entrypoint.sh postgres "$@"`
	args := []string{"-c", "hot_standby=on"}
	for _, s := range rs.settings {
		args = append(args, "-c", s)
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithEnv(map[string]string{"PGDATA": data, "PGPASSWORD": rs.password}),
		testcontainers.WithEntrypoint(append([]string{"sh", "-c", script, "standby"}, args...)...),
		testcontainers.WithExposedPorts("5432/tcp"),
		testcontainers.WithLabels(map[string]string{ContainerLabel: "1"}),
		tcnetwork.WithNetwork(nil, rs.network),
		testcontainers.WithWaitStrategyAndDeadline(90*time.Second, wait.ForListeningPort("5432/tcp")),
	}
	if rs.Primary.Image == LocalImage {
		opts = append(opts, testcontainers.WithTmpfs(map[string]string{data: "rw,uid=999,gid=999,mode=0700"}))
	}
	c, err := testcontainers.Run(ctx, rs.Primary.Image, opts...)
	if err != nil {
		if c != nil {
			_ = c.Terminate(context.WithoutCancel(ctx))
		}
		return nil, fmt.Errorf("pgtest: start a standby: %w", err)
	}
	s := &Server{container: c, Image: rs.Primary.Image}
	rs.mu.Lock()
	rs.replicas = append(rs.replicas, s)
	rs.mu.Unlock()
	endpoint, err := c.PortEndpoint(ctx, "5432/tcp", "")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s.SuperDSN, err = pointAt(rs.Primary.SuperDSN, endpoint)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, s.SuperDSN, 30*time.Second); err != nil {
		return nil, fmt.Errorf("pgtest: the standby never accepted connections: %w", err)
	}
	return s, nil
}

// pointAt returns connString with the host and port of endpoint (host:port).
func pointAt(connString, endpoint string) (string, error) {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return "", fmt.Errorf("pgtest: endpoint %q: %w", endpoint, err)
	}
	s, err := dsn.Parse(connString)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	s.Set("host", host)
	s.Set("port", port)
	return s.URL(), nil
}

// On returns connString, which names a database and role of the replica set's primary, pointed at the
// server s (a standby) instead: at its host and port, also once its container is stopped.
func (s *Server) On(connString string) string {
	at, err := dsn.Parse(s.SuperDSN)
	if err == nil {
		connString, err = pointAt(connString, net.JoinHostPort(at.Get("host"), at.Get("port")))
	}
	if err != nil {
		panic("pgtest: " + err.Error()) // the harness made both; the error never quotes connString
	}
	return connString
}

// StopContainer stops the server's container without removing it: its connections break, new ones are
// refused.
func (s *Server) StopContainer(ctx context.Context) error {
	if s.container == nil {
		return errors.New("pgtest: the server is not a container of the harness")
	}
	timeout := 5 * time.Second
	return s.container.Stop(ctx, &timeout)
}

// WaitReplayed waits until standby has replayed everything inserted into the primary's WAL so far:
// every commit made before the call is then visible on it.
func (rs *ReplicaSet) WaitReplayed(ctx context.Context, standby *Server) error {
	p, err := pgx.Connect(ctx, rs.Primary.SuperDSN)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer p.Close(context.WithoutCancel(ctx))
	var lsn string
	if err := p.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	r, err := pgx.Connect(ctx, standby.SuperDSN)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer r.Close(context.WithoutCancel(ctx))
	for {
		var done bool
		if err := r.QueryRow(ctx, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn).Scan(&done); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: the standby has not replayed up to %s: %w", lsn, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitReplica waits until the pool's first replica is usable, or not, as the pool's checks find, and
// returns its status then.
func WaitReplica(t testing.TB, p *db.Pool, usable bool) db.ReplicaStatus {
	t.Helper()
	ctx := Context(t)
	for {
		st := p.Replicas()[0]
		if st.Usable == usable {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pgtest: the replica never became usable=%v: last %+v", usable, st)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop removes the standbys, the primary and the network.
func (rs *ReplicaSet) Stop(ctx context.Context) error {
	rs.mu.Lock()
	servers := append(rs.replicas, rs.Primary)
	rs.replicas = nil
	rs.mu.Unlock()
	// At once: under load, removing a container takes seconds.
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = s.Stop(ctx) })
	}
	wg.Wait()
	if rs.network != nil {
		errs = append(errs, rs.network.Remove(ctx))
	}
	return errors.Join(errs...)
}

// The process's shared replica set, started by the first test that asks for one.
var (
	sharedSetMu  sync.Mutex
	sharedSet    *ReplicaSet
	sharedSetErr error
)

// SharedReplicaSet returns the process's replica set, starting it on first use; [Main] removes it. It
// fails the test, saying why, when TENANTSEAL_TEST_DSN names the server ([ErrNoContainers]: the set
// needs containers of its own) and when the set cannot be started.
func SharedReplicaSet(t testing.TB) *ReplicaSet {
	t.Helper()
	sharedSetMu.Lock()
	defer sharedSetMu.Unlock()
	if sharedSet == nil && sharedSetErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		sharedSet, sharedSetErr = StartReplicaSet(ctx)
	}
	switch {
	case errors.Is(sharedSetErr, ErrNoContainers):
		// Not a skip: a run that leaves the replica tests out must not read as one that passed them.
		t.Fatalf("pgtest: the replica tests need a primary and a standby that the harness starts itself: %v; run them without TENANTSEAL_TEST_DSN (go test -run 'Replica' ./db ./repo ./isolation)", sharedSetErr)
	case sharedSetErr != nil:
		t.Fatalf("pgtest: start the shared replica set: %v", sharedSetErr)
	}
	return sharedSet
}

// stopReplicaSet removes the shared replica set, if a test started it.
func stopReplicaSet(ctx context.Context) {
	sharedSetMu.Lock()
	defer sharedSetMu.Unlock()
	if sharedSet == nil {
		return
	}
	if err := sharedSet.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: stop the replica set:", err)
	}
	sharedSet = nil
}

// NewDatabase gives t its own migrated database on the primary, present on the shared standby when it
// returns, and drops it when t ends.
func (rs *ReplicaSet) NewDatabase(t testing.TB) *Database {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := rs.Cluster.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rs.Cluster.DropDatabase(ctx, d.Name); err != nil {
			t.Errorf("pgtest: drop %s: %v", d.Name, err)
		}
	})
	if err := rs.WaitReplayed(ctx, rs.Replica); err != nil {
		t.Fatal(err)
	}
	return d
}
