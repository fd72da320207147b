package db

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Read replicas. A pool with Config.Replicas sends a statement to a hot standby only when all of these
// hold, and to the primary otherwise:
//
//   - the caller asked for it: ctx comes from [ReadFromReplica], and not from [OnPrimary] (which wins,
//     in either order: a request that wrote reads its own writes);
//   - the work is read-only: [Pool.Query], [Pool.QueryRow], [Unscoped] queries, and [Pool.TxWith] with
//     pgx.ReadOnly (an elevated transaction is always read-only). [Pool.Exec] and read-write
//     transactions always run on the primary, and so do the repositories' writes, whatever ctx says;
//   - the replica is usable: its role passed the checks [Open] makes on the primary's, it is in
//     recovery, and its lag is within Config.ReplicaMaxLag.
//
// Lag is measured by WAL position every Config.ReplicaCheckInterval: the pool samples the primary's
// pg_current_wal_insert_lsn() and each replica's pg_last_wal_replay_lsn(). A replica that has replayed
// the primary's position sampled at time t holds every commit made before t; its lag is the time since
// the latest such t, and it grows between checks, so the bound holds at the moment a statement is routed.
// A replica that cannot be reached, or fails a statement with a connection error, is unused until a
// check succeeds again. When no replica is usable the statement runs on the primary, or fails with
// [ErrNoReplica] under Config.ReplicaNoFallback. Row-level security applies on a replica exactly as on
// the primary: the same token verifies against the same, replicated, key table, and a replica only
// ever shows a tenant's own rows, at most ReplicaMaxLag old. The audit log is written through its own
// writer's connection to the primary (package audit), never through a replica.

// Defaults of the replica settings of [Config].
const (
	DefaultReplicaMaxLag        = 5 * time.Second
	DefaultReplicaCheckInterval = time.Second
)

// ErrNoReplica means a statement that asked for a replica found none usable (down, or lagging more than
// Config.ReplicaMaxLag) while Config.ReplicaNoFallback forbids the primary. Use errors.Is.
var ErrNoReplica = errors.New("tenantseal: no usable read replica")

// ReplicaConfig is one hot standby of the primary.
type ReplicaConfig struct {
	// PoolConfig connects to the standby, as the app role. Config.ExecMode applies to it too.
	PoolConfig *pgxpool.Config
}

// ParseReplica parses a standby's connection string with the defaults of [ParseConfig].
func ParseReplica(connString string) (ReplicaConfig, error) {
	c, err := ParseConfig(connString)
	if err != nil {
		return ReplicaConfig{}, err
	}
	return ReplicaConfig{PoolConfig: c.PoolConfig}, nil
}

type routeKey struct{}

type route int

const (
	routeReplica route = iota + 1
	routePrimary
)

// ReadFromReplica returns a copy of ctx whose read-only statements may run on a read replica (see the
// package's read replicas), unless ctx comes from [OnPrimary].
func ReadFromReplica(ctx context.Context) context.Context {
	if r, _ := ctx.Value(routeKey{}).(route); r == routePrimary {
		return ctx
	}
	return context.WithValue(ctx, routeKey{}, routeReplica)
}

// OnPrimary returns a copy of ctx whose statements all run on the primary, also when ctx or a context
// made from it later comes from [ReadFromReplica]: for reading one's own writes.
func OnPrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, routeKey{}, routePrimary)
}

// unreachable tells a failure to reach a server (the network, a connection the server broke, a server
// shutting down or starting up) from the server's answer to a statement.
func unreachable(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return true
	}
	// Class 08, connection exception; 57P01-57P03, a server shutting down, crashed or starting up.
	return strings.HasPrefix(pg.Code, "08") || strings.HasPrefix(pg.Code, "57P")
}

// ReplicaStatus is what the pool last found of a replica.
type ReplicaStatus struct {
	Name string // host:port, never a credential
	// Usable says whether the replica receives the statements that ask for one now.
	Usable bool
	// Lag bounds how old the replica's data is: the time since the latest primary WAL position it has
	// replayed was sampled. Zero before the first successful check.
	Lag       time.Duration
	CheckedAt time.Time // of the last check, successful or not
	Err       error     // why it is not usable: unreachable, not in recovery, unsafe role; nil when usable
}

// replica is one standby and what its checks found.
type replica struct {
	name string
	pool *pgxpool.Pool

	mu        sync.Mutex
	roleOK    bool      // checkRole passed once
	caughtUp  time.Time // sample time of the latest primary position the replica had replayed
	checkedAt time.Time
	err       error
}

