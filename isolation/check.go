package isolation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/token"
	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
)

// Config says where the isolation suite runs and how it signs tenant contexts.
type Config struct {
	// SuperDSN connects as a superuser to the database under test. The suite seeds rows and reads the
	// ground truth with it (a superuser bypasses row-level security), and removes what it wrote at the end.
	SuperDSN string
	// AppDSN connects as the application's role: every attack runs as that role.
	AppDSN string
	// AllowPlaintextLoopback is db.Config.AllowPlaintextLoopback for the suite's db.Pools.
	AllowPlaintextLoopback bool
	// ContextKey signs tenant context tokens the database accepts (db.ContextKey, as bootstrap writes it).
	ContextKey db.ContextKey
	// Sign, when set, signs tokens instead of ContextKey: a token in the database's format that names
	// tenant and subject and expires at expires.
	Sign func(tenant tenantseal.TenantID, subject string, expires time.Time) (string, error)
	// TenantColumn names the tenant column of the tables that tenantseal.tenant_tables does not list
	// (which names each table's own). Default "tenant_id". A table with a column of this name, or of any
	// name tenant_tables uses, is a tenant table: one that is not protected is attacked all the same.
	TenantColumn string
	// Schemas to search for tenant tables, views and functions. Default: every schema but the system
	// schemas and tenantseal's own.
	Schemas []string
	// Short seeds fewer rows and lets one tenant attack instead of each in turn; every case still runs
	// against every table.
	Short bool
	// AcceptOracles names SECURITY DEFINER functions (schema.name) documented to answer a yes/no question
	// about other tenants' rows, that the app role may call. The security-definer case reports their
	// differing answers as notes instead of leaks. tenantseal's own existence probe is not one: only the
	// audit writer's appends may ask it.
	AcceptOracles []string
	// KEK wraps the keysets of the suite's tenants for the key cases. Default: a throwaway local KEK.
	KEK *keys.KEK
	// Exclude names tables (schema.name, or name for public) that the suite neither seeds nor attacks,
	// each with the reason the report lists it under.
	Exclude map[string]string
	// AcceptGlobal names tables without a tenant column that every tenant is meant to read (reference
	// data): the global-table case notes them instead of reporting them.
	AcceptGlobal []string
	// Hints fix column values of the seeded rows of a table (by schema.name, or name for public), for
	// columns whose valid values the catalog does not tell. [LoadConfigFile] reads them from a file.
	Hints map[string]TableHint
}

const (
	subject     = pgstore.IsolationTenantPrefix // the suite's tenants' names begin with it: key operations over all tenants skip them
	probePrefix = "tenantseal_isolation_probe"
)

// suite is one run of the isolation suite against one database.
type suite struct {
	cfg      Config
	super    *pgx.Conn
	app      *pgxpool.Pool
	appRole  string
	cat      *catalog
	tenants  []tenantseal.TenantID
	rowsPer  int
	rows     map[*table][][]*seedRow
	markers  [][]string // per tenant: values that prove a row of that tenant was seen
	snap     map[*table]string
	baseline map[string]string

	kek        *keys.KEK
	keys       *keys.Keyring // non-nil when the key cases apply
	keysetSnap string
	plain      map[*seedRow]map[string]string

	// runID names what this run creates (see cleanup.go).
	runID         string
	refreshed     []string // materialized views refreshed at setup
	probeSchema   string
	retiredKid    string
	retiredSecret []byte
	// replay is a token of tenant 1 that worked and has since expired.
	replay    string
	replayExp time.Time
	// standby: AppDSN names a hot standby of the database SuperDSN names.
	standby bool
}

