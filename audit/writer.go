package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/process"
	"github.com/tenantseal/tenantseal/internal/transport"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
)

// Defaults of [Config].
const (
	DefaultQueueSize     = 4096
	DefaultBatchSize     = 256
	DefaultFlushInterval = 100 * time.Millisecond
	DefaultMaxBlock      = 5 * time.Millisecond
	DefaultRetryInterval = time.Second
	DefaultSpoolPath     = "tenantseal-audit.spool"
	DefaultLockTimeout   = time.Second
	// MaxBatchSize is the most events tenantseal.audit_append takes in one call.
	MaxBatchSize = 1000
)

// Config configures a [Writer]. Build it with [ParseConfig], adjust fields, then call [NewWriter].
type Config struct {
	// PoolConfig is the configuration of the writer's own connections: connect as the audit writer role
	// (<prefix>_audit_writer, TENANTSEAL_AUDIT_WRITER_DSN), the only role that may append, through
	// tenantseal.audit_append. A role of its own, so that SQL injected into the application (the app
	// role) can neither append nor cancel or terminate the writer's sessions; own connections, so that
	// events survive the rollback of the transaction that failed. Required; NewWriter copies it.
	PoolConfig *pgxpool.Config
	// AllowPlaintextLoopback lets the writer connect to a loopback host without TLS or without verifying
	// the server's certificate, for development on one machine. Without it NewWriter refuses, with a
	// [*tenantseal.TransportError], every connection that is not TLS verify-full, and each new session
	// checks pg_stat_ssl, as db.Open does; other hosts are refused either way.
	AllowPlaintextLoopback bool
	// QueueSize bounds the events waiting to be written. Default DefaultQueueSize.
	QueueSize int
	// BatchSize bounds the events appended per statement. Default DefaultBatchSize; at most MaxBatchSize.
	BatchSize int
	// FlushInterval bounds how long an event waits for its batch to fill. Default DefaultFlushInterval.
	FlushInterval time.Duration
	// MaxBlock bounds how long Record waits for room when the queue is full; after it the event is
	// dropped, counted in Stats.Dropped and logged at ERROR. Default DefaultMaxBlock.
	MaxBlock time.Duration
	// SpoolPath is the file that holds events while the database cannot take them, replayed in order
	// when it can. Default DefaultSpoolPath in the working directory.
	SpoolPath string
	// RetryInterval is how often a down database is tried again. Default DefaultRetryInterval.
	RetryInterval time.Duration
	// WriteTimeout bounds one append to the database. Default 5 s.
	WriteTimeout time.Duration
	// LockTimeout bounds how long an append waits for the lock on the chain head (lock_timeout of the
	// writer's sessions). A session that holds it longer delays the writer by this much at most: then
	// the batch goes to the spool, is retried every RetryInterval, and every such wait is logged at
	// ERROR and counted in Stats.LockTimeouts. Default DefaultLockTimeout.
	LockTimeout time.Duration
	// Logger receives the local spill of events that could not be written yet, drops and alerts.
	// Default slog.Default().
	Logger *slog.Logger
	// Detector raises alerts on patterns; nil uses NewDetector(DetectorConfig{}).
	Detector *Detector
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// SecurityInterval, when positive, makes the writer run [Writer.CheckSecurity] at start and at this
	// interval: the comparison that records schema, privilege and role changes, event triggers or not.
	// Set it (DefaultSecurityInterval) in the application's long-running writer; zero, the default,
	// leaves it to another process (the short-lived operator commands of the CLI leave it so). One
	// watcher per database is enough: each records what changed since any of them last compared.
	SecurityInterval time.Duration
	// Instance names this process in what it records (the watcher's subject). Default "<host>/<pid>".
	Instance string
	// Checkpointer, when set, signs and publishes a checkpoint of the log at most every
	// CheckpointInterval once writes have landed, and on Close. It runs beside the writing: a failure is
	// logged at ERROR and counted in Stats.CheckpointFailures, and never delays or drops an event.
	Checkpointer *Checkpointer
	// CheckpointInterval is how often the Checkpointer runs when entries were written since its last
	// run. Default DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// MeterProvider provides the writer's instruments (scope [MeterName]): tenantseal.audit.recorded
	// (by kind, [AttrKind]), .appended, .spooled, .replayed, .dropped, .lock_timeouts, .checkpoints,
	// .checkpoint_failures and .queue_length, the figures of [Stats]. Default otel.GetMeterProvider(),
	// which records nothing until the application installs one. No instrument carries a tenant.
	MeterProvider metric.MeterProvider
}

