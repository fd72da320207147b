package db

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/token"
	"github.com/tenantseal/tenantseal/internal/transport"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
)

// Defaults and bounds of [Config].
const (
	DefaultRolePrefix     = "tenantseal"
	DefaultTokenTTL       = time.Minute
	MaxTokenTTL           = 5 * time.Minute
	DefaultMaxElevation   = time.Hour
	DefaultElevationRole  = "support"
	DefaultConnectTimeout = 10 * time.Second
	// DefaultRoleCheckInterval is how often a pool checks its role by default; see Config.RoleCheckInterval.
	DefaultRoleCheckInterval = time.Minute
)

// ContextKey is a secret that signs tenant context tokens. The database holds only values derived from
// it in a table that the app role cannot read. String never prints the secret.
type ContextKey struct {
	ID     string // [a-z0-9-]{1,32}; names the key in tenantseal.context_keys
	Secret []byte // at least 32 bytes
}

// String names the key without revealing the secret.
func (k ContextKey) String() string { return fmt.Sprintf("ContextKey(%s)", k.ID) }

// GoString hides the secret from %#v too.
func (k ContextKey) GoString() string { return k.String() }

// ParseContextKey parses the "<id>:<hex secret>" form that bootstrap writes.
func ParseContextKey(s string) (ContextKey, error) {
	id, hexSecret, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return ContextKey{}, errors.New("db: context key must have the form <id>:<hex secret>")
	}
	if !token.ValidKeyID(id) {
		return ContextKey{}, errors.New("db: context key id must match [a-z0-9-]{1,32}")
	}
	secret, err := hex.DecodeString(hexSecret)
	if err != nil {
		return ContextKey{}, errors.New("db: context key secret is not hex")
	}
	if len(secret) < 32 {
		return ContextKey{}, errors.New("db: context key secret is shorter than 32 bytes")
	}
	return ContextKey{ID: id, Secret: secret}, nil
}

