package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

var keysCommand = command{
	name:    "keys",
	summary: "rotate, re-encrypt, retire, re-enable and destroy tenant keys; show their status; create, check and rotate KEKs",
	run:     runKeys,
}

const keysAbout = `
Subcommands:

	status [--tenant T]         every tenant's keys: ids, which is primary, enabled or disabled, their
	                            age, the KEK that wraps them (the shared one, or the tenant's own), when
	                            retiring is allowed, quarantined values. Needs no KEK
	init-kek [--out FILE]       write a new local KEK (mode 0600, never overwrites) and print its URI;
	                            record it as TENANTSEAL_KEK_URI in the secrets file if the file exists
	                            and names no KEK yet. A local KEK is for development: use a KMS in
	                            production
	check                       check that the KEK is this database's; prints "KEK ok (<id>)", then
	                            opens the own KEK of every tenant that has one (rotate-kek --tenant) and
	                            checks it against its canary; exit 1 if any does not open
	create --tenant T | --all   give an existing tenant its keysets (one made with 'tenants create
	                            --no-keys', registered from an adopted registry, or made before
	                            keysets existed); --all: every tenant that has none and is neither
	                            deleted nor shredded
	rotate --tenant T | --all   add a new primary key to the tenant's keysets; old keys keep decrypting
	reencrypt --tenant T | --all [--batch N]
	                            as the app role, rewrite every ciphertext and blind index that is not
	                            under the primary keys. Resumable: it skips rows already under the
	                            primary keys, so after an interruption run it again. One run per tenant
	                            at a time. Values that do not decrypt are named, recorded in the audit
	                            log and put on the tenant's quarantine list; exit 1
	retire --tenant T | --all [--skip-quarantined]
	                            disable the old keys: refused (exit 1) until every application cache can
	                            have seen the rotation (the database's max_cache_ttl plus write_grace,
	                            6m by default, after it; 'keys status' says when), and while any value
	                            still needs one; --skip-quarantined retires although quarantined
	                            values name them (they stay unreadable, as they are)
	enable --tenant T [--key ID,...]
	                            turn retired keys back on (all of them without --key): what undoes a
	                            retire, until destroy
	destroy --tenant T --confirm T [--skip-quarantined]
	                            remove the retired keys from the tenant's keysets for good; refused
	                            while a stored value still names one
	settings [--max-cache-ttl D] [--write-grace D]
	                            print, or change, how long any application process may cache opened
	                            keysets (keys.Config.CacheTTL is capped by it) and the grace for writes in
	                            flight: together the wait before a retire. Needs no KEK
	quarantine --tenant T [--release]
	                            list the tenant's quarantined values (table, column, row, key, reason);
	                            --release empties the list, so that the next reencrypt examines them
	                            again (after 'keys enable', say)
	rotate-kek --new URI        re-wrap every keyset of the shared KEK under a new KEK, and record it in
	                            the secrets file if that names the KEK
	rotate-kek --tenant T --new URI
	                            give tenant T a KEK of its own (bring your own key: a key its customer
	                            holds in its KMS), or move it to another; disabling that key in the KMS
	                            then makes T's data, and only T's, unreadable
	rotate-kek --tenant T --shared
	                            move tenant T back to the shared KEK

The KEK is --kek, else $TENANTSEAL_KEK_URI, else the TENANTSEAL_KEK_URI line of the secrets file:
local-keyset://<path> (a file from init-kek) or a KMS URI: aws-kms://arn:aws:kms:<region>:<account>:key/<id>
(the AWS SDK's credentials; AWS_ENDPOINT_URL_KMS for a compatible endpoint), gcp-kms://projects/...
(Application Default Credentials) or hcvault://<host>/<mount>/keys/<name> (VAULT_TOKEN). Every
subcommand checks it against the database first, so a wrong KEK fails before anything changes.

Rotating a tenant's keys, safely at any speed:

	tenantseal keys rotate --tenant T
	tenantseal keys reencrypt --tenant T      # at once, and again after the wait if retire says so
	tenantseal keys retire --tenant T         # refused until the wait is over; then disables old keys
	tenantseal keys destroy --tenant T --confirm T   # later, once sure: nothing brings them back

Every change is recorded in the audit log with the operator ($TENANTSEAL_OPERATOR, else user@host):
the subcommands that change keys need the audit writer's connection string
($TENANTSEAL_AUDIT_WRITER_DSN, else the secrets file). reencrypt and quarantine act as the app role, so
that row-level security applies to them: --app-dsn, else $TENANTSEAL_APP_DSN, else the secrets file;
they sign the tenant context with $TENANTSEAL_CONTEXT_KEY, else the secrets file's. reencrypt prints
per tenant the rows examined, rewritten, raced (changed by the application meanwhile: left as written,
a re-run picks them up) and unreadable; progress goes to stderr.

status --format json prints one object, schema tenantseal/keys-status/v1:

	{"schema": "tenantseal/keys-status/v1", "tenants": [{"id": "<uuid>", "name": "...",
	  "shredded_at": "<RFC 3339>" or null, "kek": {"id": "kek-...", "own": false, "uri": ""},
	  "primary_since": "<RFC 3339>", "retire_after": "<RFC 3339>", "quarantined": 0,
	  "keysets": [{"purpose": "aead|prf", "version": 3, "keys": [{"id": 123,
	    "status": "primary|enabled|disabled|destroyed|unknown", "created_at": "<RFC 3339>" or null,
	    "disabled_at": ..., "destroyed_at": ...}]}]}]}

quarantine --format json prints {"schema": "tenantseal/quarantine/v1", "tenant": "<uuid>",
"values": [{"table": "...", "column": "...", "row": "...", "key_id": 123, "reason":
"tampered|unknown_key|shredded", "found_at": "<RFC 3339>"}]}.`

