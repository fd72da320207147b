package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pooled sessions. SQL injected into one request can change its session for every later user of the
// connection: SET without LOCAL or set_config(..., false) (row_security = off, statement_timeout,
// default_transaction_read_only, search_path, a session-level tenant context), and state beyond
// settings (session-level advisory locks, WITH HOLD cursors, LISTEN, SQL-level PREPARE). The pool undoes
// all of it before a connection is reused:
//
//   - every batch of one statement ends with RESET ALL, in the same round trip, or, with the C
//     verifier's tenantseal.c_enter (extension 1.2), sets its context with c_enter, which does the
//     same when the transaction commits: what the statement set for the session is undone when it
//     succeeds, and rolled back with it when it fails;
//   - a connection whose batch failed, whose statement was no SELECT, INSERT, UPDATE, DELETE or MERGE
//     (PREPARE, DECLARE, LISTEN, DO ...), that ran a transaction of Pool.Tx, or that was last swept more
//     than sweepEvery ago is swept before it returns to the pool (off the request's path): RESET ALL,
//     CLOSE ALL, UNLISTEN *, pg_advisory_unlock_all(), and DEALLOCATE ALL. A connection the sweep fails
//     on is closed. What a SELECT can take for the session besides settings (pg_advisory_lock) lives
//     until the next sweep, at most sweepEvery on a connection in use.
//
// RESET ALL returns every setting to the session's default: the connection string's (RuntimeParams),
// then the role's and the database's. Settings an application wants for every session belong there, not
// in an AfterConnect hook that runs SET. Role-level settings are the app role's own to change, and
// PostgreSQL lets it: the pool reports such changes (see Config.RoleCheckInterval).

// resetSession ends every batch whose context is not set with c_enter (enterContext).
const resetSession = "RESET ALL"

// sweepSession undoes what a session holds beyond settings and prepared statements.
const sweepSession = "RESET ALL; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()"

// sweepEvery bounds how long state beyond settings can outlive the request that made it on a connection
// whose batches all succeeded.
const sweepEvery = 10 * time.Second

// sweepTimeout bounds one sweep; a connection that does not answer in time is closed.
const sweepTimeout = 5 * time.Second

// sweptKey keys, in the connection's CustomData, the time of its last sweep.
const sweptKey = "tenantseal.swept"

// release returns c to the pool, swept first when dirty or when its last sweep is older than
// sweepEvery. The sweep runs on a goroutine of its own: the caller does not wait, the connection goes
// back to the pool when it is done, or is closed when it fails. A new connection counts as swept: it
// starts with the defaults of its role and database.
func (p *Pool) release(c *pgxpool.Conn, dirty bool) {
	data := c.Conn().PgConn().CustomData()
	now := time.Now()
	swept, ok := data[sweptKey].(time.Time)
	if !ok {
		swept, data[sweptKey] = now, now
	}
	if !dirty && now.Sub(swept) < sweepEvery {
		c.Release()
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(p.base, sweepTimeout)
		defer cancel()
		if err := sweep(ctx, c.Conn()); err != nil {
			c.Hijack().Close(ctx)
			return
		}
		data[sweptKey] = time.Now()
		c.Release()
	}()
}

// sweep runs sweepSession, then deallocates every prepared statement (those prepared with SQL, and the
// connection's own, which a DISCARD or DEALLOCATE of the statement may have taken from under its caches)
// and empties the caches of pgx and of the direct path (direct.go) with them.
func sweep(ctx context.Context, c *pgx.Conn) error {
	if _, err := c.PgConn().Exec(ctx, sweepSession).ReadAll(); err != nil {
		return fmt.Errorf("db: sweep session: %w", err)
	}
	forgetPrepared(c)
	if err := c.DeallocateAll(ctx); err != nil {
		return fmt.Errorf("db: sweep session: %w", err)
	}
	return nil
}
