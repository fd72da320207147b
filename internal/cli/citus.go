package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
)

var citusCommand = command{
	name:    "citus",
	summary: "on a Citus coordinator: check that every worker has the verifier's keys, tenants and settings, or send them",
	run:     runCitus,
}

const citusAbout = `
Subcommands:

	check   compare the verifier's tables (context keys, tenants, settings) of every worker with the
	        coordinator's: prints one line per node, and fails (exit 1) when a worker differs or cannot
	        be reached
	sync    send every row of those tables to every worker (after adding a worker, or after a check
	        failed); the coordinator sends each change by itself before it commits

On Citus each node has tenantseal's schema of its own ('tenantseal bootstrap' on the coordinator
migrates every node), since the policies run on the workers, where a shard query cannot read a
reference table. Run both as the owner role, on the coordinator; the owner connects to the workers
through Citus, with the coordinator's authentication settings for it (pg_dist_authinfo, .pgpass).`

func runCitus(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "citus", "check | sync", citusAbout)
	conn := f.ownerConn()
	f.output()
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usageErrorf("citus: missing subcommand: check or sync (see 'tenantseal citus -h')")
	case pos[0] != "check" && pos[0] != "sync":
		return usageErrorf("citus: unknown subcommand %q: want check or sync", pos[0])
	case len(pos) > 1:
		return usageErrorf("citus %s: unexpected argument %q", pos[0], pos[1])
	}
	c, err := ownerConnect(ctx, conn, "citus "+pos[0])
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var role *string
	if err := c.QueryRow(ctx, "SELECT CASE WHEN to_regprocedure('tenantseal.citus_node_role()') IS NOT NULL THEN tenantseal.citus_node_role() END").Scan(&role); err != nil {
		return err
	}
	if role == nil || *role != "coordinator" {
		what := "has no citus extension or a tenantseal schema from before the Citus mode (migration 25)"
		if role != nil {
			what = "is a Citus worker: run it on the coordinator"
		}
		return fmt.Errorf("citus %s: the database %s", pos[0], what)
	}
	if pos[0] == "sync" {
		var n int
		if err := c.QueryRow(ctx, "SELECT tenantseal.sync_nodes()").Scan(&n); err != nil {
			return fmt.Errorf("citus sync: %w", err)
		}
		fmt.Fprintf(s.stdout, "sent the verifier's keys, tenants and settings to %d workers\n", n)
		return nil
	}
	var want string
	if err := c.QueryRow(ctx, "SELECT tenantseal.node_state_digest()").Scan(&want); err != nil {
		return fmt.Errorf("citus check: %w", err)
	}
	rows, err := c.Query(ctx, `SELECT nodename || ':' || nodeport, success, result
		FROM pg_catalog.run_command_on_workers('SELECT tenantseal.node_state_digest()') ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("citus check: %w", err)
	}
	type node struct {
		name, result string
		ok           bool
	}
	nodes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (node, error) {
		var n node
		return n, r.Scan(&n.name, &n.ok, &n.result)
	})
	if err != nil {
		return fmt.Errorf("citus check: %w", err)
	}
	w := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "coordinator\tin step (itself)\n")
	bad := 0
	for _, n := range nodes {
		switch {
		case !n.ok:
			bad++
			fmt.Fprintf(w, "%s\tUNREACHABLE: %s\n", n.name, oneLine(n.result))
		case n.result != want:
			bad++
			fmt.Fprintf(w, "%s\tDIFFERS: its keys, tenants or settings are not the coordinator's ('tenantseal citus sync')\n", n.name)
		default:
			fmt.Fprintf(w, "%s\tin step\n", n.name)
		}
	}
	w.Flush()
	if bad > 0 {
		return fmt.Errorf("citus check: %d of %d workers not in step", bad, len(nodes))
	}
	return nil
}
