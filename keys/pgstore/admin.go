package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

// Beginner starts transactions; *pgx.Conn and *pgxpool.Pool connected as the owner role satisfy it, and
// so does a pgx.Tx (each call then runs in a savepoint of it).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Admin manages tenant keysets as the owner role: creation with the tenant, rotation, retirement,
// re-enabling, destruction, KEK rotation and crypto-shredding. Application processes never need it.
// Every method runs in one transaction: it changes everything it says or nothing.
type Admin struct {
	db   Beginner
	kek  *keys.KEK
	rec  tenantseal.Recorder
	open func(ctx context.Context, uri string) (*keys.KEK, error)
}

// NewAdmin returns an Admin that works through db with kek, the database's shared KEK. kek may be nil
// for [Admin.Shred] and [Admin.Tenants], which open no keyset; the other methods then fail with
// [keys.ErrKEK]. Tenants with a KEK of their own ([Admin.UseTenantKEK]) have it opened by its URI, with
// the KMS clients of [Admin.WithKMS].
func NewAdmin(db Beginner, kek *keys.KEK) *Admin { return &Admin{db: db, kek: kek, open: keys.OpenKEK} }

// WithKMS returns a copy of the Admin that opens tenants' own KEKs with clients first (see
// keys.OpenKEKWith), then Tink's registry.
func (a *Admin) WithKMS(clients ...keys.KMSClient) *Admin {
	c := *a
	c.open = func(ctx context.Context, uri string) (*keys.KEK, error) {
		return keys.OpenKEKWith(ctx, uri, clients...)
	}
	return &c
}

// WithRecorder returns a copy of the Admin that records each change it commits (rotation, retirement,
// re-enabling, destruction, KEK rotation, shred) through rec, an audit.Writer say, as an operator
// action: the Principal in the method's ctx (tenantseal.OperatorPrincipal) is who did it.
func (a *Admin) WithRecorder(rec tenantseal.Recorder) *Admin {
	c := *a
	c.rec = rec
	return &c
}

// record records e if the Admin has a Recorder.
func (a *Admin) record(ctx context.Context, e tenantseal.Event) {
	if a.rec != nil {
		a.rec.Record(ctx, e)
	}
}

// inTx runs fn in a transaction of a.db, rolled back unless fn and the commit succeed. fn's errors are
// returned as they are; those of BEGIN and COMMIT are named by what.
func (a *Admin) inTx(ctx context.Context, what string, needKEK bool, fn func(pgx.Tx) error) (err error) {
	if needKEK && a.kek == nil {
		return fmt.Errorf("%w: %s: the Admin has no KEK", keys.ErrKEK, what)
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return wrap(what, err)
	}
	defer func() {
		if rbErr := tx.Rollback(context.WithoutCancel(ctx)); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) && err == nil {
			err = wrap(what+": rollback", rbErr)
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(what+": commit", err)
	}
	return nil
}

// CreateTenant inserts a tenant into tenantseal.tenants and gives it its keysets, in one transaction, and
// returns its id. It records a tenantseal.EventKeyCreate after the commit.
func (a *Admin) CreateTenant(ctx context.Context, name string) (tenantseal.TenantID, error) {
	var id tenantseal.TenantID
	var created []string
	err := a.inTx(ctx, "create tenant", true, func(tx pgx.Tx) (err error) {
		if err := tx.QueryRow(ctx, "INSERT INTO tenantseal.tenants (name) VALUES ($1) RETURNING key", name).Scan(&id); err != nil {
			return wrap("create tenant", err)
		}
		created, err = a.createKeysets(ctx, tx, id)
		return err
	})
	if err == nil {
		a.recordCreated(ctx, id, created)
	}
	return id, err
}

// CreateKeysets gives an existing tenant its keysets, in a transaction of its own; it is a no-op for a
// tenant that has them. It records a tenantseal.EventKeyCreate after the commit when it created any.
// [Admin.CreateKeysetsIn] does the same inside a transaction of the caller's.
func (a *Admin) CreateKeysets(ctx context.Context, tenant tenantseal.TenantID) error {
	var created []string
	err := a.inTx(ctx, "create keysets", true, func(tx pgx.Tx) (err error) {
		created, err = a.createKeysets(ctx, tx, tenant)
		return err
	})
	if err == nil {
		a.recordCreated(ctx, tenant, created)
	}
	return err
}

// CreateKeysetsIn gives tenant its keysets inside tx, a transaction of the caller's that may also create
// the tenant's row (tenants.Create takes it as its KeysetCreator): the keysets and, on first use, the
// database's KEK canary commit or roll back with tx. The Admin's own connection is not used, and
// nothing is recorded: the caller, which commits, records (tenants.Create records the tenant's
// creation).
func (a *Admin) CreateKeysetsIn(ctx context.Context, tx pgx.Tx, tenant tenantseal.TenantID) error {
	if a.kek == nil {
		return fmt.Errorf("%w: create keysets: the Admin has no KEK", keys.ErrKEK)
	}
	_, err := a.createKeysets(ctx, tx, tenant)
	return err
}

