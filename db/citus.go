package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Citus: a pool opened on the coordinator of a Citus cluster (a database with the citus extension whose
// tenantseal schema is at migration 25 or later) runs in Citus mode, which Open finds by itself.
//
//   - set_config does not reach the workers, where the policies of distributed tables are evaluated;
//     SET LOCAL does, with citus.propagate_set_commands = local, in a transaction block. So every scoped
//     statement is sent as BEGIN, SET LOCAL citus.propagate_set_commands, SET LOCAL tenantseal.context,
//     the statement, COMMIT, RESET ALL: still one round trip.
//   - SET LOCAL takes no bind parameter: the token is in the statement's text, on the coordinator while
//     the batch runs and on each worker while Citus opens its transaction there. Sessions of the app
//     role can read that text (pg_stat_activity, citus_stat_activity) and replay the token for its
//     tenant until it expires, and a server that logs statements writes it to its log. This is the
//     trade-off of the Citus mode, bounded: tokens live CitusTokenTTL unless Config.TokenTTL says
//     otherwise (and at most MaxTokenTTL), and Open refuses a cluster whose coordinator or any worker
//     logs every statement (log_statement = all, or log_min_duration_statement = 0).
//   - The verifier runs on every node against tenantseal's node-local tables, which the coordinator
//     keeps alike on every worker (migration 25); the isolation suite checks that they are.

// CitusTokenTTL is how long a token lives in Citus mode when Config.TokenTTL is not set.
const CitusTokenTTL = 10 * time.Second

const (
	citusPropagate = "SET LOCAL citus.propagate_set_commands TO local"
	citusContext   = "SET LOCAL " + ContextSetting + " TO '"
)

// ErrStatementLogging is returned by Open in Citus mode when a node of the cluster logs every statement:
// the tenant context's token, which the Citus mode sends as statement text, would be written to its log.
var ErrStatementLogging = errors.New("db: a Citus node logs every statement, tenant context tokens among them")

// citusNode finds whether pool's database is a Citus coordinator: true for one, false without Citus. It
// refuses a Citus worker (the application connects to the coordinator), a schema from before the Citus
// mode, and a cluster with a node that logs every statement.
func citusNode(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var citus, migrated bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus'),
		to_regprocedure('tenantseal.citus_node_role()') IS NOT NULL`).Scan(&citus, &migrated)
	if err != nil {
		return false, fmt.Errorf("db: check for Citus: %w", err)
	}
	if !citus {
		return false, nil
	}
	if !migrated {
		return false, errors.New("db: the database runs Citus and its tenantseal schema is older than the Citus mode: run the migrations on every node (tenantseal bootstrap does)")
	}
	var role string
	if err := pool.QueryRow(ctx, "SELECT tenantseal.citus_node_role()").Scan(&role); err != nil {
		return false, fmt.Errorf("db: check for Citus: %w", err)
	}
	if role != "coordinator" {
		return false, errors.New("db: the database is a Citus worker: connect the application to the coordinator")
	}
	// citus.log_remote_commands logs every command the coordinator sends the workers, the context's
	// SET LOCAL among them.
	var remote string
	if err := pool.QueryRow(ctx, "SELECT current_setting('citus.log_remote_commands')").Scan(&remote); err != nil {
		return false, fmt.Errorf("db: check the Citus coordinator's logging: %w", err)
	}
	if remote == "on" {
		return false, fmt.Errorf("%w: the coordinator has citus.log_remote_commands on, which logs the commands it sends the workers", ErrStatementLogging)
	}
	rows, err := pool.Query(ctx, `SELECT 'coordinator', true, current_setting('log_statement') || ' ' || current_setting('log_min_duration_statement')
		UNION ALL SELECT nodename || ':' || nodeport, success, result FROM pg_catalog.run_command_on_workers(
			$$SELECT current_setting('log_statement') || ' ' || current_setting('log_min_duration_statement')$$)`)
	if err != nil {
		return false, fmt.Errorf("db: check the Citus nodes' logging: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var node, result string
		var ok bool
		if err := rows.Scan(&node, &ok, &result); err != nil {
			return false, fmt.Errorf("db: check the Citus nodes' logging: %w", err)
		}
		if !ok {
			return false, fmt.Errorf("db: Citus worker %s cannot be reached as the app role: %s", node, result)
		}
		statement, duration, _ := strings.Cut(result, " ")
		if statement == "all" || duration == "0" {
			return false, fmt.Errorf("%w: %s has log_statement %s and log_min_duration_statement %s (set none, ddl or mod, and -1 or more than 0)",
				ErrStatementLogging, node, statement, duration)
		}
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("db: check the Citus nodes' logging: %w", err)
	}
	return true, nil
}

// citusContextSQL is the statement that sets tok on the coordinator and, through Citus, on every worker
// the transaction reaches. Tokens are [a-z0-9.-] by construction; anything else is refused rather
// than quoted.
func citusContextSQL(tok string) (string, error) {
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return "", errors.New("db: a tenant context token holds a character outside [a-z0-9.-]")
		}
	}
	return citusContext + tok + "'", nil
}

// citusStatement is the Citus mode's context statement for tok, as Pool.token made it or "" (no
// context, as Unscoped sends): a value of neither kind sets no context, which no policy admits.
func citusStatement(tok any) string {
	if s, ok := tok.(string); ok && strings.HasPrefix(s, citusContext) {
		return s
	}
	return citusContext + "'"
}

// framing reports whether sql is one of the statements the pool adds around each statement.
func framing(sql string) bool {
	switch sql {
	case setContext, enterContext, resetSession, beginReadOnly, beginBlock, commitBlock, citusPropagate:
		return true
	}
	return strings.HasPrefix(sql, citusContext)
}

// Citus reports whether the pool runs in Citus mode: its database is the coordinator of a Citus cluster.
func (p *Pool) Citus() bool { return p.citus }