// Config configures a [Pool]. Build it with [ParseConfig], adjust fields, then call [Open].
type Config struct {
	// PoolConfig is the pgxpool configuration: connection string, pool size, hooks.
	PoolConfig *pgxpool.Config

	// ExecMode, when not zero, replaces PoolConfig.ConnConfig.DefaultQueryExecMode for this pool (Open
	// copies PoolConfig; the caller's is left alone). Zero keeps what PoolConfig says: pgx's default
	// pgx.QueryExecModeCacheStatement, or default_query_exec_mode from the connection string.
	//
	// Behind pgbouncer in transaction pooling mode use pgx.QueryExecModeCacheDescribe (or
	// QueryExecModeDescribeExec, QueryExecModeExec): CacheStatement prepares named statements on one server
	// connection and runs them on whichever the pooler hands out next, which fails with 42P05 (prepared
	// statement already exists) or 26000 (does not exist). The connection string can say the same with
	// default_query_exec_mode=cache_describe. The tenant context needs nothing else: it is set
	// transaction-locally in the same transaction as the statement, which pgbouncer never splits across
	// server connections.
	//
	// pgx.QueryExecModeSimpleProtocol, here or as default_query_exec_mode=simple_protocol in the
	// connection string, is refused by [Open] ([ErrUnsafeExecMode]): it writes the parameters into the
	// statement text, the tenant context token among them, and every session of the app role reads the
	// statement text of the others in pg_stat_activity, where a token can be replayed for its lifetime.
	ExecMode pgx.QueryExecMode

	// SigningKey signs every tenant context token. Required unless Unsigned is set.
	SigningKey ContextKey

	// Unsigned sends plain tenant ids instead of signed tokens. The database refuses them unless an owner
	// has set tenantseal.settings.allow_unsigned. It exists for engines that cannot run the verifier and for
	// measuring the verifier's cost; anyone who can run SQL as the app role can then claim any tenant.
	Unsigned bool

	// TokenTTL bounds how long a signed token stays valid, and so how long a captured token can be
	// replayed. Default DefaultTokenTTL; at most MaxTokenTTL.
	TokenTTL time.Duration

	// RolePrefix names the deployment's roles: <prefix>_owner, <prefix>_app, <prefix>_auditor. Open refuses
	// to serve as a member of the owner role. Default DefaultRolePrefix.
	RolePrefix string

	// ElevationRole is the Principal role that [Pool.Elevate] requires. Default DefaultElevationRole.
	ElevationRole string
	// MaxElevation caps the TTL of an elevation. Default DefaultMaxElevation.
	MaxElevation time.Duration
	// OnElevatedUse, if set, is called before every statement or transaction that runs elevated, with the
	// elevation's reason. The audit package records these.
	OnElevatedUse func(ctx context.Context, p tenantseal.Principal, reason string, until time.Time)
	// AuthorizeElevation, if set, must approve every elevation: [Pool.Elevate] asks it before granting,
	// and the pool again before every elevated statement or transaction, so that an approval can lapse.
	// A refusal fails with an error for which errors.Is(err, ErrElevation) holds: the hook's own when it
	// says so, otherwise the hook's wrapped. Package authn provides one that requires step-up: a staff
	// token (an admin issuer or audience), MFA, a recent auth_time, each token used for one elevation.
	AuthorizeElevation func(ctx context.Context, req ElevationRequest) error

	// Recorder receives the cross-tenant attempts the pool detects: statements without a Principal,
	// writes refused by a policy, tokens the database refuses, elevated uses, changes of the app role
	// itself. See package audit.
	Recorder tenantseal.Recorder

	// RoleCheckInterval is how often the pool checks, besides at Open, its role's role-level settings
	// (ALTER ROLE ... SET, which PostgreSQL lets every role run on itself) and that its password still
	// logs in (ALTER ROLE ... PASSWORD), and records any change as tenantseal.EventRoleChanged. Default
	// DefaultRoleCheckInterval; negative: at Open only.
	RoleCheckInterval time.Duration

	// MeterProvider provides the pool's instruments: tenantseal.db.statements and tenantseal.db.refusals
	// (see [RefusalClass]), counted by a pgx tracer that Open installs after PoolConfig's own tracer, if
	// any. Default otel.GetMeterProvider(), which records nothing until the application installs one.
	MeterProvider metric.MeterProvider

	// Logger receives what the pool cannot return to a caller: a periodic role check that failed to
	// run. Default slog.Default(). Nothing of a token, the signing key or a password is logged.
	Logger *slog.Logger

	// AllowPlaintextLoopback lets the pool connect to a loopback host (127.0.0.0/8, ::1, "localhost", a
	// Unix socket) without TLS or without verifying the server's certificate, for development on one
	// machine. Without it [Open] refuses every connection that is not TLS with the server's certificate
	// and host name verified (sslmode=verify-full), and every session that the server reports without TLS
	// ([ErrInsecureTransport]). Connections to other hosts are refused either way.
	AllowPlaintextLoopback bool

	// Replicas are hot standbys of the primary that read-only work may run on when its context comes
	// from [ReadFromReplica]; see the package's read replicas for the rule. None by default.
	Replicas []ReplicaConfig
	// ReplicaMaxLag bounds how old a replica's data may be for it to serve: a replica lagging more is
	// not used. Default DefaultReplicaMaxLag.
	ReplicaMaxLag time.Duration
	// ReplicaCheckInterval is how often the pool measures each replica's lag and reachability; it must
	// be shorter than ReplicaMaxLag. Default DefaultReplicaCheckInterval.
	ReplicaCheckInterval time.Duration
	// ReplicaNoFallback makes work that asked for a replica fail with [ErrNoReplica] when none is usable,
	// instead of running on the primary: for keeping reporting load off the primary.
	ReplicaNoFallback bool

	// Now returns the current time; tests may replace it. Default time.Now.
	Now func() time.Time
}