// recordCreated records that tenant was given keysets of the purposes created, if any.
func (a *Admin) recordCreated(ctx context.Context, tenant tenantseal.TenantID, created []string) {
	if len(created) == 0 {
		return
	}
	a.record(ctx, tenantseal.Event{Kind: tenantseal.EventKeyCreate, TargetTenant: tenant, Table: "tenantseal.tenant_keysets", Operation: "create",
		Detail: fmt.Sprintf("%s keysets wrapped with KEK %s", strings.Join(created, ", "), a.kek.ID)})
}

// createKeysets creates the keysets tenant lacks and returns their purposes.
func (a *Admin) createKeysets(ctx context.Context, tx pgx.Tx, tenant tenantseal.TenantID) ([]string, error) {
	if err := a.ensureCanary(ctx, tx); err != nil {
		return nil, err
	}
	w, err := keys.NewTenantKeysets(a.kek, tenant)
	if err != nil {
		return nil, err
	}
	var created []string
	for _, k := range []struct {
		purpose string
		wrapped []byte
	}{{keys.PurposeAEAD, w.AEAD}, {keys.PurposePRF, w.PRF}} {
		tag, err := tx.Exec(ctx, `INSERT INTO tenantseal.tenant_keysets (tenant_id, purpose, kek_id, wrapped)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, tenant, k.purpose, a.kek.ID, k.wrapped)
		if err != nil {
			return nil, wrap("store "+k.purpose+" keyset", err)
		}
		if tag.RowsAffected() == 0 {
			continue // the tenant has it already
		}
		created = append(created, k.purpose)
		info, err := keys.WrappedKeys(k.wrapped)
		if err != nil {
			return nil, err
		}
		for _, ki := range info {
			if err := keyHistory(ctx, tx, tenantseal.EventKeyRotate, tenant, k.purpose, []uint32{ki.ID}); err != nil {
				return nil, err
			}
		}
	}
	return created, nil
}

// ensureCanary stores the KEK canary on first use and otherwise checks that this KEK opens it.
func (a *Admin) ensureCanary(ctx context.Context, tx pgx.Tx) error {
	var ct []byte
	err := tx.QueryRow(ctx, "SELECT ciphertext FROM tenantseal.kek_canary").Scan(&ct)
	if errors.Is(err, pgx.ErrNoRows) {
		c, err := a.kek.NewCanary()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO tenantseal.kek_canary (kek_id, ciphertext) VALUES ($1, $2)", a.kek.ID, c); err != nil {
			return wrap("store KEK canary", err)
		}
		return nil
	}
	if err != nil {
		return wrap("read KEK canary", err)
	}
	if !a.kek.OpensCanary(ct) {
		return fmt.Errorf("%w: %s does not open the database's KEK canary", keys.ErrKEK, a.kek.ID)
	}
	return nil
}

// CheckKEK verifies that kek is the KEK the database was set up with: a clear startup error
// ([keys.ErrKEK]) instead of failures at the first decryption. A database without keysets yet passes:
// the first keysets created store the canary.
func CheckKEK(ctx context.Context, q Querier, kek *keys.KEK) error {
	rows, err := q.Query(ctx, "SELECT ciphertext FROM tenantseal.kek_canary")
	if err != nil {
		return wrap("read KEK canary", err)
	}
	cts, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return wrap("read KEK canary", err)
	}
	if len(cts) == 0 {
		return nil
	}
	if !kek.OpensCanary(cts[0]) {
		return fmt.Errorf("%w: %s does not open the database's KEK canary", keys.ErrKEK, kek.ID)
	}
	return nil
}

// TenantKEKCheck is what [Admin.CheckTenantKEKs] found for one tenant's own KEK: Err is nil when the
// KEK opened and opened the tenant's canary.
type TenantKEKCheck struct {
	Tenant tenantseal.TenantID
	URI    string // tenantseal.tenant_keks.kek_uri: a KMS key's URI, no secret
	KEKID  string // the KEK's id, when it opened
	Err    error
}

// CheckTenantKEKs opens the own KEK of every tenant that has one (bring your own key) and checks it
// against the tenant's canary, as a KEK check of the shared KEK ([CheckKEK]) does not. A KEK that does
// not open is reported in its TenantKEKCheck, not as the error, which says the check could not run.
func (a *Admin) CheckTenantKEKs(ctx context.Context) ([]TenantKEKCheck, error) {
	type row struct {
		tenant tenantseal.TenantID
		uri    string
		canary []byte
	}
	var rs []row
	err := a.inTx(ctx, "check tenant KEKs", false, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT t.key, k.kek_uri, k.canary FROM tenantseal.tenant_keks k
			JOIN tenantseal.tenants t ON t.id = k.tenant_id ORDER BY t.created_at, t.id`)
		if err == nil {
			rs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
				var x row
				return x, r.Scan(&x.tenant, &x.uri, &x.canary)
			})
		}
		if err != nil {
			return wrap("read the tenants' KEKs", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]TenantKEKCheck, len(rs))
	for i, r := range rs {
		out[i] = TenantKEKCheck{Tenant: r.tenant, URI: r.uri}
		if kek, err := a.openTenantKEK(ctx, r.tenant, r.uri, r.canary); err != nil {
			out[i].Err = err
		} else {
			out[i].KEKID = kek.ID
		}
	}
	return out, nil
}

