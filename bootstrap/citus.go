package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/internal/dsn"
)

// Node is a Citus worker as the coordinator's metadata names it.
type Node struct {
	Host string
	Port int
}

func (n Node) String() string { return n.Host + ":" + strconv.Itoa(n.Port) }

// CitusWorkers returns the active primary workers of the Citus coordinator conn is connected to, or
// nil without an error when its database has no citus extension. It refuses a Citus worker: a
// cluster is bootstrapped from its coordinator.
func CitusWorkers(ctx context.Context, conn *pgx.Conn) ([]Node, error) {
	var citus bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").Scan(&citus); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if !citus {
		return nil, nil
	}
	var group int
	if err := conn.QueryRow(ctx, "SELECT groupid FROM pg_catalog.pg_dist_local_group").Scan(&group); err != nil {
		return nil, fmt.Errorf("bootstrap: Citus metadata: %w", err)
	}
	if group != 0 {
		return nil, errors.New("bootstrap: this database is a Citus worker: bootstrap the cluster from its coordinator")
	}
	rows, err := conn.Query(ctx, `SELECT nodename, nodeport FROM pg_catalog.pg_dist_node
		WHERE groupid <> 0 AND noderole = 'primary' AND isactive ORDER BY nodeid`)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: Citus nodes: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) {
		var n Node
		return n, r.Scan(&n.Host, &n.Port)
	})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: Citus nodes: %w", err)
	}
	if len(nodes) == 0 {
		return nil, errors.New("bootstrap: the Citus coordinator has no active worker: add them first (citus_add_node)")
	}
	return nodes, nil
}

// NodeDSN is connString with the host and port of node: the same role, database, TLS settings and
// timeouts on another node of the cluster. With TLS verify-full, node.Host must be a name the node's
// certificate holds.
func NodeDSN(connString string, node Node) (string, error) {
	s, err := dsn.Parse(connString)
	if err != nil {
		return "", err
	}
	s.Set(dsn.Host, node.Host)
	s.Set(dsn.Port, strconv.Itoa(node.Port))
	return s.ConnString(), nil
}

// RunCluster is [Run] for a server that may be the coordinator of a Citus cluster. When opts.Database
// exists on superDSN's server with the citus extension (CREATE EXTENSION citus on every node and
// citus_add_node for each worker come first: they are the cluster's, not tenantseal's), every node gets
// tenantseal's roles, with the same passwords, and its own copy of tenantseal's schema, migrated node by
// node; the coordinator then makes the context key, and its triggers keep the verifier's tables (keys,
// tenants, settings) alike on every worker, sync_nodes sending all of them at the end. superDSN's
// role, password and TLS settings serve for every node, at the host and port the coordinator's
// metadata gives it (see [NodeDSN]). Result.Actions names each node's steps.
//
// Without Citus it is Run.
func RunCluster(ctx context.Context, superDSN string, opts Options) (*Result, error) {
	if opts.Database == "" {
		opts.Database = DefaultDatabase
	}
	workers, err := clusterWorkers(ctx, superDSN, opts.Database)
	if err != nil || workers == nil {
		if err != nil {
			return nil, err
		}
		return Run(ctx, superDSN, opts)
	}
	if opts.ResetPasswords || len(opts.ResetRoles) > 0 {
		// Run gives a reset role a new random password: the workers' would differ from the coordinator's.
		return nil, errors.New("bootstrap: new passwords on a Citus cluster are not supported: set them on every node with ALTER ROLE ... PASSWORD, then write them to the secrets file")
	}
	// The roles on the coordinator first: their passwords, saved before they are set, serve on every node.
	first := opts
	first.SkipMigrate = true
	res, err := Run(ctx, superDSN, first)
	if err != nil {
		return nil, err
	}
	passwords, err := res.passwords()
	if err != nil {
		return nil, err
	}
	actions, warnings := res.Actions, res.Warnings
	for _, w := range workers {
		wdsn, err := NodeDSN(superDSN, w)
		if err != nil {
			return nil, err
		}
		wopts := opts
		wopts.Passwords, wopts.Save = passwords, nil
		wopts.noContextKey = true
		// Citus creates a table's shards over several connections of one distributed transaction:
		// DDL triggers chaining every shard into the worker's audit log would wait on each other
		// (Citus cancels that as a distributed deadlock). The coordinator records the DDL.
		wopts.NoEventTriggers = true
		wr, err := Run(ctx, wdsn, wopts)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: Citus worker %s: %w", w, err)
		}
		for _, a := range wr.Actions {
			actions = append(actions, "worker "+w.String()+": "+a)
		}
		warnings = append(warnings, prefixed("worker "+w.String()+": ", wr.Warnings)...)
	}
	last := opts
	last.Passwords = passwords
	res, err = Run(ctx, superDSN, last)
	if err != nil {
		return nil, err
	}
	owner, err := pgx.Connect(ctx, res.OwnerDSN)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect as owner: %w", err)
	}
	defer owner.Close(context.WithoutCancel(ctx))
	var n int
	if err := owner.QueryRow(ctx, "SELECT tenantseal.sync_nodes()").Scan(&n); err != nil {
		return nil, fmt.Errorf("bootstrap: send the verifier's tables to the Citus workers: %w", err)
	}
	res.Actions = append(append(actions, res.Actions...), fmt.Sprintf("sent the verifier's keys, tenants and settings to %d Citus workers", n))
	for _, w := range warnings {
		if !slices.Contains(res.Warnings, w) {
			res.Warnings = append(res.Warnings, w)
		}
	}
	return res, nil
}

func prefixed(p string, s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = p + v
	}
	return out
}

// clusterWorkers returns the Citus workers of database on superDSN's server, nil when the database
// does not exist yet or has no Citus.
func clusterWorkers(ctx context.Context, superDSN, database string) ([]Node, error) {
	s, err := dsn.Parse(superDSN)
	if err != nil {
		return nil, err
	}
	s.Set(dsn.Database, database)
	conn, err := pgx.Connect(ctx, s.ConnString())
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "3D000" { // invalid_catalog_name: not created yet
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect to %s: %w", database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return CitusWorkers(ctx, conn)
}

// passwords are the roles' passwords, as the connection strings of r hold them.
func (r *Result) passwords() (Passwords, error) {
	p := Passwords{}
	for role, conn := range map[string]string{r.Roles.Owner: r.OwnerDSN, r.Roles.App: r.AppDSN, r.Roles.Auditor: r.AuditorDSN, r.Roles.AuditWriter: r.AuditWriterDSN} {
		s, err := dsn.Parse(conn)
		if err != nil {
			return nil, err
		}
		p[role] = s.Get(dsn.Password)
	}
	return p, nil
}
