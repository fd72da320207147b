package cli

import (
	"context"
	"encoding/json"
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
	"github.com/tenantseal/tenantseal/retention"
	"github.com/tenantseal/tenantseal/tenants"
)

var tenantsCommand = command{
	name:    "tenants",
	summary: "create, list, rename, suspend, delete, crypto-shred, place and bind tenants to identity providers as the owner",
	run:     runTenants,
}

const tenantsAbout = `
Subcommands:

	create --name NAME [--id ID] [--no-keys]
	                                 create a tenant with its keysets, in one transaction, and print its
	                                 id. NAME is 1 to 200 bytes of UTF-8 without control characters, and
	                                 no other tenant's name (compared without regard to case). ID is the
	                                 tenant's id as the application's registry has it, in the type of the
	                                 database's tenant keys (uuid, bigint, integer or text;
	                                 tenantseal.settings.tenant_key_type); without it a uuid database
	                                 draws a random uuid. Where a registry is adopted, a row inserted
	                                 there creates the tenant instead. Needs the
	                                 KEK (--kek, else $TENANTSEAL_KEK_URI, else the secrets file);
	                                 --no-keys creates a tenant without keysets, which cannot use
	                                 encrypted fields until 'tenantseal keys create --tenant T'
	list [--format text|json]        print every tenant: id, name, status, keysets (yes, none, shredded),
	                                 region, retention policy, created_at
	rename T --name NAME             give tenant T another name, checked as create checks it
	suspend T                        mark tenant T suspended (a record for the application's checks);
	resume T                         resume marks it active again
	delete T --confirm T             mark tenant T deleted, for good; its rows and keysets stay (shred
	                                 makes its encrypted fields unreadable)
	set-region T REGION              record REGION as where tenant T's data is to live: lower-case letters
	                                 and digits in groups joined by hyphens (eu, eu-west-1), at most 32
	                                 bytes; '' clears it. A record, listed and exported as evidence:
	                                 tenantseal moves and routes nothing by it
	set-retention T POLICY           give tenant T the retention policy POLICY ('tenantseal retention
	                                 policy set' creates it); '' leaves T without one, so that
	                                 'tenantseal retention run' deletes nothing of it
	bind T --issuer URL --claim V    let tokens of issuer URL whose tenant claim is V act for tenant T
	                                 (authn.NewDBRegistry reads the binding). URL is the token's iss, byte
	                                 for byte; one issuer names one tenant by one value. Binding what is
	                                 bound already does nothing and exits 0. Tokens of a suspended or
	                                 deleted tenant are refused whatever its bindings
	unbind --issuer URL --claim V    end that binding: such tokens name no tenant once the services'
	                                 registries forget it (their TTL, 30 seconds by default)
	bindings [T] [--format text|json]
	                                 print every binding (of tenant T only): tenant, status, issuer, claim,
	                                 created_at, and how many lookups found no active tenant bound
	shred T --confirm T              crypto-shred tenant T: destroy its keysets, so that every encrypted
	                                 field of T is unreadable for good, and record it in the audit log.
	                                 Needs no KEK. The tenant's rows and unencrypted columns stay. A second
	                                 shred of the same tenant does nothing and exits 0

delete and shred need --confirm with the tenant id again; a missing or different one is a usage error
(exit 2) and changes nothing. Every change is recorded in the audit log first or with it, with the
operator ($TENANTSEAL_OPERATOR, else user@host): the commands that change something need the audit
writer's connection string ($TENANTSEAL_AUDIT_WRITER_DSN, else the secrets file).

list --format json prints one object, schema tenantseal/tenants/v1:

	{"schema": "tenantseal/tenants/v1", "tenants": [{"id": "<uuid>", "name": "...",
	  "status": "active|suspended|deleted", "keysets": "yes|none|shredded",
	  "region": "..." or null, "retention_policy": "..." or null, "created_at": "<RFC 3339>",
	  "deleted_at": "<RFC 3339>" or null, "shredded_at": "<RFC 3339>" or null}]}

bindings --format json prints one object, schema tenantseal/tenant-bindings/v1:

	{"schema": "tenantseal/tenant-bindings/v1", "refused_lookups": <n>, "bindings": [{"tenant": "<id>",
	  "status": "active|suspended|deleted", "issuer": "<url>", "claim": "...", "created_at": "<RFC 3339>"}]}

The app role cannot read the bindings: it asks tenantseal.tenant_binding(issuer, claim) for the one
binding a verified token names. refused_lookups counts the lookups that found no active tenant bound
(failed logins, or someone with the app role's SQL guessing values); it never goes down.

The application never takes a tenant id from a client: its authentication code puts the tenant of the
verified caller into a tenantseal.Principal.`

