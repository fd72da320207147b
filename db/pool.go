package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/token"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool is a pgx connection pool whose every statement runs under the tenant context of the Principal in
// its context.Context. Open it with the app role's connection string.
type Pool struct {
	pool *pgxpool.Pool
	cfg  Config
	// tokens holds signed tokens for reuse during half their lifetime, by principal.
	tokensMu sync.RWMutex
	tokens   map[tokenKey]cachedToken
	stores   int
	// base is the context of the pool's own statements (sweeps, role checks): Open's values, never
	// cancelled.
	base context.Context
	role *roleWatch
	// verifier is what the database verifies tenant contexts with, as found at Open.
	verifier Verifier
	metrics  *metrics
	// replicas is nil without Config.Replicas.
	replicas *replicas
	// citus: the database is a Citus coordinator (see citus.go), as found at Open.
	citus bool
	// direct: scoped statements take the direct send path (direct.go). enter: the database has
	// tenantseal.c_enter, which sets the context and undoes the session's settings at commit, so the
	// batch needs no RESET ALL of its own (verifier.go).
	direct bool
	enter  atomic.Bool
}

type tokenKey struct {
	tenant  tenantseal.TenantID
	subject string
}

type cachedToken struct {
	arg     any // the token, as the batch's argument: boxed once, not on every statement
	renewAt time.Time
}

