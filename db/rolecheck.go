package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
)

// PostgreSQL lets every role ALTER ROLE itself: set a new PASSWORD, and SET any user-settable parameter
// for all its future sessions (default_transaction_read_only = on, statement_timeout = 0, search_path,
// row_security = off ...). Nothing in SQL prevents it. The pool detects it instead: at Open and every
// Config.RoleCheckInterval it reads its role's role-level settings, and periodically logs in once with
// its own configuration; what it finds is recorded as tenantseal.EventRoleChanged.

// ErrRoleChanged means the pool's role has role-level settings other than the session limits, lacks
// one of them, changed them, or no longer logs in with the pool's password; see [RoleChangeError]. Use
// errors.Is.
var ErrRoleChanged = errors.New("tenantseal: the app role changed")

// RoleChangeError lists what [Pool.CheckRole] found about the pool's role.
type RoleChangeError struct {
	Role     string
	Problems []string
}

func (e *RoleChangeError) Error() string {
	return fmt.Sprintf("tenantseal: role %s: %s", e.Role, strings.Join(e.Problems, "; "))
}

// Unwrap makes errors.Is(err, ErrRoleChanged) true.
func (e *RoleChangeError) Unwrap() error { return ErrRoleChanged }

// SessionLimitSettings are the role-level settings that bootstrap gives the app role (bootstrap.SessionLimits):
// each must be set, and not to 0; no other may be.
var SessionLimitSettings = []string{"idle_in_transaction_session_timeout", "lock_timeout", "statement_timeout"}

// roleWatch holds what the last check saw, and stops the periodic checks.
type roleWatch struct {
	mu       sync.Mutex
	role     string
	settings []string // "name=value", or "in this database: name=value", sorted
	stopOnce sync.Once
	stopped  chan struct{}
	done     chan struct{}
}

func (w *roleWatch) stop() {
	if w == nil {
		return
	}
	w.stopOnce.Do(func() { close(w.stopped) })
	<-w.done
}

// watchRole checks the role once, recording what it finds, and starts the periodic checks.
func (p *Pool) watchRole(ctx context.Context) error {
	w := &roleWatch{stopped: make(chan struct{}), done: make(chan struct{})}
	role, settings, err := p.roleSettings(ctx)
	if err != nil {
		return err
	}
	w.role, w.settings = role, settings
	p.role = w
	if problems := limitProblems(settings); len(problems) > 0 {
		p.recordRoleChange(&RoleChangeError{Role: role, Problems: problems})
	}
	if p.cfg.RoleCheckInterval <= 0 {
		close(w.done)
		return nil
	}
	every(p.cfg.RoleCheckInterval, w.stopped, w.done, func() {
		ctx, cancel := context.WithTimeout(p.base, p.cfg.RoleCheckInterval+p.cfg.PoolConfig.ConnConfig.ConnectTimeout)
		if err := p.CheckRole(ctx); err != nil && !errors.Is(err, ErrRoleChanged) {
			p.cfg.Logger.Warn("tenantseal db: periodic role check failed", "error", err.Error())
		}
		cancel()
	})
	return nil
}

// every runs fn every interval on a goroutine of its own until stop is closed, then closes done.
func every(interval time.Duration, stop <-chan struct{}, done chan<- struct{}, fn func()) {
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// CheckRole checks the pool's role now: that its role-level settings are the session limits and nothing
// else, unchanged since the last check, and that the pool's own configuration still logs in (a password
// changed with ALTER ROLE fails here first, before the pool needs a new connection). It records what it
// finds as tenantseal.EventRoleChanged and returns it as a [*RoleChangeError]; nil when all holds. Other
// errors (the server unreachable) are returned as they are and recorded nowhere.
func (p *Pool) CheckRole(ctx context.Context) error {
	w := p.role
	var problems []string
	c, err := pgconn.ConnectConfig(ctx, p.cfg.PoolConfig.ConnConfig.Config.Copy())
	switch {
	case err == nil:
		c.Close(ctx)
	case loginRefused(err):
		problems = append(problems, "the server refuses the pool's password: changed with ALTER ROLE ... PASSWORD? Connections the pool opens from now on fail")
	default:
		return fmt.Errorf("db: check role: log in: %w", err)
	}
	// With the password refused, a query may need a new connection, and fail: the settings wait for
	// the next check then.
	_, settings, err := p.roleSettings(ctx)
	if err != nil && len(problems) == 0 {
		return err
	}
	w.mu.Lock()
	before, role := w.settings, w.role
	if err == nil {
		w.settings = settings
	}
	w.mu.Unlock()
	if err == nil && !slices.Equal(before, settings) {
		problems = append(problems, fmt.Sprintf("role-level settings changed from [%s] to [%s]", strings.Join(before, ", "), strings.Join(settings, ", ")))
		problems = append(problems, limitProblems(settings)...)
	}
	if len(problems) == 0 {
		return nil
	}
	e := &RoleChangeError{Role: role, Problems: problems}
	p.recordRoleChange(e)
	return e
}

// loginRefused reports whether err is the server refusing a login: a wrong password, or none allowed.
func loginRefused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000")
}

func (p *Pool) recordRoleChange(e *RoleChangeError) {
	p.Record(p.base, tenantseal.Event{Kind: tenantseal.EventRoleChanged, Detail: e.Error()})
}

// roleSettings reads the settings of the connected role for all databases and for this one.
func (p *Pool) roleSettings(ctx context.Context) (role string, settings []string, err error) {
	rows, err := p.pool.Query(ctx, `SELECT current_user::text, coalesce(array_agg(
			CASE WHEN s.setdatabase = 0 THEN '' ELSE 'in this database: ' END || c ORDER BY s.setdatabase, c)
			FILTER (WHERE c IS NOT NULL), '{}')
		FROM (SELECT 1) one
		LEFT JOIN pg_db_role_setting s ON s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
		     AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
		LEFT JOIN LATERAL unnest(s.setconfig) c ON true`)
	if err != nil {
		return "", nil, fmt.Errorf("db: check role: %w", err)
	}
	_, err = pgx.ForEachRow(rows, []any{&role, &settings}, func() error { return nil })
	if err != nil {
		return "", nil, fmt.Errorf("db: check role: %w", err)
	}
	return role, settings, nil
}

// limitProblems tells what in settings is not the session limits of bootstrap.
func limitProblems(settings []string) []string {
	var problems []string
	seen := map[string]bool{}
	for _, s := range settings {
		name, value, _ := strings.Cut(strings.TrimPrefix(s, "in this database: "), "=")
		switch {
		case !slices.Contains(SessionLimitSettings, name):
			problems = append(problems, fmt.Sprintf("role-level setting %s: not a session limit (ALTER ROLE ... SET on itself?)", s))
		case value == "0":
			problems = append(problems, fmt.Sprintf("role-level setting %s lifts a session limit", s))
		default:
			seen[name] = true
		}
	}
	for _, name := range SessionLimitSettings {
		if !seen[name] {
			problems = append(problems, fmt.Sprintf("session limit %s is not set on the role: run tenantseal bootstrap", name))
		}
	}
	return problems
}