var keysSubcommands = []subcommand{
	{"status", ownerFlags + " tenant format quiet verbose"},
	{"init-kek", "out secrets quiet verbose"},
	{"check", ownerFlags + " kek quiet verbose"},
	{"create", ownerFlags + " kek tenant all quiet verbose"},
	{"rotate", ownerFlags + " kek tenant all quiet verbose"},
	{"reencrypt", ownerFlags + " kek tenant all batch app-dsn prefix quiet verbose"},
	{"retire", ownerFlags + " kek tenant all app-dsn prefix skip-quarantined quiet verbose"},
	{"enable", ownerFlags + " kek tenant key quiet verbose"},
	{"destroy", ownerFlags + " kek tenant confirm app-dsn prefix skip-quarantined quiet verbose"},
	{"quarantine", ownerFlags + " tenant release app-dsn prefix format quiet verbose"},
	{"settings", ownerFlags + " max-cache-ttl write-grace quiet verbose"},
	{"rotate-kek", ownerFlags + " kek tenant new shared quiet verbose"},
}

// keysRun is one run of a keys subcommand with its parsed flags.
type keysRun struct {
	s       *session
	sub     string
	conn    *connFlags
	kek     *kekFlags
	app     *appFlags
	out     *outputFlags
	tenant  tenantseal.TenantID // zero with --all
	all     bool
	batch   int
	outFile string
	next    string
	shared  bool
	skip    bool
	release bool
	keyIDs  []uint32
	confirm string

	maxCacheTTL, writeGrace time.Duration
}

