package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/tenantseal/tenantseal/db"
)

var tenantsCommand = command{
	name:    "tenants",
	summary: "create and list tenants as the owner",
	run:     runTenants,
}

const tenantsAbout = `
Subcommands:

	create --name NAME   create a tenant and print its id
	list                 print every tenant: id, name, status, created_at

The application never takes a tenant id from a client: its authentication code puts the tenant of the
verified caller into a db.Principal.`

func runTenants(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "tenants", "[flags] create --name NAME | list", tenantsAbout)
	conn := f.ownerConn()
	name := f.String("name", "", "with create: the tenant's name (1 to 200 characters)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("tenants: missing subcommand: create or list (see 'tenantseal tenants -h')")
	}
	sub := pos[0]
	if len(pos) > 1 {
		return usageErrorf("tenants %s: unexpected argument %q", sub, pos[1])
	}
	switch sub {
	case "create":
		if strings.TrimSpace(*name) == "" {
			return usageErrorf("tenants create: --name NAME is required")
		}
	case "list":
		if f.set("name") {
			return usageErrorf("tenants list: --name goes with create only")
		}
	default:
		return usageErrorf("tenants: unknown subcommand %q: want create or list", sub)
	}

	dsn, err := conn.ownerDSN()
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))

	if sub == "create" {
		var id db.TenantID
		if err := c.QueryRow(ctx, "INSERT INTO public.tenants (name) VALUES ($1) RETURNING id", strings.TrimSpace(*name)).Scan(&id); err != nil {
			return fmt.Errorf("create tenant: %w", err)
		}
		s.printf("%s\n", id)
		return nil
	}

	rows, err := c.Query(ctx, "SELECT id, name, status, created_at FROM public.tenants ORDER BY created_at, id")
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	type tenant struct {
		ID        db.TenantID
		Name      string
		Status    string
		CreatedAt time.Time
	}
	ts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[tenant])
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tCREATED_AT")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, printable(t.Name), t.Status, t.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// printable quotes a name that holds control characters, which would break the table or the terminal.
func printable(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