// Open connects, checks that the connected role cannot bypass row-level security, and returns the pool.
// It fails with a [*RoleError] (errors.Is(err, ErrUnsafeRole)) when the role is a superuser, has
// BYPASSRLS, is a member of the owner role or owns a table, with [ErrUnsafeExecMode] for the simple
// protocol, with a [*TransportError] (errors.Is(err, ErrInsecureTransport)) for a connection that is not
// TLS verify-full or a session the server reports without TLS (see Config.AllowPlaintextLoopback), and
// within the connect timeout when the server cannot be reached. It records the role-level
// settings of the role that are not the session limits bootstrap sets, and goes on checking them and the
// role's password every Config.RoleCheckInterval (see [Pool.CheckRole]). [Pool.Verifier] reports which
// verifier of tenant contexts the database runs. Each of Config.Replicas is held to the same role checks
// when first reached, and Open fails for one whose role is unsafe; one that cannot be reached yet is not
// an error (see the package's read replicas).
func Open(ctx context.Context, cfg *Config) (*Pool, error) {
	if cfg == nil {
		return nil, errors.New("db: nil Config")
	}
	c := *cfg
	if err := c.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(c.MeterProvider)
	if err != nil {
		return nil, err
	}
	// The direct send path (direct.go) where pgx's batch would only add bookkeeping: the default exec
	// mode, and no tracer of the application's own to show the batch to.
	direct := c.PoolConfig.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement &&
		c.PoolConfig.ConnConfig.Tracer == nil
	c.PoolConfig = m.instrument(c.PoolConfig)
	p := &Pool{cfg: c, base: context.WithoutCancel(ctx), metrics: m}
	pool, err := pgxpool.NewWithConfig(ctx, p.cfg.PoolConfig)
	if err != nil {
		return nil, fmt.Errorf("db: open pool: %w", err)
	}
	p.pool = pool
	var te *TransportError
	if err := pool.Ping(ctx); errors.As(err, &te) {
		pool.Close()
		return nil, te
	}
	if err := checkRole(ctx, pool, Roles(c.RolePrefix).Owner); err != nil {
		pool.Close()
		return nil, err
	}
	if p.verifier, err = loadVerifier(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if p.citus, err = citusNode(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	p.direct = direct && !p.citus
	enter, err := canEnter(ctx, pool, p.verifier)
	if err != nil {
		pool.Close()
		return nil, err
	}
	p.enter.Store(enter)
	if p.citus {
		if len(c.Replicas) > 0 {
			pool.Close()
			return nil, errors.New("db: Config.Replicas with a Citus coordinator: Citus reads from its own secondary nodes (citus.use_secondary_nodes)")
		}
		if cfg.TokenTTL == 0 {
			p.cfg.TokenTTL = CitusTokenTTL
		}
	}
	if err := p.openReplicas(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := p.watchRole(ctx); err != nil {
		p.replicas.close()
		pool.Close()
		return nil, err
	}
	return p, nil
}

// Close stops the role and replica checks and closes every connection of the pool and its replicas.
func (p *Pool) Close() {
	p.role.stop()
	p.replicas.close()
	p.pool.Close()
}

// Stat returns the pool's statistics.
func (p *Pool) Stat() *pgxpool.Stat { return p.pool.Stat() }

// checkRole refuses roles for which row-level security would silently not apply.
func checkRole(ctx context.Context, pool *pgxpool.Pool, ownerRole string) error {
	const q = `
SELECT r.rolname, r.rolsuper, r.rolbypassrls,
       coalesce((SELECT pg_has_role(r.oid, o.oid, 'MEMBER') FROM pg_roles o WHERE o.rolname = $1), false),
       coalesce((SELECT string_agg(o.rolname, ', ' ORDER BY o.rolname) FROM pg_roles o
                  WHERE o.oid <> r.oid AND (o.rolsuper OR o.rolbypassrls) AND pg_has_role(r.oid, o.oid, 'MEMBER')), ''),
       coalesce((SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ' ORDER BY n.nspname, c.relname)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                    AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'), '')
  FROM pg_roles r WHERE r.rolname = current_user`
	var (
		role, owned, bypassRoles   string
		super, bypass, ownerMember bool
	)
	err := pool.QueryRow(ctx, q, ownerRole).Scan(&role, &super, &bypass, &ownerMember, &bypassRoles, &owned)
	if err != nil {
		return fmt.Errorf("db: check connected role: %w", err)
	}
	switch {
	case super:
		return &RoleError{Role: role, Problem: "is a superuser",
			Fix: "connect as the app role that bootstrap created (NOSUPERUSER)"}
	case bypass:
		return &RoleError{Role: role, Problem: "has BYPASSRLS",
			Fix: fmt.Sprintf("run ALTER ROLE %s NOBYPASSRLS or connect as the app role", pgx.Identifier{role}.Sanitize())}
	case role == ownerRole:
		return &RoleError{Role: role, Problem: "is the owner role, which owns the tables",
			Fix: "connect as the app role that bootstrap created; the owner only runs migrations"}
	case ownerMember:
		return &RoleError{Role: role, Problem: fmt.Sprintf("is a member of the owner role %q", ownerRole),
			Fix: fmt.Sprintf("run REVOKE %s FROM %s", pgx.Identifier{ownerRole}.Sanitize(), pgx.Identifier{role}.Sanitize())}
	case bypassRoles != "":
		return &RoleError{Role: role, Problem: "is a member of roles that bypass row-level security (" + bypassRoles + ")",
			Fix: fmt.Sprintf("revoke those roles from %s: it could SET ROLE to them", pgx.Identifier{role}.Sanitize())}
	case owned != "":
		return &RoleError{Role: role, Problem: "owns tables (" + owned + ")",
			Fix: fmt.Sprintf("run ALTER TABLE ... OWNER TO %s for each: the app role must own nothing", pgx.Identifier{ownerRole}.Sanitize())}
	}
	return nil
}

// token returns the tenant context token for the Principal in ctx, or ErrNoTenant before any SQL is sent.
func (p *Pool) token(ctx context.Context, stmt string) (tok any, elevated bool, err error) {
	pr, ok := tenantseal.PrincipalFrom(ctx)
	if !ok || pr.Tenant.IsZero() {
		p.Record(ctx, tenantseal.Event{Kind: tenantseal.EventNoTenant, Operation: operation(stmt)})
		return nil, false, tenantseal.ErrNoTenant
	}
	now := p.cfg.Now()
	claims := token.Claims{Tenant: pr.Tenant.Handle(), Subject: pr.Subject, Expires: now.Add(p.cfg.TokenTTL)}
	if e, ok := ctx.Value(elevationKey{}).(elevation); ok {
		reason, until := e.reason, e.until
		switch {
		case p.cfg.Unsigned:
			return nil, false, fmt.Errorf("%w: elevation needs signed tokens", ErrElevation)
		case !pr.HasRole(p.cfg.ElevationRole):
			return nil, false, fmt.Errorf("%w: principal lacks the %q role", ErrElevation, p.cfg.ElevationRole)
		case e.ttl > p.cfg.MaxElevation:
			return nil, false, fmt.Errorf("%w: ttl %v exceeds the maximum %v", ErrElevation, e.ttl, p.cfg.MaxElevation)
		case !now.Before(until.Truncate(time.Second)):
			return nil, false, fmt.Errorf("%w: expired at %s", ErrElevation, until.UTC().Format(time.RFC3339))
		}
		if err := p.authorizeElevation(ctx, pr, e, true); err != nil {
			return nil, false, err
		}
		if until.Before(claims.Expires) {
			claims.Expires = until
		}
		claims.Tenant, claims.Elevated = e.tenant.Handle(), true
		if p.cfg.OnElevatedUse != nil {
			p.cfg.OnElevatedUse(ctx, pr, reason, until)
		}
		p.Record(ctx, tenantseal.Event{Kind: tenantseal.EventElevation, TargetTenant: e.tenant, Operation: operation(stmt),
			Detail: fmt.Sprintf("reason %q, ttl %v, until %s", reason, e.ttl, until.UTC().Format(time.RFC3339))})
	}
	if p.cfg.Unsigned {
		return p.contextArg(token.Unsigned(pr.Tenant.Handle())), false, nil
	}
	// Ordinary tokens are signed once and reused for half their lifetime: a request's statements,
	// and the next requests of the same principal, skip the HMAC. Elevated ones are signed every time.
	key := tokenKey{pr.Tenant, pr.Subject}
	if !claims.Elevated {
		p.tokensMu.RLock()
		c, ok := p.tokens[key]
		p.tokensMu.RUnlock()
		if ok && now.Before(c.renewAt) {
			return c.arg, false, nil
		}
	}
	signed, err := token.Sign(p.cfg.SigningKey.ID, p.cfg.SigningKey.Secret, claims)
	if err != nil {
		return nil, false, fmt.Errorf("db: sign tenant context: %w", err)
	}
	if tok = p.contextArg(signed); tok == nil {
		return nil, false, errors.New("db: sign tenant context: the token does not fit the Citus mode's statement")
	}
	if !claims.Elevated {
		p.tokensMu.Lock()
		if p.tokens == nil {
			p.tokens = map[tokenKey]cachedToken{}
		}
		p.tokens[key] = cachedToken{arg: tok, renewAt: now.Add(p.cfg.TokenTTL / 2)}
		if p.stores++; p.stores%1024 == 0 {
			// Forget principals that have gone quiet: the cache holds only recent ones.
			for k, v := range p.tokens {
				if !now.Before(v.renewAt) {
					delete(p.tokens, k)
				}
			}
		}
		p.tokensMu.Unlock()
	}
	return tok, claims.Elevated, nil
}

// contextArg is tok as the batch takes it: the argument of setContext, or in Citus mode the SET LOCAL
// statement itself (nil when tok cannot be one).
func (p *Pool) contextArg(tok string) any {
	if !p.citus {
		return tok
	}
	stmt, err := citusContextSQL(tok)
	if err != nil {
		return nil
	}
	return stmt
}

// Ping checks that the server answers.
func (p *Pool) Ping(ctx context.Context) error { return p.pool.Ping(ctx) }

var _ interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
} = (*Pool)(nil)
