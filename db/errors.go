package db

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLStateInvalidContext is the SQLSTATE that the database raises for a tenant context token that is
// malformed, altered, expired, signed with an unknown or retired key, or unsigned while unsigned mode is off.
const SQLStateInvalidContext = "TS401"

var (
	// ErrInvalidContext means the database refused the tenant context token (SQLSTATE TS401). Use errors.Is.
	ErrInvalidContext = errors.New("tenantseal: tenant context refused by the database")
	// ErrUnsafeRole means the pool's role could skip row-level security; see [RoleError]. Use errors.Is.
	ErrUnsafeRole = errors.New("tenantseal: connected role could bypass row-level security")
	// ErrUnsafeExecMode means the pool's exec mode would put the tenant context token where other
	// sessions of the role can read it: the simple protocol. Use errors.Is.
	ErrUnsafeExecMode = errors.New("tenantseal: exec mode exposes the tenant context")
	// ErrElevation means an elevation was refused: bad reason or TTL, a missing role, or expired.
	// Use errors.Is.
	ErrElevation = errors.New("tenantseal: elevation refused")
)

// RoleError reports why the connected role is unsafe for the application and how to fix it.
type RoleError struct {
	Role    string // the role the pool connected as
	Problem string // what makes it unsafe, e.g. "is a superuser"
	Fix     string // what to do instead
}

func (e *RoleError) Error() string {
	return fmt.Sprintf("tenantseal: refusing to serve as role %q: it %s, so row-level security would not apply; %s",
		e.Role, e.Problem, e.Fix)
}

// Unwrap makes errors.Is(err, ErrUnsafeRole) true.
func (e *RoleError) Unwrap() error { return ErrUnsafeRole }

// classify wraps a database refusal of the tenant context so that errors.Is(err, ErrInvalidContext) holds,
// keeping the *pgconn.PgError reachable with errors.As.
func classify(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == SQLStateInvalidContext {
		return &contextError{err: err}
	}
	return err
}

type contextError struct{ err error }

func (e *contextError) Error() string   { return e.err.Error() }
func (e *contextError) Unwrap() []error { return []error{ErrInvalidContext, e.err} }