// walSample is the primary's WAL insert position at a time.
type walSample struct {
	at  time.Time
	lsn uint64
}

// replicas is the pool's set of standbys and their checker.
type replicas struct {
	list   []*replica
	next   atomic.Uint64 // round robin
	maxLag time.Duration

	mu      sync.Mutex
	samples []walSample // newest last; enough to cover maxLag
	// The checker: started once Open's first check passed.
	started    bool
	stop, done chan struct{}
	closeOnce  sync.Once
}

func replicaName(pc *pgxpool.Config) string {
	return net.JoinHostPort(pc.ConnConfig.Host, strconv.Itoa(int(pc.ConnConfig.Port)))
}

// validateReplicas checks the replica settings and applies the pool's exec mode to each.
func (c *Config) validateReplicas() error {
	if len(c.Replicas) == 0 {
		return nil
	}
	if c.ReplicaMaxLag == 0 {
		c.ReplicaMaxLag = DefaultReplicaMaxLag
	}
	if c.ReplicaCheckInterval == 0 {
		c.ReplicaCheckInterval = DefaultReplicaCheckInterval
	}
	if c.ReplicaCheckInterval < 0 || c.ReplicaCheckInterval >= c.ReplicaMaxLag {
		return fmt.Errorf("db: Config.ReplicaCheckInterval %v must be positive and shorter than ReplicaMaxLag %v: the lag bound grows between checks",
			c.ReplicaCheckInterval, c.ReplicaMaxLag)
	}
	rs := make([]ReplicaConfig, len(c.Replicas))
	for i, r := range c.Replicas {
		if r.PoolConfig == nil {
			return fmt.Errorf("db: Config.Replicas[%d].PoolConfig is nil: build it with ParseReplica", i)
		}
		pc, err := c.poolConfig(r.PoolConfig)
		if err != nil {
			return fmt.Errorf("replica %s: %w", replicaName(r.PoolConfig), err)
		}
		r.PoolConfig = pc
		rs[i] = r
	}
	c.Replicas = rs
	return nil
}

// openReplicas makes the replicas' pools and runs a first check. A replica that cannot be reached now
// is not an error (it is used once a check reaches it); one whose role is unsafe is.
func (p *Pool) openReplicas(ctx context.Context) error {
	if len(p.cfg.Replicas) == 0 {
		return nil
	}
	rs := &replicas{maxLag: p.cfg.ReplicaMaxLag, stop: make(chan struct{}), done: make(chan struct{})}
	for _, rc := range p.cfg.Replicas {
		pool, err := pgxpool.NewWithConfig(ctx, p.metrics.instrument(rc.PoolConfig))
		if err != nil {
			rs.close()
			return fmt.Errorf("db: open replica %s: %w", replicaName(rc.PoolConfig), err)
		}
		rs.list = append(rs.list, &replica{name: replicaName(rc.PoolConfig), pool: pool})
	}
	p.replicas = rs
	p.checkReplicas(ctx)
	for _, r := range rs.list {
		r.mu.Lock()
		err := r.err
		r.mu.Unlock()
		if errors.Is(err, ErrUnsafeRole) {
			rs.close()
			return fmt.Errorf("db: replica %s: %w", r.name, err)
		}
	}
	rs.started = true
	every(p.cfg.ReplicaCheckInterval, rs.stop, rs.done, func() { p.checkReplicas(p.base) })
	return nil
}

// close stops the checker, if it runs, and closes the replicas' pools.
func (rs *replicas) close() {
	if rs == nil {
		return
	}
	rs.closeOnce.Do(func() {
		if rs.started {
			close(rs.stop)
			<-rs.done
		}
		for _, r := range rs.list {
			r.pool.Close()
		}
	})
}