func runKeys(ctx context.Context, s *session, args []string) error {
	f := newFlags(s, "keys", "<subcommand> [flags]", keysAbout)
	r := &keysRun{s: s}
	r.conn = f.ownerConn()
	r.kek = f.kekFlag(r.conn)
	r.app = f.appConn(r.conn, "reencrypt, retire")
	r.out = f.output("text", "json")
	tenant := f.String("tenant", "", "with status, create, rotate, reencrypt, retire, enable, destroy, quarantine, rotate-kek: the tenant id")
	f.BoolVar(&r.all, "all", false, "with rotate, reencrypt, retire: every tenant that has keysets")
	f.IntVar(&r.batch, "batch", 500, "with reencrypt: rows read and rewritten per transaction")
	f.StringVar(&r.outFile, "out", "tenantseal-kek.json", "with init-kek: the KEK file to write")
	f.StringVar(&r.next, "new", "", "with rotate-kek: URI of the new KEK")
	f.BoolVar(&r.shared, "shared", false, "with rotate-kek --tenant: move the tenant back to the shared KEK")
	f.BoolVar(&r.skip, "skip-quarantined", false, "with retire, destroy: go on although quarantined values name the old keys")
	f.BoolVar(&r.release, "release", false, "with quarantine: empty the tenant's quarantine list")
	keyList := f.String("key", "", "with enable: the key ids to enable, comma-separated (default: every disabled key)")
	f.StringVar(&r.confirm, "confirm", "", "with destroy: the tenant id again")
	f.DurationVar(&r.maxCacheTTL, "max-cache-ttl", 0, "with settings: the longest any process may cache opened keysets")
	f.DurationVar(&r.writeGrace, "write-grace", 0, "with settings: how long a write encrypted before a cache expired may take to commit")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	subs := subcommandNames(keysSubcommands)
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
	if err := r.out.check(); err != nil {
		return err
	}
	switch r.sub {
	case "enable", "destroy", "quarantine":
		if *tenant == "" {
			return usageErrorf("keys %s: --tenant T is required", r.sub)
		}
	case "create", "rotate", "reencrypt", "retire":
		if (*tenant == "") == !r.all {
			return usageErrorf("keys %s: give either --tenant T or --all", r.sub)
		}
		if r.sub == "reencrypt" && r.batch < 1 {
			return usageErrorf("keys reencrypt: --batch must be at least 1, got %d", r.batch)
		}
	case "rotate-kek":
		switch {
		case r.shared && *tenant == "":
			return usageErrorf("keys rotate-kek: --shared goes with --tenant T: it moves one tenant back to the shared KEK")
		case r.shared && r.next != "":
			return usageErrorf("keys rotate-kek: give --new URI or --shared, not both")
		case !r.shared && r.next == "":
			return usageErrorf("keys rotate-kek: --new <uri> is required")
		}
	}
	if *tenant != "" {
		if r.tenant, err = parseTenant("keys "+r.sub, "--tenant", *tenant); err != nil {
			return err
		}
	}
	if r.sub == "destroy" {
		if r.confirm == "" {
			return usageErrorf("keys destroy: --confirm with the tenant id again is required: destroyed keys are gone for good, and any value still under them")
		}
		if r.confirm != *tenant {
			return usageErrorf("keys destroy: --confirm %q does not repeat the tenant id %q: nothing was destroyed", r.confirm, *tenant)
		}
	}
	if *keyList != "" {
		for _, p := range strings.Split(*keyList, ",") {
			id, err := strconv.ParseUint(strings.TrimSpace(p), 10, 32)
			if err != nil {
				return usageErrorf("keys enable: --key %q: want key ids as 'tenantseal keys status' prints them, comma-separated", p)
			}
			r.keyIDs = append(r.keyIDs, uint32(id))
		}
	}

	switch r.sub {
	case "status":
		return r.status(ctx)
	case "init-kek":
		return r.initKEK()
	case "check":
		return r.check(ctx)
	case "create":
		return r.owned(ctx, r.createWith)
	case "rotate":
		return r.owned(ctx, r.rotateWith)
	case "reencrypt":
		return r.withApp(ctx, r.reencryptWith)
	case "retire":
		return r.withApp(ctx, r.retireWith)
	case "enable":
		return r.owned(ctx, r.enableWith)
	case "destroy":
		return r.withApp(ctx, r.destroyWith)
	case "quarantine":
		return r.quarantine(ctx)
	case "settings":
		return r.settings(ctx, f)
	default:
		return r.rotateKEK(ctx)
	}
}

