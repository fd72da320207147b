package invoicing

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"

	"go.opentelemetry.io/otel/metric"
)

// DefaultElevationTTL bounds one elevated staff request.
const DefaultElevationTTL = 2 * time.Minute

// Settings are what the service needs from its environment.
type Settings struct {
	// AppDSN connects as the app role that bootstrap created. Required.
	AppDSN string
	// AuditDSN connects the audit writer as the audit writer role (bootstrap's Result.AuditWriterDSN),
	// the only role that may append to the audit log. Required.
	AuditDSN string
	// RolePrefix is the deployment's role prefix. Default db.DefaultRolePrefix.
	RolePrefix string
	// ContextKey signs tenant contexts. Required.
	ContextKey db.ContextKey
	// KEK unwraps the tenants' keysets. Required.
	KEK *keys.KEK
	// Issuers and StepUp configure authentication (authn.Config). Issuers is required. StepUp.Ledger
	// defaults to the database's (authn.DBLedger): a staff token elevates once, whichever instance of
	// the service it reaches.
	Issuers []authn.Issuer
	StepUp  authn.StepUp
	// Registry maps each issuer's tenant claim to a tenant. Default the bindings in the database
	// (authn.NewDBRegistry with RegistryConfig), which `tenantseal tenants bind` manages.
	Registry       authn.Registry
	RegistryConfig authn.DBRegistryConfig
	// EnvelopeKey signs the principal envelopes of background jobs. Required.
	EnvelopeKey authn.EnvelopeKey
	// AuditSpool is the audit writer's spool file. Default audit.DefaultSpoolPath.
	AuditSpool string
	// Queue carries background jobs. Default an in-memory queue of 1024 jobs.
	Queue Queue
	// JobDone, if set, is called after each background job with its outcome.
	JobDone func(Job, error)
	// ElevationTTL bounds one elevated staff request. Default DefaultElevationTTL.
	ElevationTTL time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// MeterProvider receives the metrics of the pool, the audit writer, the keyring and the
	// authenticator (statements, refusals by class and kind, audit events, keyset unwraps). Default otel.GetMeterProvider(): none are
	// exported until the application installs a provider, such as the Prometheus exporter that
	// cmd/invoicing-dev serves on a listener of its own.
	MeterProvider metric.MeterProvider
	// Now is the clock of authentication (token times, step-up age). Default time.Now.
	Now func() time.Time
}

// Service is the running service: its pool, keyring, audit writer, authenticator, repositories and job
// worker.
type Service struct {
	st        Settings
	pool      *db.Pool
	writer    *audit.Writer
	auth      *authn.Authenticator
	sealer    *authn.Sealer
	customers *reference.Customers
	invoices  *reference.Invoices
	handler   http.Handler

	stopWorker context.CancelFunc
	worker     sync.WaitGroup
}

// New opens the service's connections and starts its job worker. Close it when done.
func New(ctx context.Context, st Settings) (s *Service, err error) {
	if st.AppDSN == "" || st.AuditDSN == "" || st.KEK == nil {
		return nil, errors.New("invoicing: Settings.AppDSN, Settings.AuditDSN and Settings.KEK are required")
	}
	if st.Queue == nil {
		st.Queue = NewMemoryQueue(1024)
	}
	if st.ElevationTTL == 0 {
		st.ElevationTTL = DefaultElevationTTL
	}
	if st.Logger == nil {
		st.Logger = slog.Default()
	}
	s = &Service{st: st}
	defer func() {
		if err != nil {
			s.Close(context.WithoutCancel(ctx))
		}
	}()

	acfg, err := audit.ParseConfig(st.AuditDSN)
	if err != nil {
		return nil, err
	}
	acfg.SpoolPath, acfg.Logger, acfg.MeterProvider = st.AuditSpool, st.Logger, st.MeterProvider
	// The service's writer is the deployment's watcher of schema, privilege and role changes.
	acfg.SecurityInterval = audit.DefaultSecurityInterval
	if s.writer, err = audit.NewWriter(ctx, acfg); err != nil {
		return nil, err
	}
	pcfg, err := db.ParseConfig(st.AppDSN)
	if err != nil {
		return nil, err
	}
	pcfg.SigningKey, pcfg.RolePrefix, pcfg.Recorder = st.ContextKey, st.RolePrefix, s.writer
	pcfg.MaxElevation, pcfg.Logger, pcfg.MeterProvider = st.ElevationTTL, st.Logger, st.MeterProvider
	// Staff elevate only with step-up. s.auth is set below, before any request can elevate.
	pcfg.AuthorizeElevation = func(ctx context.Context, req db.ElevationRequest) error { return s.auth.AuthorizeElevation(ctx, req) }
	if s.pool, err = db.Open(ctx, pcfg); err != nil {
		return nil, err
	}
	if st.Registry == nil {
		if st.RegistryConfig.Now == nil {
			st.RegistryConfig.Now = st.Now
		}
		if st.Registry, err = authn.NewDBRegistry(s.pool.Unscoped(), st.RegistryConfig); err != nil {
			return nil, err
		}
	}
	if st.StepUp.Ledger == nil {
		st.StepUp.Ledger = authn.NewDBLedger(s.pool.Unscoped())
	}
	if s.auth, err = authn.New(ctx, authn.Config{Issuers: st.Issuers, Registry: st.Registry, StepUp: st.StepUp,
		Recorder: s.writer, Realm: "invoicing", Logger: st.Logger, MeterProvider: st.MeterProvider, Now: st.Now}); err != nil {
		return nil, err
	}
	if s.sealer, err = authn.NewSealer(authn.SealerConfig{Key: st.EnvelopeKey, Audience: "invoicing-jobs", Recorder: s.writer}); err != nil {
		return nil, err
	}
	kr, err := keys.NewKeyring(keys.Config{KEK: st.KEK, Loader: pgstore.Loader(s.pool), Recorder: s.writer, MeterProvider: st.MeterProvider})
	if err != nil {
		return nil, err
	}
	if s.customers, err = reference.NewCustomers(ctx, s.pool, kr); err != nil {
		return nil, err
	}
	if s.invoices, err = reference.NewInvoices(ctx, s.pool, kr); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopWorker = stop
	s.worker.Add(1)
	go s.work(life)
	return s, nil
}

// Handler returns the service's HTTP handler.
func (s *Service) Handler() http.Handler { return s.handler }

// FlushAudit writes every event recorded so far to the audit log.
func (s *Service) FlushAudit(ctx context.Context) error {
	ok, err := s.writer.Flush(ctx)
	if err == nil && !ok {
		err = errors.New("invoicing: audit events wait in the spool: the database did not take them")
	}
	return err
}

// Close stops the worker, then closes the pool and the authenticator, and flushes the audit writer.
func (s *Service) Close(ctx context.Context) error {
	if s.stopWorker != nil {
		s.stopWorker()
		s.worker.Wait()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if s.auth != nil {
		s.auth.Close()
	}
	if s.writer != nil {
		return s.writer.Close(ctx)
	}
	return nil
}