// checkReplicas samples the primary's WAL position, then each replica's replay position, concurrently.
func (p *Pool) checkReplicas(ctx context.Context) {
	rs := p.replicas
	timeout := max(2*p.cfg.ReplicaCheckInterval, time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	at := time.Now() // before the query: the position read holds at least every commit before at
	var lsnText string
	if err := p.pool.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsnText); err == nil {
		if lsn, err := parseLSN(lsnText); err == nil {
			rs.mu.Lock()
			rs.samples = append(rs.samples, walSample{at: at, lsn: lsn})
			// Keep the samples that can still bound a lag within maxLag, and one older.
			for len(rs.samples) > 2 && at.Sub(rs.samples[1].at) > rs.maxLag {
				rs.samples = rs.samples[1:]
			}
			rs.mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for _, r := range rs.list {
		wg.Go(func() { p.checkReplica(ctx, r) })
	}
	wg.Wait()
}

func (p *Pool) checkReplica(ctx context.Context, r *replica) {
	r.mu.Lock()
	roleOK := r.roleOK
	r.mu.Unlock()
	err := error(nil)
	if !roleOK {
		err = checkRole(ctx, r.pool, Roles(p.cfg.RolePrefix).Owner)
	}
	var (
		recovering bool
		replayed   string
	)
	if err == nil {
		err = r.pool.QueryRow(ctx, "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn()::text, '')").Scan(&recovering, &replayed)
	}
	var lsn uint64
	switch {
	case err != nil:
	case !recovering:
		err = errors.New("not in recovery: a primary, or a promoted standby, serves no replica reads")
	default:
		lsn, err = parseLSN(replayed)
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkedAt = now
	if errors.Is(err, ErrUnsafeRole) || err == nil {
		r.roleOK = err == nil
	}
	r.err = err
	if err != nil {
		return
	}
	rs := p.replicas
	rs.mu.Lock()
	for i := len(rs.samples) - 1; i >= 0; i-- {
		if s := rs.samples[i]; s.lsn <= lsn {
			if s.at.After(r.caughtUp) {
				r.caughtUp = s.at
			}
			break
		}
	}
	rs.mu.Unlock()
}

// parseLSN reads a pg_lsn's text form, "X/Y" in hex.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("db: unexpected WAL position %q", s)
	}
	return h<<32 | l, nil
}

// status reports r at now; usable when checked, reachable and within maxLag.
func (r *replica) status(now time.Time, maxLag time.Duration) ReplicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := ReplicaStatus{Name: r.name, CheckedAt: r.checkedAt, Err: r.err}
	if !r.caughtUp.IsZero() {
		st.Lag = now.Sub(r.caughtUp)
	}
	switch {
	case st.Err != nil:
	case r.caughtUp.IsZero():
		st.Err = errors.New("lag not measured yet")
	case st.Lag > maxLag:
		st.Err = fmt.Errorf("lag %v over the bound %v", st.Lag.Round(time.Millisecond), maxLag)
	default:
		st.Usable = true
	}
	return st
}

// failed marks r unusable until its next successful check.
func (r *replica) failed(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// Replicas reports the state of each configured replica, in the order of Config.Replicas.
func (p *Pool) Replicas() []ReplicaStatus {
	if p.replicas == nil {
		return nil
	}
	now := time.Now()
	out := make([]ReplicaStatus, len(p.replicas.list))
	for i, r := range p.replicas.list {
		out[i] = r.status(now, p.replicas.maxLag)
	}
	return out
}

// reader picks the replica for read-only work under ctx: nil for the primary, or ErrNoReplica.
func (p *Pool) reader(ctx context.Context, readOnly bool) (*replica, error) {
	rs := p.replicas
	if rs == nil || !readOnly {
		return nil, nil
	}
	if r, _ := ctx.Value(routeKey{}).(route); r != routeReplica {
		return nil, nil
	}
	now := time.Now()
	start := rs.next.Add(1)
	var why []string
	for i := range rs.list {
		r := rs.list[(start+uint64(i))%uint64(len(rs.list))]
		st := r.status(now, rs.maxLag)
		if st.Usable {
			return r, nil
		}
		why = append(why, r.name+": "+st.Err.Error())
	}
	if p.cfg.ReplicaNoFallback {
		return nil, fmt.Errorf("%w (%s)", ErrNoReplica, strings.Join(why, "; "))
	}
	return nil, nil
}

// onReader runs begin, which starts read-only work on a pool, on the replica ctx asks for, or on the
// primary. When the replica cannot be reached, it is marked failed and begin runs again on the primary,
// or the call fails with ErrNoReplica under Config.ReplicaNoFallback. Only connection failures fall
// back: the database's own refusals are returned as they are.
func (p *Pool) onReader(ctx context.Context, readOnly bool, begin func(*pgxpool.Pool) error) error {
	r, err := p.reader(ctx, readOnly)
	if err != nil {
		return err
	}
	if r == nil {
		return begin(p.pool)
	}
	err = begin(r.pool)
	if err == nil || !unreachable(err) || ctx.Err() != nil {
		return err
	}
	r.failed(err)
	if p.cfg.ReplicaNoFallback {
		return fmt.Errorf("%w: replica %s: %w", ErrNoReplica, r.name, err)
	}
	return begin(p.pool)
}