// subcommandNames lists subs for a message: "a, b or c".
func subcommandNames(subs []subcommand) string {
	names := make([]string, len(subs))
	for i, sc := range subs {
		names[i] = sc.name
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// parseTenant parses a tenant id given on the command line.
func parseTenant(cmd, what, s string) (tenantseal.TenantID, error) {
	id, err := tenantseal.ParseTenantID(s)
	if err != nil || id.IsZero() {
		return tenantseal.TenantID{}, usageErrorf("%s: %s %q is not a tenant id: want the id that 'tenantseal tenants list' prints", cmd, what, s)
	}
	return id, nil
}

// kmsClients are the KMS clients of the build (cmd/tenantseal: keys/kms's).
func (s *session) kmsClients(ctx context.Context) []keys.KMSClient {
	if s.opts.KMS == nil {
		return nil
	}
	return s.opts.KMS(ctx)
}

// ownerSide is the owner connection, the checked KEK and the audit log that every subcommand but
// init-kek and status works with.
type ownerSide struct {
	conn  *pgx.Conn
	kek   *keys.KEK
	ref   kekRef
	admin *pgstore.Admin
	log   *auditLog
	ctx   context.Context // the operator's
}

// connect resolves the owner connection string and the KEK, opens the KEK, connects as the owner,
// checks the KEK against the database and opens the audit log that records the changes.
func (r *keysRun) connect(ctx context.Context) (*ownerSide, error) {
	dsn, err := r.conn.ownerDSN()
	if err != nil {
		return nil, err
	}
	ref, err := r.kek.resolve()
	if err != nil {
		return nil, err
	}
	c, kek, err := ownerWithKEK(ctx, r.s, dsn, ref, "keys "+r.sub)
	if err != nil {
		return nil, err
	}
	o := &ownerSide{conn: c, kek: kek, ref: ref, ctx: asOperator(ctx),
		admin: pgstore.NewAdmin(c, kek).WithKMS(r.s.kmsClients(ctx)...)}
	if r.sub != "check" {
		if o.log, err = openAuditLog(ctx, r.s, r.conn, "keys "+r.sub); err != nil {
			c.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		o.admin = o.admin.WithRecorder(o.log.w)
	}
	return o, nil
}

// close flushes the audit log and closes the connection; err is the subcommand's result.
func (o *ownerSide) close(ctx context.Context, err error) error {
	if o.log != nil {
		err = o.log.close(ctx, err)
	}
	o.conn.Close(context.WithoutCancel(ctx))
	return err
}

// ownerWithKEK opens the KEK that ref names (before connecting: a missing file needs no server),
// connects as the owner for cmd and checks the role and the KEK against the database.
func ownerWithKEK(ctx context.Context, s *session, dsn string, ref kekRef, cmd string) (*pgx.Conn, *keys.KEK, error) {
	kek, err := openKEK(ctx, s, ref)
	if err != nil {
		return nil, nil, err
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	if err := checkOwner(ctx, c, cmd); err != nil {
		c.Close(context.WithoutCancel(ctx))
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
	switch {
	case errors.Is(err, keys.ErrShredded):
		return fmt.Errorf("keys %s: tenant %s was crypto-shredded: it has no keysets; 'tenantseal keys create --tenant %s' gives it new ones (its old values stay unreadable)", r.sub, id, id)
	case errors.Is(err, keys.ErrNoKeyset):
		return fmt.Errorf("keys %s: tenant %s has no keysets (made with --no-keys): 'tenantseal keys create --tenant %s' gives it new ones", r.sub, id, id)
	}
	return fmt.Errorf("keys %s: tenant %s: %w", r.sub, id, ownerError(err))
}
