package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

var keysCommand = command{
	name:    "keys",
	summary: "create, rotate, re-encrypt and retire tenant keysets; create, check and rotate the KEK",
	run:     runKeys,
}

const keysAbout = `
Subcommands:

	init-kek [--out FILE]       write a new local KEK (mode 0600, never overwrites) and print its URI;
	                            record it as TENANTSEAL_KEK_URI in the secrets file if the file exists
	                            and names no KEK yet. A local KEK is for development: use a KMS in
	                            production
	check                       check that the KEK is this database's; prints "KEK ok (<id>)"
	create --tenant T           give an existing tenant its keysets (one made with 'tenants create
	                            --no-keys', or before keysets existed)
	rotate --tenant T | --all   add a new primary key to the tenant's keysets; old keys keep decrypting
	reencrypt --tenant T | --all [--batch N]
	                            as the app role, rewrite every ciphertext and blind index that is not
	                            under the primary keys. Resumable: it skips rows already under the
	                            primary keys, so after an interruption run it again
	retire --tenant T | --all   disable the old keys; refuses (exit 1) while any row still needs one
	rotate-kek --new URI        re-wrap every keyset under a new KEK, and record it in the secrets file
	                            if that names the KEK

The KEK is --kek, else $TENANTSEAL_KEK_URI, else the TENANTSEAL_KEK_URI line of the secrets file:
local-keyset://<path> (a file from init-kek) or a Tink KMS URI. Every subcommand checks it against the
database first, so a wrong KEK fails before anything changes.

Rotating a tenant's keys:

	tenantseal keys rotate --tenant T
	(wait for the keyring cache TTL of every app process, default 5m: until then they may still
	encrypt under the old key)
	tenantseal keys reencrypt --tenant T
	tenantseal keys retire --tenant T

reencrypt and retire also act as the app role, so that row-level security applies to them: --app-dsn,
else $TENANTSEAL_APP_DSN, else the secrets file; they sign the tenant context with
$TENANTSEAL_CONTEXT_KEY, else the secrets file's. reencrypt prints per tenant the rows examined,
rewritten, raced (changed by the application meanwhile: left as written, a re-run picks them up) and
tampered (did not decrypt: left untouched, and the exit status is 1). Progress goes to stderr.`

var keysSubcommands = []subcommand{
	{"init-kek", "out secrets"},
	{"check", ownerFlags + " kek"},
	{"create", ownerFlags + " kek tenant"},
	{"rotate", ownerFlags + " kek tenant all"},
	{"reencrypt", ownerFlags + " kek tenant all batch app-dsn prefix"},
	{"retire", ownerFlags + " kek tenant all app-dsn prefix"},
	{"rotate-kek", ownerFlags + " kek new"},
}

// keysRun is one run of a keys subcommand with its parsed flags.
type keysRun struct {
	s      *session
	sub    string
	conn   *connFlags
	kek    *kekFlags
	app    *appFlags
	tenant tenantseal.TenantID // zero with --all
	all    bool
	batch  int
	out    string
	next   string
}

func runKeys(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "keys", "<subcommand> [flags]", keysAbout)
	r := &keysRun{s: s}
	r.conn = f.ownerConn()
	r.kek = f.kekFlag(r.conn)
	r.app = f.appConn(r.conn)
	tenant := f.String("tenant", "", "with create, rotate, reencrypt, retire: the tenant id")
	f.BoolVar(&r.all, "all", false, "with rotate, reencrypt, retire: every tenant that has keysets")
	f.IntVar(&r.batch, "batch", 500, "with reencrypt: rows read and rewritten per transaction")
	f.StringVar(&r.out, "out", "tenantseal-kek.json", "with init-kek: the KEK file to write")
	f.StringVar(&r.next, "new", "", "with rotate-kek: URI of the new KEK")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	const subs = "init-kek, check, create, rotate, reencrypt, retire or rotate-kek"
	if len(pos) == 0 {
		return usageErrorf("keys: missing subcommand: %s (see 'tenantseal keys -h')", subs)
	}
	r.sub = pos[0]
	if !slices.ContainsFunc(keysSubcommands, func(sc subcommand) bool { return sc.name == r.sub }) {
		return usageErrorf("keys: unknown subcommand %q: want %s", r.sub, subs)
	}
	if len(pos) > 1 {
		return usageErrorf("keys %s: unexpected argument %q", r.sub, pos[1])
	}
	if err := f.checkSub(keysSubcommands, r.sub); err != nil {
		return err
	}
	switch r.sub {
	case "create":
		if *tenant == "" {
			return usageErrorf("keys create: --tenant T is required")
		}
	case "rotate", "reencrypt", "retire":
		if (*tenant == "") == !r.all {
			return usageErrorf("keys %s: give either --tenant T or --all", r.sub)
		}
		if r.sub == "reencrypt" && r.batch < 1 {
			return usageErrorf("keys reencrypt: --batch must be at least 1, got %d", r.batch)
		}
	case "rotate-kek":
		if r.next == "" {
			return usageErrorf("keys rotate-kek: --new <uri> is required")
		}
	}
	if *tenant != "" {
		if r.tenant, err = parseTenant("keys "+r.sub, "--tenant", *tenant); err != nil {
			return err
		}
	}

	switch r.sub {
	case "init-kek":
		return r.initKEK()
	case "check":
		return r.check(ctx)
	case "create":
		return r.create(ctx)
	case "rotate":
		return r.rotate(ctx)
	case "reencrypt":
		return r.reencrypt(ctx)
	case "retire":
		return r.retire(ctx)
	default:
		return r.rotateKEK(ctx)
	}
}

