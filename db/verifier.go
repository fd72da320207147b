package db

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Verifier names the implementation of the tenant context verifier that a database runs: the functions
// behind tenantseal.current_tenant(), which every tenant policy calls once per statement. Both answer
// alike for every token and refuse with the same TS401; they differ in cost.
type Verifier string

const (
	// VerifierC is the extension tenantseal_verify (ext/tenantseal_verify), which the migrations install
	// and select where the server has it: verified tokens and signing keys are cached in each backend.
	VerifierC Verifier = "c"
	// VerifierPLpgSQL is the verifier in plpgsql, selected where the extension is not installed (managed
	// PostgreSQL, where no custom C extension can be), and the only one before migration 20.
	VerifierPLpgSQL Verifier = "plpgsql"
)

// Verifier reports which verifier the database ran when [Open] connected. tenantseal.select_verifier()
// switches it; a pool opened before a switch keeps reporting what it found.
func (p *Pool) Verifier() Verifier { return p.verifier }

// loadVerifier asks the database which verifier it runs (tenantseal.verifier(), from migration 20 on).
func loadVerifier(ctx context.Context, pool *pgxpool.Pool) (Verifier, error) {
	var v string
	err := pool.QueryRow(ctx, "SELECT tenantseal.verifier()").Scan(&v)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "42883":
		// A schema migrated before migration 20: current_tenant() is the plpgsql verifier itself.
		return VerifierPLpgSQL, nil
	case err != nil:
		return "", fmt.Errorf("db: ask which verifier the database runs: %w", err)
	}
	switch Verifier(v) {
	case VerifierC, VerifierPLpgSQL:
		return Verifier(v), nil
	}
	return "", fmt.Errorf("db: the database runs an unknown verifier %q", v)
}

// enterContext is the context statement where the database has tenantseal.c_enter (the C verifier's
// extension from version 1.2): it sets the context transaction-locally, as setContext does, and undoes
// every setting the transaction's statements made for the session when the transaction commits, as a
// RESET ALL after them would (see the package's pooled sessions). The batch is then the context and the
// statement: one statement less for the server to run. It returns one row of no value.
const enterContext = "SELECT tenantseal.c_enter($1)"

// canEnter reports whether the pool's role may call tenantseal.c_enter, with the C verifier selected.
func canEnter(ctx context.Context, pool *pgxpool.Pool, v Verifier) (bool, error) {
	if v != VerifierC {
		return false, nil
	}
	var ok bool
	err := pool.QueryRow(ctx, "SELECT coalesce(has_function_privilege(to_regprocedure('tenantseal.c_enter(text)'), 'EXECUTE'), false)").Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("db: ask whether the database has tenantseal.c_enter: %w", err)
	}
	return ok, nil
}

// enterGone stops the pool's use of c_enter when err says the database no longer lets it call it (the
// extension dropped or taken back to an older version, the grant revoked, while the pool was open; a
// standby whose server has an older build of the extension than the primary's catalog names): the
// statement that found out fails, the ones after it send set_config and RESET ALL.
func (p *Pool) enterGone(err error) {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return
	}
	// (text) where the connection had prepared the call, (unknown) where it prepares it now: a call
	// that names a type of its own, (integer) say, fails the same way while c_enter(text) exists.
	gone := pg.Code == "42883" && (pg.Message == "function tenantseal.c_enter(text) does not exist" ||
		pg.Message == "function tenantseal.c_enter(unknown) does not exist" ||
		strings.HasPrefix(pg.Message, `could not find function "ts_enter" in file`))
	denied := pg.Code == "42501" && pg.Message == "permission denied for function c_enter"
	if gone || denied {
		p.enter.Store(false)
	}
}