// ParseConfig parses a pgx connection string into a Config with defaults set. A connect timeout of
// DefaultConnectTimeout applies unless the string sets connect_timeout.
func ParseConfig(connString string) (*Config, error) {
	pc, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("db: parse connection string: %w", err)
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	return &Config{PoolConfig: pc}, nil
}

// RoleNames are the roles of a deployment: the owner, the app, the auditor, the audit writer (the only
// role that appends to the audit log: the app role can neither become it nor signal its sessions), and
// the probe, a NOLOGIN role with BYPASSRLS that owns only tenantseal.exists_elsewhere and reads only
// tenant_id and id columns.
type RoleNames struct {
	Owner, App, Auditor, AuditWriter, Probe string
}

// Roles returns the role names for prefix, or for DefaultRolePrefix when prefix is empty.
func Roles(prefix string) RoleNames {
	if prefix == "" {
		prefix = DefaultRolePrefix
	}
	return RoleNames{Owner: prefix + "_owner", App: prefix + "_app", Auditor: prefix + "_auditor",
		AuditWriter: prefix + "_audit_writer", Probe: prefix + "_probe"}
}

// validate fills defaults and checks the configuration.
func (c *Config) validate() error {
	if c.PoolConfig == nil {
		return errors.New("db: Config.PoolConfig is nil: build the Config with ParseConfig")
	}
	if !c.Unsigned {
		if c.SigningKey.ID == "" {
			return errors.New("db: Config.SigningKey is required (or set Unsigned explicitly)")
		}
		if !token.ValidKeyID(c.SigningKey.ID) || len(c.SigningKey.Secret) < 32 {
			return errors.New("db: Config.SigningKey needs an id matching [a-z0-9-]{1,32} and a secret of at least 32 bytes")
		}
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.TokenTTL < time.Second || c.TokenTTL > MaxTokenTTL {
		return fmt.Errorf("db: Config.TokenTTL %v outside [1s, %v]", c.TokenTTL, MaxTokenTTL)
	}
	if c.RolePrefix == "" {
		c.RolePrefix = DefaultRolePrefix
	}
	if c.ElevationRole == "" {
		c.ElevationRole = DefaultElevationRole
	}
	if c.MaxElevation == 0 {
		c.MaxElevation = DefaultMaxElevation
	}
	if c.MaxElevation < 0 {
		return errors.New("db: Config.MaxElevation is negative")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RoleCheckInterval == 0 {
		c.RoleCheckInterval = DefaultRoleCheckInterval
	}
	pc, err := c.poolConfig(c.PoolConfig)
	if err != nil {
		return err
	}
	c.PoolConfig = pc
	return c.validateReplicas()
}

// poolConfig is pc as the pool (or one of its replicas) connects with it: the configured exec mode,
// refused if it is the simple protocol; refused unless TLS verify-full (see Config.AllowPlaintextLoopback),
// and with every new connection asking the server whether its session is TLS before pc's own hook runs.
func (c *Config) poolConfig(pc *pgxpool.Config) (*pgxpool.Config, error) {
	if c.ExecMode != 0 {
		pc = pc.Copy()
		pc.ConnConfig.DefaultQueryExecMode = c.ExecMode
	}
	if m := pc.ConnConfig.DefaultQueryExecMode; m == pgx.QueryExecModeSimpleProtocol {
		return nil, fmt.Errorf("%w: %s writes the tenant context token into the statement text, which every session of the role reads in pg_stat_activity; use %s",
			ErrUnsafeExecMode, m, safeExecModes)
	}
	return transport.Pool(pc, c.AllowPlaintextLoopback)
}

// safeExecModes names the exec modes that send the tenant context token as a bound parameter, for errors.
const safeExecModes = "cache_statement (the default), or behind pgbouncer cache_describe, describe_exec or exec " +
	"(Config.ExecMode, or default_query_exec_mode in the connection string)"