// acquire returns a connection as the app role. On a hot standby it waits first until the standby has
// replayed what the suite wrote on the primary so far: every attack then sees the rows and settings it
// is about.
func (s *suite) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if s.standby {
		var lsn string
		if err := s.super.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
			return nil, fmt.Errorf("isolation: the primary's WAL position (SuperDSN must name the primary): %w", err)
		}
		for {
			var done bool
			if err := s.app.QueryRow(ctx, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn).Scan(&done); err != nil {
				return nil, fmt.Errorf("isolation: the standby's replay position: %w", err)
			}
			if done {
				break
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("isolation: the standby has not replayed up to %s: %w", lsn, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return s.app.Acquire(ctx)
}

// Check runs the isolation suite against the database behind cfg and returns its report. It
// fails with an error only when the suite cannot run (no connection, nothing to check, seeding fails);
// leaks are in the report. The database must be one that may take writes: the suite adds rows for
// throwaway tenants, and removes them, and its probe objects, when it ends. AppDSN may name a hot
// standby of the database SuperDSN names: the attacks then read there, each once the standby has
// replayed what the suite wrote, and the checks that write as the app role are reported as not run
// ([Result.NotRun]).
func Check(ctx context.Context, cfg Config) (rep *Report, err error) {
	start := time.Now()
	if cfg.SuperDSN == "" || cfg.AppDSN == "" {
		return nil, errors.New("isolation: Config needs SuperDSN and AppDSN")
	}
	if cfg.Sign == nil && cfg.ContextKey.ID == "" {
		return nil, errors.New("isolation: Config needs ContextKey or Sign")
	}
	if cfg.TenantColumn == "" {
		cfg.TenantColumn = "tenant_id"
	}
	s := &suite{cfg: cfg, rowsPer: 4, runID: randomHex(4)}
	nTenants := 4
	if cfg.Short {
		s.rowsPer, nTenants = 2, 3
	}
	if s.super, err = pgx.Connect(ctx, cfg.SuperDSN); err != nil {
		return nil, fmt.Errorf("isolation: connect as superuser: %w", err)
	}
	defer s.super.Close(context.WithoutCancel(ctx))
	var isSuper bool
	if err := s.super.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&isSuper); err != nil || !isSuper {
		return nil, fmt.Errorf("isolation: SuperDSN must connect as a superuser (%v)", err)
	}
	pc, err := pgxpool.ParseConfig(cfg.AppDSN)
	if err != nil {
		return nil, fmt.Errorf("isolation: app connection string: %w", err)
	}
	pc.MaxConns = 4
	if s.app, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, fmt.Errorf("isolation: %w", err)
	}
	defer s.app.Close()
	var superDB, appDB string
	if err := s.app.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&s.appRole, &appDB); err != nil {
		return nil, fmt.Errorf("isolation: connect as the app role: %w", err)
	}
	if err := s.super.QueryRow(ctx, "SELECT current_database()").Scan(&superDB); err != nil {
		return nil, fmt.Errorf("isolation: %w", err)
	}
	if superDB != appDB {
		return nil, fmt.Errorf("isolation: SuperDSN connects to database %q, AppDSN to %q: they must name the same one", superDB, appDB)
	}
	if err := s.app.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&s.standby); err != nil {
		return nil, fmt.Errorf("isolation: %w", err)
	}
	var appSuper, appBypass bool
	if err := s.super.QueryRow(ctx, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", s.appRole).Scan(&appSuper, &appBypass); err != nil {
		return nil, fmt.Errorf("isolation: %w", err)
	}
	if appSuper || appBypass {
		return nil, fmt.Errorf("isolation: the app role %q is a superuser or has BYPASSRLS: row-level security cannot apply to it", s.appRole)
	}
	schemas := cfg.Schemas
	if len(schemas) == 0 {
		rows, err := s.super.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('information_schema', 'tenantseal')
			AND nspname !~ '^pg_' AND nspname NOT LIKE $1 ORDER BY 1`, probePrefix+"%")
		if err != nil {
			return nil, fmt.Errorf("isolation: list schemas: %w", err)
		}
		if schemas, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return nil, fmt.Errorf("isolation: list schemas: %w", err)
		}
	}
	if s.cat, err = discover(ctx, s.super, s.appRole, &s.cfg, schemas); err != nil {
		return nil, err
	}
	if err := s.claim(ctx); err != nil {
		return nil, err
	}
	swept, err := s.sweep(ctx)
	if err != nil {
		return nil, err
	}
	if s.tenants, err = s.newTenants(ctx, nTenants); err != nil {
		return nil, err
	}
	rep = &Report{Database: appDB, AppRole: s.appRole, Schemas: schemas, KeyType: s.cat.keyType, Tenants: nTenants, RowsPerTenant: s.rowsPer,
		Short: cfg.Short, Standby: s.standby, Citus: s.cat.citus, Skipped: s.cat.skipped, Swept: swept}
	_ = s.super.QueryRow(ctx, "SHOW server_version").Scan(&rep.Server)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if cerr := s.cleanup(cctx); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			rep = nil
		}
	}()
	if err := s.setup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("isolation: isolation suite: %w", ctx.Err())
		}
		return nil, err
	}
	for _, t := range s.cat.all() {
		kind := "tenant"
		if t.registry {
			kind = "registry"
		}
		n := 0
		for _, rs := range s.rows[t] {
			n += len(rs)
		}
		rep.Tables = append(rep.Tables, TableInfo{Name: t.String(), Kind: kind, TenantColumn: t.tenantCol, SeededRows: n, RLS: t.rls, ForceRLS: t.force, Encrypted: t.encrypted})
	}
	attackers := []int{0}
	if !cfg.Short {
		attackers = make([]int, nTenants)
		for i := range attackers {
			attackers[i] = i
		}
	}
	s.run(ctx, rep, attackers)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("isolation: isolation suite: %w", ctx.Err())
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// setup seeds the tenants, prepares keys, the probe schema and the replay token.
func (s *suite) setup(ctx context.Context) error {
	if err := s.seed(ctx); err != nil {
		return err
	}
	if s.cat.keysets {
		s.kek = s.cfg.KEK
		if s.kek == nil {
			dir, err := os.MkdirTemp("", "tenantseal-isolation-kek")
			if err != nil {
				return fmt.Errorf("isolation: %w", err)
			}
			defer os.RemoveAll(dir)
			uri, err := keys.InitLocalKEK(filepath.Join(dir, "kek.json"))
			if err != nil {
				return fmt.Errorf("isolation: throwaway KEK: %w", err)
			}
			if s.kek, err = keys.OpenKEK(ctx, uri); err != nil {
				return fmt.Errorf("isolation: throwaway KEK: %w", err)
			}
		}
		if err := s.setupKeys(ctx); err != nil {
			return err
		}
		if err := s.super.QueryRow(ctx, "SELECT coalesce(json_agg(k), '[]')::text FROM tenantseal.tenant_keysets k WHERE tenant_id = ANY($1::uuid[])", s.handles()).Scan(&s.keysetSnap); err != nil {
			return fmt.Errorf("isolation: snapshot keysets: %w", err)
		}
		var err error
		if s.keys, err = s.keyring(); err != nil {
			return err
		}
	}
	s.probeSchema = fmt.Sprintf("%s_%s", probePrefix, s.runID)
	if _, err := s.super.Exec(ctx, fmt.Sprintf("CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %[1]s TO %s",
		pgx.Identifier{s.probeSchema}.Sanitize(), pgx.Identifier{s.appRole}.Sanitize())); err != nil {
		return fmt.Errorf("isolation: create probe schema: %w", err)
	}
	for _, t := range s.cat.all() {
		if _, err := s.super.Exec(ctx, "ANALYZE "+t.qname()); err != nil {
			return fmt.Errorf("isolation: analyze %s: %w", t, err)
		}
	}
	// Materialized views hold what they held when last refreshed: refreshed, they hold the suite's rows
	// too (and are refreshed again at the end, without them).
	for _, v := range s.cat.views {
		if v.kind != "m" {
			continue
		}
		if _, err := s.super.Exec(ctx, "REFRESH MATERIALIZED VIEW "+v.qname()); err != nil {
			return fmt.Errorf("isolation: refresh %s: %w", v, err)
		}
		s.refreshed = append(s.refreshed, v.qname())
	}
	// A token that works now and will have expired by the time the replay case runs.
	s.replayExp = time.Now().Truncate(time.Second).Add(2 * time.Second)
	var err error
	if s.replay, err = s.sign(s.tenants[1], s.replayExp); err != nil {
		return err
	}
	var n int
	t0 := s.cat.tables[0]
	if err := s.as(ctx, s.replay, false, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM "+t0.qname()).Scan(&n)
	}); err != nil || n != len(s.rows[t0][1]) {
		return fmt.Errorf("isolation: a freshly signed token of a seeded tenant read %d rows of %s (%v), want %d: check ContextKey/Sign, and that %s is protected", n, t0, err, len(s.rows[t0][1]), t0)
	}
	return s.snapshot(ctx)
}

// newTenants makes n tenant keys of the deployment's key type that no tenant has.
func (s *suite) newTenants(ctx context.Context, n int) ([]tenantseal.TenantID, error) {
	var out []tenantseal.TenantID
	for len(out) < n {
		key := s.madeUpKey()
		id, err := tenantseal.ParseTenantID(key)
		if err != nil {
			return nil, fmt.Errorf("isolation: %w", err)
		}
		if s.cat.tenants {
			col := "id::text"
			if s.cat.tenantKeys {
				col = "key"
			}
			var taken bool
			if err := s.super.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tenantseal.tenants WHERE "+col+" = $1)", key).Scan(&taken); err != nil {
				return nil, fmt.Errorf("isolation: %w", err)
			}
			if taken {
				continue
			}
		}
		out = append(out, id)
	}
	return out, nil
}

// sign returns a valid token of tenant expiring at exp.
func (s *suite) sign(tenant tenantseal.TenantID, exp time.Time) (string, error) {
	if s.cfg.Sign != nil {
		return s.cfg.Sign(tenant, subject, exp)
	}
	tok, err := token.Sign(s.cfg.ContextKey.ID, s.cfg.ContextKey.Secret, token.Claims{Tenant: tenant.Handle(), Subject: subject, Expires: exp})
	if err != nil {
		return "", fmt.Errorf("isolation: sign tenant context: %w", err)
	}
	return tok, nil
}

// token returns a valid token of tenant ti for the next minute.
func (s *suite) token(ti int) string {
	tok, err := s.sign(s.tenants[ti], time.Now().Add(time.Minute))
	if err != nil {
		panic(err) // sign worked at setup; it does not start failing for another tenant
	}
	return tok
}

// as runs fn in a transaction on an app-role connection with tok as the tenant context ("" for none).
// The transaction commits when commit is set and fn succeeds; otherwise it rolls back.
func (s *suite) as(ctx context.Context, tok string, commit bool, fn func(tx pgx.Tx) error) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if tok != "" {
		if err := s.enterContext(ctx, tx, tok); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if commit {
		return tx.Commit(ctx)
	}
	return nil
}

// strs runs a query of one text column.
func strs(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var v *string
		err := r.Scan(&v)
		if v == nil {
			return "", err
		}
		return *v, err
	})
	return out, err
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// refused reports whether err is the database refusing: a policy or privilege (42501), an invalid tenant
// context (TS401), or a missing privilege on a function (42883 is not one).
func refused(err error) bool {
	switch sqlState(err) {
	case "42501", db.SQLStateInvalidContext:
		return true
	}
	return false
}

// foreignIn returns which other tenants' markers appear in text, as "T<n>".
func (s *suite) foreignIn(text string, self int) []string {
	var out []string
	for ti, ms := range s.markers {
		if ti == self {
			continue
		}
		for _, m := range ms {
			if containsMarker(text, m) {
				out = append(out, fmt.Sprintf("T%d (%s)", ti, m))
				break
			}
		}
	}
	return out
}

// containsMarker reports whether marker m occurs in text. A number counts only as a whole number: 123
// is not in 41235, nor in 2024-01-23.
func containsMarker(text, m string) bool {
	if !isNumber(m) {
		return strings.Contains(text, m)
	}
	for i := 0; ; {
		j := strings.Index(text[i:], m)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(m)
		if (j == 0 || !numberByte(text[j-1])) && (end == len(text) || !numberByte(text[end])) {
			return true
		}
		i = j + 1
	}
}

func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// numberByte is a byte that would make a number around it another number.
func numberByte(b byte) bool { return b >= '0' && b <= '9' || b == '.' || b == '-' }

// rec collects what one case found for one target.
type rec struct {
	checks int
	leaks  []string
	errs   []string
	notes  []string
	na     string
	// standby: the app role's connection is a hot standby, which refuses every write.
	standby bool
	notRun  []string
}

// notRun records, on a hot standby, a write it refused (SQLSTATE 25006) as a check not run, and says
// whether it did: such a refusal shows nothing about isolation.
func (r *rec) notRunOnStandby(err error, format string, a ...any) bool {
	if !r.standby || sqlState(err) != "25006" {
		return false
	}
	r.notRun = append(r.notRun, fmt.Sprintf(format, a...)+": "+err.Error())
	return true
}

func (r *rec) leakf(format string, a ...any) { r.leaks = append(r.leaks, fmt.Sprintf(format, a...)) }
func (r *rec) errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}
func (r *rec) notef(format string, a ...any) { r.notes = append(r.notes, fmt.Sprintf(format, a...)) }

// expect counts a check and records a leak when ok is false.
func (r *rec) expect(ok bool, format string, a ...any) {
	r.checks++
	if !ok {
		r.leakf(format, a...)
	}
}

// judge counts a check of a statement's outcome: a refusal, or success without leaked, passes; leaked is
// a leak; any other error means the case could not tell.
func (r *rec) judge(err error, leaked bool, format string, a ...any) {
	if err != nil && !refused(err) {
		r.errorf(format+": %v", append(a, err)...)
		return
	}
	r.expect(!leaked, format, a...)
}

// control counts a check that the attack was meaningful (the own row is there, the statement works):
// its failure is an error of the suite's setup, not a leak.
func (r *rec) control(ok bool, format string, a ...any) {
	r.checks++
	if !ok {
		r.errorf("control failed: "+format, a...)
	}
}

// run runs every case with each attacker and fills rep.
func (s *suite) run(ctx context.Context, rep *Report, attackers []int) {
	type key struct{ c, target string }
	recs := map[key]*rec{}
	var order []key
	groups := map[string]string{}
	for _, c := range cases() {
		groups[c.name] = c.group
		for _, atk := range attackers {
			emit := func(target string) *rec {
				k := key{c.name, target}
				if recs[k] == nil {
					recs[k] = &rec{standby: s.standby}
					order = append(order, k)
				}
				return recs[k]
			}
			c.run(ctx, s, atk, emit)
			if ctx.Err() != nil {
				return
			}
		}
	}
	for _, k := range order {
		r := recs[k]
		res := Result{Case: k.c, Group: groups[k.c], Target: k.target, Checks: r.checks, Leaks: dedupe(r.leaks), Errors: dedupe(r.errs), Notes: dedupe(r.notes)}
		if s.standby {
			var notRun []string
			res.Errors, notRun = splitReadOnly(res.Errors)
			res.NotRun = dedupe(append(r.notRun, notRun...))
		}
		if s.cat.citus {
			var notRun []string
			res.Errors, notRun = splitUnsupported(res.Errors)
			res.NotRun = dedupe(append(append(res.NotRun, r.notRun...), notRun...))
		}
		switch {
		case len(r.leaks) > 0:
			res.Status = StatusLeak
		case len(res.Errors) > 0:
			res.Status = StatusError
		case r.na != "" && r.checks == 0:
			res.Status = StatusNA
			res.Notes = append(res.Notes, r.na)
		case len(res.NotRun) > 0 && r.checks == 0 && s.cat.citus:
			res.Status = StatusNA
			res.Notes = append(res.Notes, "Citus does not run these statements (feature not supported): the attack cannot be made this way there")
		case len(res.NotRun) > 0 && r.checks == 0:
			res.Status = StatusNA
			res.Notes = append(res.Notes, "writes as the app role, which a hot standby refuses: run against the primary")
		case r.checks == 0:
			res.Status = StatusError
			res.Errors = append(res.Errors, "no check ran")
		default:
			res.Status = StatusPass
		}
		rep.Results = append(rep.Results, res)
	}
}

// splitReadOnly separates the errors of writes a hot standby refused (SQLSTATE 25006) from the others.
func splitReadOnly(errs []string) (others, readOnly []string) {
	for _, e := range errs {
		if strings.Contains(e, "(SQLSTATE 25006)") {
			readOnly = append(readOnly, e)
		} else {
			others = append(others, e)
		}
	}
	return others, readOnly
}

// splitUnsupported separates, on a Citus coordinator, the errors of statements Citus does not support
// (SQLSTATE 0A000), and those of the statements after one in the same transaction (25P02), from the
// others: such a refusal shows nothing about isolation but that the attack cannot be made that way.
func splitUnsupported(errs []string) (others, unsupported []string) {
	aborted := slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "(SQLSTATE 0A000)") })
	for _, e := range errs {
		if strings.Contains(e, "(SQLSTATE 0A000)") || aborted && strings.Contains(e, "(SQLSTATE 25P02)") {
			unsupported = append(unsupported, e)
		} else {
			others = append(others, e)
		}
	}
	return others, unsupported
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// randomHex returns n random bytes in hex: names and markers that cannot collide with existing data.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
