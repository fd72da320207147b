package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tenantseal/tenantseal/migrations"
)

var migrateCommand = command{
	name:    "migrate",
	summary: "apply, revert, inspect or repair the schema migrations as the owner",
	run:     runMigrate,
}

const migrateAbout = `
Subcommands:

	up          apply every pending migration
	down [N]    revert the last N migrations (default 1)
	down --all  revert every migration
	status      list the migrations, [x] applied, [ ] pending, and the dirty flag
	version     print the applied version (0: none)
	goto V      migrate up or down to version V (0: revert all)
	force V     mark version V applied and clean without running anything (0 or -1: none applied)

A migration that fails part-way leaves the database dirty at its version: every subcommand but force then
fails with that version. Repair the schema by hand, run 'tenantseal migrate force <last good version>',
then migrate again. The same migration files work with the stock migrate CLI.`

func runMigrate(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "migrate", "[flags] up | down [N | --all] | status | version | goto V | force V", migrateAbout)
	conn := f.ownerConn()
	all := f.Bool("all", false, "with down: revert every migration")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("migrate: missing subcommand: up, down, status, version, goto or force (see 'tenantseal migrate -h')")
	}
	sub, rest := pos[0], pos[1:]
	if *all && sub != "down" {
		return usageErrorf("migrate: --all goes with down only")
	}

	// Check the arguments before connecting.
	var n int
	switch sub {
	case "up", "status", "version":
		if len(rest) > 0 {
			return usageErrorf("migrate %s: unexpected argument %q", sub, rest[0])
		}
	case "down":
		switch {
		case len(rest) > 1:
			return usageErrorf("migrate down: unexpected argument %q", rest[1])
		case *all && len(rest) == 1:
			return usageErrorf("migrate down: give N or --all, not both")
		case *all:
			n = 0
		case len(rest) == 0:
			n = 1
		default:
			if n, err = strconv.Atoi(rest[0]); err != nil || n < 1 {
				return usageErrorf("migrate down: N must be a positive number, got %q (--all reverts everything)", rest[0])
			}
		}
	case "goto", "force":
		if len(rest) != 1 {
			return usageErrorf("migrate %s: needs exactly one version, e.g. 'tenantseal migrate %s %d'", sub, sub, migrations.Latest())
		}
		if n, err = strconv.Atoi(rest[0]); err != nil || n < -1 || (sub == "goto" && n < 0) {
			return usageErrorf("migrate %s: version must be a number of a migration, got %q", sub, rest[0])
		}
	default:
		return usageErrorf("migrate: unknown subcommand %q: want up, down, status, version, goto or force", sub)
	}

	dsn, err := conn.ownerDSN()
	if err != nil {
		return err
	}
	// A migration that keeps something it would otherwise remove says so with a NOTICE or WARNING: the
	// operator must see it.
	notice := func(n *pgconn.Notice) {
		fmt.Fprintf(s.stderr, "tenantseal: %s: %s\n", n.Severity, s.redact(oneLine(n.Message)))
	}
	mg, err := migrations.New(ctx, dsn, migrations.Options{OnNotice: notice})
	if err != nil {
		return err
	}
	defer mg.Close()

	before, dirty, err := mg.Version()
	if err != nil {
		return err
	}
	if dirty && sub != "force" && sub != "status" && sub != "version" {
		return &migrations.DirtyError{Version: int(before)}
	}
	switch sub {
	case "status":
		for _, m := range migrations.List(before) {
			mark := " "
			if m.Applied {
				mark = "x"
			}
			s.printf("[%s] %04d %s\n", mark, m.Version, m.Name)
		}
		s.printf("version %d, dirty: %s\n", before, yesNo(dirty))
		if dirty {
			return &migrations.DirtyError{Version: int(before)}
		}
		return nil
	case "version":
		if dirty {
			s.printf("%d (dirty)\n", before)
			return &migrations.DirtyError{Version: int(before)}
		}
		s.printf("%d\n", before)
		return nil
	case "force":
		if err := mg.Force(ctx, n); err != nil {
			return err
		}
		s.printf("forced version %d (clean); nothing was run\n", max(n, 0))
		return nil
	case "up":
		err = mg.Up(ctx)
	case "down":
		applied := 0
		for _, m := range migrations.List(before) {
			if m.Applied {
				applied++
			}
		}
		if n > applied {
			return fmt.Errorf("migrate down: only %d migration(s) applied, cannot revert %d", applied, n)
		}
		err = mg.Down(ctx, n)
	case "goto":
		err = mg.Goto(ctx, uint(n))
	}
	if err != nil {
		return err
	}
	after, _, err := mg.Version()
	if err != nil {
		return err
	}
	if after == before {
		s.printf("at version %d: nothing to do\n", after)
	} else {
		s.printf("migrated from version %d to %d\n", before, after)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
