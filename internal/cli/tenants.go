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

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/tenants"
)

var tenantsCommand = command{
	name:    "tenants",
	summary: "create, list, suspend, delete and crypto-shred tenants as the owner",
	run:     runTenants,
}

const tenantsAbout = `
Subcommands:

	create --name NAME [--no-keys]   create a tenant with its keysets, in one transaction, and print its
	                                 id. NAME is 1 to 200 bytes of UTF-8 without control characters.
	                                 Needs the KEK (--kek, else $TENANTSEAL_KEK_URI, else the secrets
	                                 file); --no-keys creates a tenant without keysets, which cannot use
	                                 encrypted fields until 'tenantseal keys create --tenant T'
	list                             print every tenant: id, name, status, created_at
	suspend T                        mark tenant T suspended (a record for the application's checks:
	resume T                         the policies do not read it); resume marks it active again
	delete T --confirm T             mark tenant T deleted, for good; its rows and keysets stay (shred
	                                 makes its encrypted fields unreadable)
	shred T --confirm T              crypto-shred tenant T: destroy its keysets, so that every encrypted
	                                 field of T is unreadable for good, and record it in the audit log.
	                                 Needs no KEK. The tenant's rows and unencrypted columns stay

delete and shred need --confirm with the tenant id again; a missing or different one is a usage error
(exit 2) and changes nothing.

The application never takes a tenant id from a client: its authentication code puts the tenant of the
verified caller into a tenantseal.Principal.`

var tenantsSubcommands = []subcommand{
	{"create", ownerFlags + " name kek no-keys"},
	{"list", ownerFlags},
	{"suspend", ownerFlags},
	{"resume", ownerFlags},
	{"delete", ownerFlags + " confirm"},
	{"shred", ownerFlags + " confirm"},
}

func runTenants(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "tenants", "[flags] create --name NAME [--no-keys] | list | suspend T | resume T | delete T --confirm T | shred T --confirm T", tenantsAbout)
	conn := f.ownerConn()
	kf := f.kekFlag(conn)
	name := f.String("name", "", "with create: the tenant's name (1 to 200 bytes)")
	noKeys := f.Bool("no-keys", false, "with create: create the tenant without keysets (no KEK needed)")
	confirm := f.String("confirm", "", "with delete, shred: the tenant id again")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("tenants: missing subcommand: create, list, suspend, resume, delete or shred (see 'tenantseal tenants -h')")
	}
	sub, rest := pos[0], pos[1:]
	switch sub {
	case "create", "list":
		if len(rest) > 0 {
			return usageErrorf("tenants %s: unexpected argument %q", sub, rest[0])
		}
	case "suspend", "resume", "delete", "shred":
		if len(rest) != 1 {
			return usageErrorf("tenants %s: needs exactly one tenant id: 'tenantseal tenants %s T'", sub, sub)
		}
	default:
		return usageErrorf("tenants: unknown subcommand %q: want create, list, suspend, resume, delete or shred", sub)
	}
	if err := f.checkSub(tenantsSubcommands, sub); err != nil {
		return err
	}
	switch sub {
	case "create":
		n := strings.TrimSpace(*name)
		if !f.set("name") || n == "" {
			return usageErrorf("tenants create: --name NAME is required")
		}
		if err := tenants.ValidateName(n); err != nil {
			return usageErrorf("tenants create: --name: %s", strings.TrimPrefix(err.Error(), tenants.ErrInvalidName.Error()+": "))
		}
		if *noKeys && f.set("kek") {
			return usageErrorf("tenants create: give --kek or --no-keys, not both")
		}
		return createTenant(ctx, s, conn, kf, n, *noKeys)
	case "list":
		return listTenants(ctx, s, conn)
	}
	id, err := parseTenant("tenants "+sub, "tenant id", rest[0])
	if err != nil {
		return err
	}
	if sub == "delete" || sub == "shred" {
		if err := checkConfirm(sub, rest[0], *confirm, f.set("confirm"), id); err != nil {
			return err
		}
	}
	if sub == "shred" {
		return shredTenant(ctx, s, conn, id)
	}
	return setTenantStatus(ctx, s, conn, sub, id)
}