// IsolationTenantPrefix begins the names of the tenants an isolation check (package isolation) creates
// while it runs: their keysets are wrapped by a throwaway KEK of the check's. Operations over every
// tenant ([Admin.Tenants], [Admin.RotateKEK]) leave them out, and package tenants refuses the prefix in
// names of its own.
const IsolationTenantPrefix = "tenantseal-isolation"

// Tenants lists the tenants that have keysets, but an isolation check's.
func (a *Admin) Tenants(ctx context.Context) ([]tenantseal.TenantID, error) {
	var ids []tenantseal.TenantID
	err := a.inTx(ctx, "list tenants", false, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT t.key FROM tenantseal.tenants t WHERE EXISTS (SELECT 1 FROM tenantseal.tenant_keysets k WHERE k.tenant_id = t.id) AND NOT starts_with(t.name, $1) ORDER BY t.id", IsolationTenantPrefix)
		if err == nil {
			ids, err = pgx.CollectRows(rows, pgx.RowTo[tenantseal.TenantID])
		}
		if err != nil {
			return wrap("list tenants", err)
		}
		return nil
	})
	return ids, err
}

// RotateKEK re-wraps every tenant keyset of the shared KEK, and the canary, under next without touching
// row data, in one transaction, and returns the number of keysets re-wrapped. Afterwards every process
// must use next. Tenants with a KEK of their own keep it ([Admin.UseTenantKEK] rotates theirs).
func (a *Admin) RotateKEK(ctx context.Context, next *keys.KEK) (int, error) {
	n := 0
	var role string
	err := a.inTx(ctx, "rotate KEK", true, func(tx pgx.Tx) error {
		if err := a.ensureCanary(ctx, tx); err != nil {
			return err
		}
		ks, err := lockKeysets(ctx, tx, lockSharedKeysets)
		if err != nil {
			return err
		}
		for _, k := range ks {
			w, err := keys.Rewrap(a.kek, next, k.tenant, k.purpose, k.wrapped)
			if err != nil {
				return err
			}
			if err := storeKeyset(ctx, tx, k, w, next, false); err != nil {
				return err
			}
			n++
		}
		c, err := next.NewCanary()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE tenantseal.kek_canary SET kek_id = $1, ciphertext = $2", next.ID, c); err != nil {
			return wrap("store KEK canary", err)
		}
		return tx.QueryRow(ctx, "SELECT current_user").Scan(&role)
	})
	if err != nil {
		return 0, err
	}
	a.record(ctx, tenantseal.Event{Kind: tenantseal.EventKEKRotate, Table: "tenantseal.tenant_keysets", Operation: "rotate kek",
		Detail: fmt.Sprintf("re-wrapped %d keysets from %s to %s as database role %s", n, a.kek.ID, next.ID, role)})
	return n, nil
}

// Shred destroys the tenant's keysets: every encrypted field of the tenant becomes permanently
// unreadable (crypto-shredding). Processes that cached the keysets keep them until their cache TTL
// (keys.Config.CacheTTL, at most tenantseal.key_settings.max_cache_ttl), or until their next version
// check. It returns the number of keysets destroyed, or [keys.ErrNoKeyset] when there were none. It
// records nothing: tenants.Shred is the operator's shred, recorded in the audit log.
func (a *Admin) Shred(ctx context.Context, tenant tenantseal.TenantID) (int64, error) {
	var n int64
	err := a.inTx(ctx, "shred", false, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM tenantseal.tenant_keysets WHERE tenant_id = $1", tenant)
		if err != nil {
			return wrap("shred", err)
		}
		if n = tag.RowsAffected(); n > 0 {
			return MarkShredded(ctx, tx, tenant)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%w (tenant %s)", keys.ErrNoKeyset, tenant)
	}
	return n, nil
}

// MarkShredded records in tx that the tenant's keysets were crypto-shredded: loaders then report
// [keys.ErrShredded], and ciphertexts of before the shred are not taken for tampered ones, even under
// keysets the tenant is given afterwards. It also closes the tenant's key history.
func MarkShredded(ctx context.Context, tx pgx.Tx, tenant tenantseal.TenantID) error {
	if _, err := tx.Exec(ctx, "UPDATE tenantseal.tenants SET shredded_at = now() WHERE id = $1", tenant); err != nil {
		return wrap("mark shredded", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE tenantseal.tenant_keys SET destroyed_at = now() WHERE tenant_id = $1 AND destroyed_at IS NULL", tenant); err != nil {
		return wrap("mark shredded", err)
	}
	// Keysets it is given later are wrapped by the shared KEK, unless it is given its own again.
	if _, err := tx.Exec(ctx, "DELETE FROM tenantseal.tenant_keks WHERE tenant_id = $1", tenant); err != nil {
		return wrap("mark shredded", err)
	}
	return nil
}