// Stats are the writer's counters. The instruments of Config.MeterProvider count the same.
type Stats struct {
	Recorded, Written, Spooled, Replayed, Dropped int64
	// LockTimeouts counts appends that gave up waiting for the chain head (Config.LockTimeout).
	LockTimeouts int64
	// Checkpoints counts checkpoints signed and published by Config.Checkpointer, CheckpointFailures
	// its failed attempts.
	Checkpoints, CheckpointFailures int64
	ByKind                          map[string]int64
}

// Writer records events asynchronously: Record queues, a goroutine appends batches through
// tenantseal.audit_append on the writer's own connection, and while the database is unreachable events go
// to the spool file and the log, to be replayed in order when it returns. It implements tenantseal.Recorder.
type Writer struct {
	cfg      Config
	base     context.Context // of the writer's own statements: NewWriter's values, never cancelled
	pool     *pgxpool.Pool
	queue    chan Entry
	spool    *spool
	detector *Detector
	log      *slog.Logger
	m        *meters

	closeOnce sync.Once
	closed    atomic.Bool
	stop      chan struct{}
	done      chan struct{}
	flushReq  chan chan bool
	watchDone chan struct{}

	recorded, written, spooled, replayed, dropped atomic.Int64
	lockTimeouts                                  atomic.Int64
	kinds                                         sync.Map // kind -> *atomic.Int64
	lastDropLog                                   atomic.Int64

	landed                          chan struct{} // entries written since the last checkpoint
	checkpointDone                  chan struct{}
	checkpoints, checkpointFailures atomic.Int64
}

// DefaultConnectTimeout bounds each connection attempt of a writer whose pool configuration sets none.
const DefaultConnectTimeout = 5 * time.Second

// ParseConfig parses the audit writer role's connection string, once, into a Config for [NewWriter]: at
// most two connections (a writer needs no more; change PoolConfig.MaxConns after parsing for more), and
// a connect timeout of DefaultConnectTimeout unless the string sets connect_timeout. Zero fields take
// their defaults in NewWriter.
func ParseConfig(writerDSN string) (*Config, error) {
	pc, err := pgxpool.ParseConfig(writerDSN)
	if err != nil {
		return nil, fmt.Errorf("audit: parse connection string: %w", err)
	}
	pc.MaxConns = 2
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	return &Config{PoolConfig: pc}, nil
}