var tenantsSubcommands = []subcommand{
	{"bind", ownerFlags + " issuer claim quiet verbose"},
	{"unbind", ownerFlags + " issuer claim quiet verbose"},
	{"bindings", ownerFlags + " format quiet verbose"},
	{"create", ownerFlags + " name id kek no-keys quiet verbose"},
	{"list", ownerFlags + " format quiet verbose"},
	{"rename", ownerFlags + " name quiet verbose"},
	{"suspend", ownerFlags + " quiet verbose"},
	{"resume", ownerFlags + " quiet verbose"},
	{"delete", ownerFlags + " confirm quiet verbose"},
	{"shred", ownerFlags + " confirm quiet verbose"},
	{"set-region", ownerFlags + " quiet verbose"},
	{"set-retention", ownerFlags + " quiet verbose"},
}

const tenantsSubs = "create, list, rename, suspend, resume, delete, shred, set-region, set-retention, bind, unbind or bindings"

func runTenants(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "tenants", "[flags] create --name NAME [--id ID] [--no-keys] | list | rename T --name NAME | suspend T | resume T | delete T --confirm T | shred T --confirm T | set-region T REGION | set-retention T POLICY | bind T --issuer URL --claim V | unbind --issuer URL --claim V | bindings [T]", tenantsAbout)
	conn := f.ownerConn()
	kf := f.kekFlag(conn)
	out := f.output("text", "json")
	name := f.String("name", "", "with create, rename: the tenant's name (1 to 200 bytes)")
	newID := f.String("id", "", "with create: the tenant's id as the application's registry has it (default: a random uuid)")
	noKeys := f.Bool("no-keys", false, "with create: create the tenant without keysets (no KEK needed)")
	confirm := f.String("confirm", "", "with delete, shred: the tenant id again")
	issuer := f.String("issuer", "", "with bind, unbind: the issuer URL, as tokens carry it in iss")
	claim := f.String("claim", "", "with bind, unbind: the value of the issuer's tenant claim")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("tenants: missing subcommand: %s (see 'tenantseal tenants -h')", tenantsSubs)
	}
	sub, rest := pos[0], pos[1:]
	switch sub {
	case "create", "list", "unbind":
		if len(rest) > 0 {
			return usageErrorf("tenants %s: unexpected argument %q", sub, rest[0])
		}
	case "bindings":
		if len(rest) > 1 {
			return usageErrorf("tenants bindings: at most one tenant id: 'tenantseal tenants bindings [T]'")
		}
	case "rename", "suspend", "resume", "delete", "shred", "bind":
		if len(rest) != 1 {
			return usageErrorf("tenants %s: needs exactly one tenant id: 'tenantseal tenants %s T'", sub, sub)
		}
	case "set-region", "set-retention":
		if len(rest) != 2 {
			what := map[string]string{"set-region": "REGION", "set-retention": "POLICY"}[sub]
			return usageErrorf("tenants %s: needs a tenant id and a %s ('' for none): 'tenantseal tenants %s T %s'", sub, strings.ToLower(what), sub, what)
		}
	default:
		return usageErrorf("tenants: unknown subcommand %q: want %s", sub, tenantsSubs)
	}
	if err := f.checkSub(tenantsSubcommands, sub); err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}
	newName := func() (string, error) {
		n := strings.TrimSpace(*name)
		if !f.set("name") || n == "" {
			return "", usageErrorf("tenants %s: --name NAME is required", sub)
		}
		if err := tenants.ValidateName(n); err != nil {
			return "", usageErrorf("tenants %s: --name: %s", sub, strings.TrimPrefix(err.Error(), tenants.ErrInvalidName.Error()+": "))
		}
		return n, nil
	}
	switch sub {
	case "create":
		n, err := newName()
		if err != nil {
			return err
		}
		if *noKeys && f.set("kek") {
			return usageErrorf("tenants create: give --kek or --no-keys, not both")
		}
		var key tenantseal.TenantID
		if f.set("id") {
			if key, err = parseTenant("tenants create", "--id", *newID); err != nil {
				return err
			}
		}
		return createTenant(ctx, s, conn, kf, n, key, *noKeys)
	case "list":
		return listTenants(ctx, s, conn, out.json())
	case "unbind":
		if err := bindingFlags(sub, *issuer, *claim); err != nil {
			return err
		}
		return unbindTenant(ctx, s, conn, *issuer, *claim)
	case "bindings":
		var of []tenantseal.TenantID
		if len(rest) == 1 {
			id, err := parseTenant("tenants bindings", "tenant id", rest[0])
			if err != nil {
				return err
			}
			of = append(of, id)
		}
		return listBindings(ctx, s, conn, out.json(), of)
	}
	id, err := parseTenant("tenants "+sub, "tenant id", rest[0])
	if err != nil {
		return err
	}
	switch sub {
	case "delete", "shred":
		if err := checkConfirm(sub, rest[0], *confirm, f.set("confirm"), id); err != nil {
			return err
		}
	case "rename":
		n, err := newName()
		if err != nil {
			return err
		}
		return renameTenant(ctx, s, conn, id, n)
	}
	switch sub {
	case "shred":
		return shredTenant(ctx, s, conn, id)
	case "set-region":
		if rest[1] != "" {
			if err := tenants.ValidateRegion(rest[1]); err != nil {
				return usageErrorf("tenants set-region: %s", strings.TrimPrefix(err.Error(), "tenants: "))
			}
		}
		return placeTenant(ctx, s, conn, sub, id, rest[1])
	case "set-retention":
		if rest[1] != "" {
			if err := retention.ValidateName(rest[1]); err != nil {
				return usageErrorf("tenants set-retention: %s", strings.TrimPrefix(err.Error(), "retention: "))
			}
		}
		return placeTenant(ctx, s, conn, sub, id, rest[1])
	case "bind":
		if err := bindingFlags(sub, *issuer, *claim); err != nil {
			return err
		}
		return bindTenant(ctx, s, conn, id, *issuer, *claim)
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

// ownerConnect connects as the owner for cmd, and checks that the role is the owner.
func ownerConnect(ctx context.Context, conn *connFlags, cmd string) (*pgx.Conn, error) {
	dsn, err := conn.ownerDSN()
	if err != nil {
		return nil, err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := checkOwner(ctx, c, cmd); err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

// ownerWithLog connects as the owner for cmd and opens the audit log that records what it changes.
func ownerWithLog(ctx context.Context, s *session, conn *connFlags, cmd string) (*pgx.Conn, *auditLog, error) {
	c, err := ownerConnect(ctx, conn, cmd)
	if err != nil {
		return nil, nil, err
	}
	log, err := openAuditLog(ctx, s, conn, cmd)
	if err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return c, log, nil
}

// createTenant creates a tenant and, unless noKeys, its keysets in the same transaction.
func createTenant(ctx context.Context, s *session, conn *connFlags, kf *kekFlags, name string, key tenantseal.TenantID, noKeys bool) error {
	var keysets tenants.KeysetCreator
	var kek *keys.KEK
	var kekRef kekRef
	if !noKeys {
		ref, err := kf.resolve()
		if err != nil {
			var ue *usageError
			if errors.As(err, &ue) {
				return usageErrorf("tenants create: no KEK configured, and a tenant without keysets cannot use encrypted fields: pass --kek <uri>, set $%s or add a %s line to the secrets file %s ('tenantseal keys init-kek' writes a development KEK), or pass --no-keys",
					keyKEKURI, keyKEKURI, conn.secrets)
			}
			return err
		}
		// Before connecting: a missing file needs no server.
		if kek, err = openKEK(ctx, s, ref); err != nil {
			return err
		}
		kekRef = ref
		keysets = func(ctx context.Context, tx pgx.Tx, id tenantseal.TenantID) error {
			return pgstore.NewAdmin(tx, kek).CreateKeysets(ctx, id)
		}
	}
	c, log, err := ownerWithLog(ctx, s, conn, "tenants create")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if kek != nil {
		if err := checkKEK(ctx, c, kek, kekRef); err != nil {
			return log.close(ctx, err)
		}
	}
	t, err := tenants.Create(asOperator(ctx), c, name, keysets, tenants.Recording(log.w), tenants.WithID(key))
	switch {
	case errors.Is(err, tenants.ErrDuplicateName):
		err = fmt.Errorf("tenants create: %s (names are compared without regard to case)", strings.TrimPrefix(err.Error(), "tenants: "))
	case err != nil:
		err = fmt.Errorf("tenants create: %w", ownerError(err))
	default:
		s.printf("%s\n", t.ID)
	}
	return log.close(ctx, err)
}

// tenantJSON is one tenant of `tenants list --format json`, schema tenantseal/tenants/v1.
type tenantJSON struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	Status          string     `json:"status"`
	Keysets         string     `json:"keysets"`
	Region          *string    `json:"region"`
	RetentionPolicy *string    `json:"retention_policy"`
	CreatedAt       time.Time  `json:"created_at"`
	DeletedAt       *time.Time `json:"deleted_at"`
	ShreddedAt      *time.Time `json:"shredded_at"`
}

// orNull is s, nil when empty.
func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// keysetsWord says whether t has keysets: yes, none, shredded.
func keysetsWord(t tenants.Tenant) string {
	switch {
	case t.HasKeysets:
		return "yes"
	case t.ShreddedAt != nil:
		return "shredded"
	}
	return "none"
}

func listTenants(ctx context.Context, s *session, conn *connFlags, asJSON bool) error {
	c, err := ownerConnect(ctx, conn, "tenants list")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	ts, err := tenants.List(ctx, c)
	if err != nil {
		return ownerError(err)
	}
	if asJSON {
		doc := struct {
			Schema  string       `json:"schema"`
			Tenants []tenantJSON `json:"tenants"`
		}{Schema: "tenantseal/tenants/v1", Tenants: []tenantJSON{}}
		for _, t := range ts {
			doc.Tenants = append(doc.Tenants, tenantJSON{ID: t.ID.String(), Name: t.Name, Status: string(t.Status), Keysets: keysetsWord(t),
				Region: orNull(t.Region), RetentionPolicy: orNull(t.RetentionPolicy), CreatedAt: t.CreatedAt, DeletedAt: t.DeletedAt, ShreddedAt: t.ShreddedAt})
		}
		return writeJSON(s, doc)
	}
	tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tKEYSETS\tREGION\tRETENTION\tCREATED_AT")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, printable(t.Name), t.Status, keysetsWord(t), orDash(t.Region), orDash(t.RetentionPolicy),
			t.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// writeJSON prints v as indented JSON on stdout.
func writeJSON(s *session, v any) error {
	enc := json.NewEncoder(s.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func renameTenant(ctx context.Context, s *session, conn *connFlags, id tenantseal.TenantID, name string) error {
	c, log, err := ownerWithLog(ctx, s, conn, "tenants rename")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	err = tenants.Rename(asOperator(ctx), c, id, name, tenants.Recording(log.w))
	if errors.Is(err, tenants.ErrDuplicateName) {
		err = fmt.Errorf("tenants rename: %s (names are compared without regard to case)", strings.TrimPrefix(err.Error(), "tenants: "))
	} else if err != nil {
		err = tenantError("rename", id, err)
	} else {
		s.printf("tenant %s is named %s\n", id, printable(name))
	}
	return log.close(ctx, err)
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
	c, log, err := ownerWithLog(ctx, s, conn, "tenants "+sub)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := change(asOperator(ctx), c, id, tenants.Recording(log.w)); err != nil {
		return log.close(ctx, tenantError(sub, id, err))
	}
	s.printf("tenant %s is %s\n", id, status)
	return log.close(ctx, nil)
}

// placeTenant runs `tenants set-region T REGION` and `tenants set-retention T POLICY` (checked already).
func placeTenant(ctx context.Context, s *session, conn *connFlags, sub string, id tenantseal.TenantID, value string) error {
	c, log, err := ownerWithLog(ctx, s, conn, "tenants "+sub)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	set, what := tenants.SetRegion, "region"
	if sub == "set-retention" {
		set, what = tenants.SetRetentionPolicy, "retention policy"
	}
	switch err := set(asOperator(ctx), c, id, value, tenants.Recording(log.w)); {
	case errors.Is(err, tenants.ErrNoSuchPolicy):
		return log.close(ctx, fmt.Errorf("tenants %s: %s", sub, strings.TrimPrefix(err.Error(), "tenants: ")))
	case err != nil:
		return log.close(ctx, tenantError(sub, id, err))
	}
	s.printf("tenant %s: %s %s\n", id, what, orNone(value))
	return log.close(ctx, nil)
}

// orNone is s, "none" when empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
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