// parseTenant parses a tenant id given on the command line.
func parseTenant(cmd, what, s string) (tenantseal.TenantID, error) {
	id, err := tenantseal.ParseTenantID(s)
	if err != nil || id.IsZero() {
		return tenantseal.TenantID{}, usageErrorf("%s: %s %q is not a tenant id: want the UUID that 'tenantseal tenants list' prints", cmd, what, s)
	}
	return id, nil
}

// ownerSide is the owner connection and the checked KEK that every subcommand but init-kek works with.
type ownerSide struct {
	conn  *pgx.Conn
	kek   *keys.KEK
	ref   kekRef
	admin *pgstore.Admin
}

// connect resolves the owner connection string and the KEK, opens the KEK, connects as the owner and
// checks the KEK against the database.
func (r *keysRun) connect(ctx context.Context) (*ownerSide, error) {
	dsn, err := r.conn.ownerDSN()
	if err != nil {
		return nil, err
	}
	ref, err := r.kek.resolve()
	if err != nil {
		return nil, err
	}
	c, kek, err := ownerWithKEK(ctx, r.s, dsn, ref)
	if err != nil {
		return nil, err
	}
	return &ownerSide{conn: c, kek: kek, ref: ref, admin: pgstore.NewAdmin(c, kek)}, nil
}

func (o *ownerSide) close(ctx context.Context) { o.conn.Close(context.WithoutCancel(ctx)) }

// ownerWithKEK opens the KEK that ref names (before connecting: a missing file needs no server),
// connects as the owner and checks the KEK against the database.
func ownerWithKEK(ctx context.Context, s *session, dsn string, ref kekRef) (*pgx.Conn, *keys.KEK, error) {
	kek, err := openKEK(ctx, s, ref)
	if err != nil {
		return nil, nil, err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	if err := checkKEK(ctx, c, kek, ref); err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return c, kek, nil
}

// requireTenant fails unless the tenant exists.
func requireTenant(ctx context.Context, c *pgx.Conn, cmd string, id tenantseal.TenantID) error {
	var ok bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tenantseal.tenants WHERE id = $1)", id).Scan(&ok); err != nil {
		return fmt.Errorf("%s: %w", cmd, ownerError(err))
	}
	if !ok {
		return fmt.Errorf("%s: no tenant %s (see 'tenantseal tenants list')", cmd, id)
	}
	return nil
}

// tenants returns the tenant of --tenant, checked to exist, or with --all every tenant that has keysets.
func (r *keysRun) tenants(ctx context.Context, o *ownerSide) ([]tenantseal.TenantID, error) {
	if !r.all {
		if err := requireTenant(ctx, o.conn, "keys "+r.sub, r.tenant); err != nil {
			return nil, err
		}
		return []tenantseal.TenantID{r.tenant}, nil
	}
	ids, err := o.admin.Tenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys %s: %w", r.sub, ownerError(err))
	}
	if len(ids) == 0 {
		r.s.printf("no tenant has keysets: nothing to do\n")
	}
	return ids, nil
}

// selector repeats the tenant selection of this run for a suggested next command.
func (r *keysRun) selector() string {
	if r.all {
		return "--all"
	}
	return "--tenant " + r.tenant.String()
}

// tenantError explains err of subcommand sub on tenant id.
func (r *keysRun) tenantError(id tenantseal.TenantID, err error) error {
	if errors.Is(err, keys.ErrNoKeyset) {
		return fmt.Errorf("keys %s: tenant %s has no keysets (made with --no-keys, or shredded): 'tenantseal keys create --tenant %s' gives it new ones", r.sub, id, id)
	}
	return fmt.Errorf("keys %s: tenant %s: %w", r.sub, id, ownerError(err))
}

func joinIDs(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}