// NewWriter opens the writer's connection pool (lazily: an unreachable database is not an error here;
// events spool until it answers) and starts the background goroutine. Close it to flush. ctx bounds
// the opening only; its values, not its cancellation, carry over to the writer's own statements.
func NewWriter(ctx context.Context, config *Config) (*Writer, error) {
	if config == nil || config.PoolConfig == nil {
		return nil, errors.New("audit: Config.PoolConfig is nil: build the Config with ParseConfig")
	}
	cfg := *config
	setDefault(&cfg.QueueSize, DefaultQueueSize)
	setDefault(&cfg.BatchSize, DefaultBatchSize)
	setDefault(&cfg.FlushInterval, DefaultFlushInterval)
	setDefault(&cfg.MaxBlock, DefaultMaxBlock)
	setDefault(&cfg.RetryInterval, DefaultRetryInterval)
	setDefault(&cfg.SpoolPath, DefaultSpoolPath)
	setDefault(&cfg.WriteTimeout, 5*time.Second)
	setDefault(&cfg.LockTimeout, DefaultLockTimeout)
	setDefault(&cfg.Instance, process.Name())
	setDefault(&cfg.CheckpointInterval, DefaultCheckpointInterval)
	if cfg.BatchSize > MaxBatchSize {
		return nil, fmt.Errorf("audit: Config.BatchSize %d exceeds the %d events tenantseal.audit_append takes", cfg.BatchSize, MaxBatchSize)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Detector == nil {
		cfg.Detector = NewDetector(DetectorConfig{Logger: cfg.Logger, Now: cfg.Now})
	}
	cfg.PoolConfig = config.PoolConfig.Copy()
	// Set at connection start, so that no role-level setting (ALTER ROLE ... SET) can make the writer's
	// sessions wait longer or refuse to write.
	if cfg.PoolConfig.ConnConfig.RuntimeParams == nil {
		cfg.PoolConfig.ConnConfig.RuntimeParams = map[string]string{}
	}
	rp := cfg.PoolConfig.ConnConfig.RuntimeParams
	rp["lock_timeout"] = strconv.FormatInt(cfg.LockTimeout.Milliseconds(), 10)
	rp["statement_timeout"] = strconv.FormatInt(cfg.WriteTimeout.Milliseconds(), 10)
	rp["default_transaction_read_only"] = "off"
	ms, err := newMeters(cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	if cfg.PoolConfig, err = transport.Pool(cfg.PoolConfig, cfg.AllowPlaintextLoopback); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg.PoolConfig)
	if err != nil {
		return nil, fmt.Errorf("audit: open pool: %w", err)
	}
	sp, err := openSpool(cfg.SpoolPath)
	if err != nil {
		pool.Close()
		return nil, err
	}
	w := &Writer{cfg: cfg, base: context.WithoutCancel(ctx), pool: pool, queue: make(chan Entry, cfg.QueueSize), spool: sp,
		detector: cfg.Detector, log: cfg.Logger, m: ms, stop: make(chan struct{}), done: make(chan struct{}), flushReq: make(chan chan bool),
		watchDone: make(chan struct{})}
	go w.run()
	if cfg.SecurityInterval > 0 {
		go w.watch()
	} else {
		close(w.watchDone)
	}
	w.startCheckpoints()
	return w, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Record queues an event seen under ctx. It never blocks longer than Config.MaxBlock.
func (w *Writer) Record(ctx context.Context, e tenantseal.Event) {
	en := newEntry(ctx, e, w.cfg.Now())
	w.recorded.Add(1)
	w.count(en.Kind)
	w.detector.Observe(ctx, en)
	if w.closed.Load() {
		// After Close nothing writes the queue: keep the event on disk and in the log.
		w.spillNow([]Entry{en}, errors.New("writer closed"))
		return
	}
	// Counted before it is queued, so that the writer, which takes it off, never makes the length negative.
	w.queueDelta(1)
	select {
	case w.queue <- en:
		return
	default:
	}
	t := time.NewTimer(w.cfg.MaxBlock)
	defer t.Stop()
	select {
	case w.queue <- en:
	case <-t.C:
		w.queueDelta(-1)
		w.dropped.Add(1)
		w.add(w.m.dropped, 1)
		// One log line per second at most, with the running count: never silent, never a flood.
		now := w.cfg.Now().Unix()
		if last := w.lastDropLog.Load(); now > last && w.lastDropLog.CompareAndSwap(last, now) {
			w.log.Error("tenantseal audit: queue full, events dropped", "dropped_total", w.dropped.Load(), "kind", en.Kind)
		}
	}
}

func (w *Writer) count(kind tenantseal.EventKind) {
	c, _ := w.kinds.LoadOrStore(string(kind), new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	w.m.recorded.Add(w.base, 1, kindAttr(kind))
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	s := Stats{Recorded: w.recorded.Load(), Written: w.written.Load(), Spooled: w.spooled.Load(),
		Replayed: w.replayed.Load(), Dropped: w.dropped.Load(), LockTimeouts: w.lockTimeouts.Load(),
		Checkpoints: w.checkpoints.Load(), CheckpointFailures: w.checkpointFailures.Load(), ByKind: map[string]int64{}}
	w.kinds.Range(func(k, v any) bool {
		s.ByKind[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return s
}

// Flush writes everything recorded so far and reports whether it all reached the database (false: some
// of it waits in the spool).
func (w *Writer) Flush(ctx context.Context) (bool, error) {
	ack := make(chan bool, 1)
	select {
	case w.flushReq <- ack:
	case <-w.done:
		return false, errors.New("audit: writer closed")
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case ok := <-ack:
		return ok, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// Close stops accepting queued events, writes what is queued (to the database, or to the spool when it
// is down) and releases the connections. Events recorded after Close go to the spool and the log.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		close(w.stop)
	})
	for _, done := range []chan struct{}{w.done, w.watchDone} {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("audit: close: %w", ctx.Err())
		}
	}
	if err := w.waitCheckpoints(ctx); err != nil {
		return err
	}
	w.pool.Close()
	return w.spool.close()
}

func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.cfg.FlushInterval)
	defer tick.Stop()
	retry := time.NewTicker(w.cfg.RetryInterval)
	defer retry.Stop()
	batch := make([]Entry, 0, w.cfg.BatchSize)
	flush := func() {
		if len(batch) > 0 {
			w.write(batch)
			batch = batch[:0]
		}
	}
	// drain writes everything queued so far.
	drain := func() {
		for {
			select {
			case en := <-w.queue:
				w.queueDelta(-1)
				batch = append(batch, en)
				if len(batch) >= w.cfg.BatchSize {
					flush()
				}
				continue
			default:
			}
			break
		}
		flush()
		if w.spool.pending() {
			w.replay()
		}
	}
	for {
		select {
		case en := <-w.queue:
			w.queueDelta(-1)
			batch = append(batch, en)
			if len(batch) >= w.cfg.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		case <-retry.C:
			if w.spool.pending() {
				w.replay()
			}
		case ack := <-w.flushReq:
			drain()
			ack <- !w.spool.pending() || w.replay()
		case <-w.stop:
			drain()
			return
		}
	}
}

// write appends a batch, after whatever waits in the spool so the order holds; on failure the batch
// joins the spool.
func (w *Writer) write(batch []Entry) {
	if w.spool.pending() && !w.replay() {
		w.spillNow(batch, errors.New("database unreachable, spool not yet replayed"))
		return
	}
	if err := w.appendDB(batch); err != nil {
		w.spillNow(batch, err)
		return
	}
	w.written.Add(int64(len(batch)))
	w.add(w.m.appended, len(batch))
	w.noteLanded()
}

// appendDB appends a batch. The database checks the lookup misses in it and returns those it stored as
// foreign ids: they count for alerts from then on.
func (w *Writer) appendDB(batch []Entry) error {
	payload, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(w.base, w.cfg.WriteTimeout)
	defer cancel()
	rows, err := w.pool.Query(ctx, "SELECT * FROM tenantseal.audit_append($1::jsonb)", payload)
	if err != nil {
		return w.appendFailed(err)
	}
	confirmed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return w.appendFailed(err)
	}
	for _, id := range confirmed {
		for _, en := range batch {
			if en.EventID == id {
				en.Kind = tenantseal.EventForeignID
				w.detector.Observe(w.base, en)
			}
		}
	}
	return nil
}

// appendFailed says why an append failed where an operator looks, beyond the spool's log lines: a
// chain head held locked past Config.LockTimeout, or a role that may not append.
func (w *Writer) appendFailed(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "55P03": // lock_not_available
			n := w.lockTimeouts.Add(1)
			w.add(w.m.lockTimeouts, 1)
			w.log.Error("tenantseal audit: the chain head stayed locked longer than the lock timeout: events spooled, retried", "lock_timeout", w.cfg.LockTimeout.String(), "lock_timeouts_total", n)
		case "42501", "42883":
			w.log.Error("tenantseal audit: the writer's role may not append: connect as the audit writer role (<prefix>_audit_writer)", "error", err.Error())
		}
	}
	return err
}