// checkConfirm refuses a delete or shred unless --confirm repeats the tenant id.
func checkConfirm(sub, arg, confirm string, set bool, id tenantseal.TenantID) error {
	why, done := "deleting a tenant is final", "deleted"
	if sub == "shred" {
		why, done = "shredding makes every encrypted field of tenant "+id.String()+" unreadable for good", "shredded"
	}
	if !set || confirm == "" {
		return usageErrorf("tenants %s: --confirm with the tenant id again is required: %s", sub, why)
	}
	if confirm != arg {
		return usageErrorf("tenants %s: --confirm %q does not repeat the tenant id %q: nothing was %s", sub, confirm, arg, done)
	}
	return nil
}

// ownerConnect connects as the owner.
func ownerConnect(ctx context.Context, conn *connFlags) (*pgx.Conn, error) {
	dsn, err := conn.ownerDSN()
	if err != nil {
		return nil, err
	}
	return pgx.Connect(ctx, dsn)
}

// createTenant creates a tenant and, unless noKeys, its keysets in the same transaction.
func createTenant(ctx context.Context, s *session, conn *connFlags, kf *kekFlags, name string, noKeys bool) error {
	var keysets tenants.KeysetCreator
	var c *pgx.Conn
	if noKeys {
		var err error
		if c, err = ownerConnect(ctx, conn); err != nil {
			return err
		}
	} else {
		ref, err := kf.resolve()
		if err != nil {
			var ue *usageError
			if errors.As(err, &ue) {
				return usageErrorf("tenants create: no KEK configured, and a tenant without keysets cannot use encrypted fields: pass --kek <uri>, set $%s or add a %s line to the secrets file %s ('tenantseal keys init-kek' writes a development KEK), or pass --no-keys",
					keyKEKURI, keyKEKURI, conn.secrets)
			}
			return err
		}
		dsn, err := conn.ownerDSN()
		if err != nil {
			return err
		}
		var kek *keys.KEK
		if c, kek, err = ownerWithKEK(ctx, s, dsn, ref); err != nil {
			return err
		}
		keysets = func(ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error {
			return pgstore.NewAdmin(tx, kek).CreateKeysets(ctx, id)
		}
	}
	defer c.Close(context.WithoutCancel(ctx))
	t, err := tenants.Create(ctx, c, name, keysets)
	if err != nil {
		return fmt.Errorf("tenants create: %w", ownerError(err))
	}
	s.printf("%s\n", t.ID)
	return nil
}

func listTenants(ctx context.Context, s *session, conn *connFlags) error {
	c, err := ownerConnect(ctx, conn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	ts, err := tenants.List(ctx, c)
	if err != nil {
		return ownerError(err)
	}
	tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tCREATED_AT")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, printable(t.Name), t.Status, t.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// setTenantStatus runs `tenants suspend|resume|delete T`.
func setTenantStatus(ctx context.Context, s *session, conn *connFlags, sub string, id tenantseal.TenantID) error {
	change, status := tenants.Suspend, tenants.StatusSuspended
	switch sub {
	case "resume":
		change, status = tenants.Resume, tenants.StatusActive
	case "delete":
		change, status = tenants.Delete, tenants.StatusDeleted
	}
	c, err := ownerConnect(ctx, conn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := change(ctx, c, id); err != nil {
		return tenantError(sub, id, err)
	}
	s.printf("tenant %s is %s\n", id, status)
	return nil
}

// tenantError explains a failure of `tenants sub` on tenant id.
func tenantError(sub string, id tenantseal.TenantID, err error) error {
	switch {
	case errors.Is(err, tenants.ErrNotFound):
		return fmt.Errorf("tenants %s: no tenant %s (see 'tenantseal tenants list')", sub, id)
	case errors.Is(err, tenants.ErrDeleted):
		return fmt.Errorf("tenants %s: tenant %s is deleted, which is final", sub, id)
	}
	return ownerError(err)
}

// printable quotes a name that holds control characters, which would break the table or the terminal:
// create refuses them, but a row written by other means may hold them.
func printable(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
