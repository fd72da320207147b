package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/keys"
)

var tenantsCommand = command{
	name:    "tenants",
	summary: "create, list and crypto-shred tenants as the owner",
	run:     runTenants,
}

const tenantsAbout = `
Subcommands:

	create --name NAME [--no-keys]   create a tenant with its keysets, in one transaction, and print its
	                                 id. Needs the KEK (--kek, else $TENANTSEAL_KEK_URI, else the secrets
	                                 file); --no-keys creates a tenant without keysets, which cannot use
	                                 encrypted fields until 'tenantseal keys create --tenant T'
	list                             print every tenant: id, name, status, created_at
	shred T --confirm T              crypto-shred tenant T: destroy its keysets, so that every encrypted
	                                 field of T is unreadable for good. --confirm must repeat the id; a
	                                 missing or different one is a usage error (exit 2) and changes
	                                 nothing. Needs no KEK. The tenant's rows and unencrypted columns stay

The application never takes a tenant id from a client: its authentication code puts the tenant of the
verified caller into a tenantseal.Principal.`

var tenantsSubcommands = []subcommand{
	{"create", ownerFlags + " name kek no-keys"},
	{"list", ownerFlags},
	{"shred", ownerFlags + " confirm"},
}

func runTenants(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "tenants", "[flags] create --name NAME [--no-keys] | list | shred T --confirm T", tenantsAbout)
	conn := f.ownerConn()
	kf := f.kekFlag(conn)
	name := f.String("name", "", "with create: the tenant's name (1 to 200 characters)")
	noKeys := f.Bool("no-keys", false, "with create: create the tenant without keysets (no KEK needed)")
	confirm := f.String("confirm", "", "with shred: the tenant id again")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("tenants: missing subcommand: create, list or shred (see 'tenantseal tenants -h')")
	}
	sub, rest := pos[0], pos[1:]
	switch sub {
	case "create", "list":
		if len(rest) > 0 {
			return usageErrorf("tenants %s: unexpected argument %q", sub, rest[0])
		}
	case "shred":
		if len(rest) != 1 {
			return usageErrorf("tenants shred: needs exactly one tenant id: 'tenantseal tenants shred T --confirm T'")
		}
	default:
		return usageErrorf("tenants: unknown subcommand %q: want create, list or shred", sub)
	}
	if err := f.checkSub(tenantsSubcommands, sub); err != nil {
		return err
	}
	switch sub {
	case "create":
		if strings.TrimSpace(*name) == "" {
			return usageErrorf("tenants create: --name NAME is required")
		}
		if *noKeys && f.set("kek") {
			return usageErrorf("tenants create: give --kek or --no-keys, not both")
		}
		return createTenant(ctx, s, conn, kf, strings.TrimSpace(*name), *noKeys)
	case "shred":
		return shredTenant(ctx, s, conn, rest[0], *confirm, f.set("confirm"))
	}
	return listTenants(ctx, s, conn)
}

// createTenant creates a tenant and, unless noKeys, its keysets in the same transaction.
func createTenant(ctx context.Context, s *session, conn *connFlags, kf *kekFlags, name string, noKeys bool) error {
	var ref kekRef
	if !noKeys {
		var err error
		if ref, err = kf.resolve(); err != nil {
			var ue *usageError
			if errors.As(err, &ue) {
				return usageErrorf("tenants create: no KEK configured, and a tenant without keysets cannot use encrypted fields: pass --kek <uri>, set $%s or add a %s line to the secrets file %s ('tenantseal keys init-kek' writes a development KEK), or pass --no-keys",
					keyKEKURI, keyKEKURI, conn.secrets)
			}
			return err
		}
	}
	dsn, err := conn.ownerDSN()
	if err != nil {
		return err
	}
	if noKeys {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		var id tenantseal.TenantID
		if err := c.QueryRow(ctx, "INSERT INTO public.tenants (name) VALUES ($1) RETURNING id", name).Scan(&id); err != nil {
			return fmt.Errorf("create tenant: %w", err)
		}
		s.printf("%s\n", id)
		return nil
	}
	c, kek, err := ownerWithKEK(ctx, s, dsn, ref)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	id, err := (&keys.Admin{DB: c, KEK: kek}).CreateTenant(ctx, name)
	if err != nil {
		return ownerError(err) // "keys: create tenant: ..."
	}
	s.printf("%s\n", id)
	return nil
}

func listTenants(ctx context.Context, s *session, conn *connFlags) error {
	dsn, err := conn.ownerDSN()
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, "SELECT id, name, status, created_at FROM public.tenants ORDER BY created_at, id")
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	type tenant struct {
		ID        tenantseal.TenantID
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