// spillNow keeps events that could not be written: on disk for replay, and in the log.
func (w *Writer) spillNow(batch []Entry, cause error) {
	for _, en := range batch {
		w.log.Warn("tenantseal audit: event spooled", "kind", en.Kind, "subject", deref(en.Subject),
			"tenant", deref(en.TenantID), "table", deref(en.Table), "row", deref(en.RowKey), "cause", cause.Error())
	}
	if err := w.spool.append(batch); err != nil {
		w.log.Error("tenantseal audit: spool write failed: events only in this log", "count", len(batch), "error", err.Error())
		return
	}
	w.spooled.Add(int64(len(batch)))
	w.add(w.m.spooled, len(batch))
}

// replay appends the spooled events in order and empties the spool; false if the database still refuses.
func (w *Writer) replay() bool {
	events, err := w.spool.read()
	if err != nil {
		w.log.Error("tenantseal audit: spool unreadable", "error", err.Error())
		return false
	}
	for start := 0; start < len(events); start += w.cfg.BatchSize {
		end := min(start+w.cfg.BatchSize, len(events))
		if err := w.appendDB(events[start:end]); err != nil {
			return false
		}
		// Written: remove them before the next batch, so a crash now cannot write them twice.
		if err := w.spool.dropFirst(end - start); err != nil {
			w.log.Error("tenantseal audit: spool rewrite failed", "error", err.Error())
			return false
		}
		w.replayed.Add(int64(end - start))
		w.add(w.m.replayed, end-start)
		w.noteLanded()
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
