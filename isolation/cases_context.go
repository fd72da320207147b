package isolation

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/token"
	"github.com/tenantseal/tenantseal/internal/uuid"

	"github.com/jackc/pgx/v5"
)

// badToken is a tenant context that the database must not honour.
type badToken struct{ name, tok string }

// Ways to put a token into the session: each must be refused alike.
var setters = []struct {
	name string
	sql  func(tok string) (string, []any)
}{
	{"set_config local", func(tok string) (string, []any) {
		return "SELECT set_config('tenantseal.context', $1, true)", []any{tok}
	}},
	{"set_config session", func(tok string) (string, []any) {
		return "SELECT set_config('tenantseal.context', $1, false)", []any{tok}
	}},
	{"SET", func(tok string) (string, []any) {
		return "SET tenantseal.context = '" + strings.ReplaceAll(tok, "'", "''") + "'", nil
	}},
}

// citusSetter is how a Citus coordinator's session hands a token to the workers too.
var citusSetter = struct {
	name string
	sql  func(tok string) (string, []any)
}{"SET LOCAL propagated to the Citus workers", func(tok string) (string, []any) {
	return "SET LOCAL citus.propagate_set_commands TO local; SET LOCAL tenantseal.context = '" + strings.ReplaceAll(tok, "'", "''") + "'", nil
}}

// setters are the ways the suite puts a bad token into a session of this database.
func (s *suite) setters() []struct {
	name string
	sql  func(tok string) (string, []any)
} {
	if s.cat.citus {
		return append(slices.Clone(setters), citusSetter)
	}
	return setters
}

// enterContext sets tok as the tenant context of tx, the way the database's application does: by
// set_config, or on a Citus coordinator by SET LOCAL, which reaches the workers.
func (s *suite) enterContext(ctx context.Context, tx pgx.Tx, tok string) error {
	sql, args := setters[0].sql(tok)
	if s.cat.citus {
		sql, args = citusSetter.sql(tok)
	}
	_, err := tx.Exec(ctx, sql, args...)
	return err
}

// tokenCase runs the attacks of caseWithToken under every token that make returns.
func tokenCase(make func(ctx context.Context, s *suite, atk int, r *rec) []badToken) func(context.Context, *suite, *table, int, *rec) {
	return func(ctx context.Context, s *suite, t *table, atk int, r *rec) {
		for _, bt := range make(ctx, s, atk, r) {
			for _, set := range s.setters() {
				s.underToken(ctx, t, atk, r, bt.name+" via "+set.name, func(tx pgx.Tx) error {
					sql, args := set.sql(bt.tok)
					_, err := tx.Exec(ctx, sql, args...)
					return err
				})
			}
		}
	}
}

// underToken reads and writes t after apply put a bad context (or none) into the transaction: nothing may
// be read, nothing written.
func (s *suite) underToken(ctx context.Context, t *table, atk int, r *rec, what string, apply func(tx pgx.Tx) error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	defer conn.Release()
	// Fresh transactions on one connection: a session-level setting lives on after the transaction that
	// made it only if that transaction commits, and these never do.
	try := func(stmt func(tx pgx.Tx) (string, error)) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			r.errorf("%v", err)
			return
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		if err := apply(tx); err != nil {
			if refused(err) {
				r.checks++
				return
			}
			r.errorf("%s: setting the context failed: %v", what, err)
			return
		}
		leak, err := stmt(tx)
		switch {
		case leak != "":
			r.expect(false, "%s: %s", what, leak)
		case err == nil || refused(err):
			r.checks++
		case r.notRunOnStandby(err, "%s", what):
		default:
			// Failing closed in another way (a NOT NULL tenant column, say) still writes nothing.
			r.checks++
			r.notef("%s: failed with SQLSTATE %s", what, sqlState(err))
		}
	}
	try(func(tx pgx.Tx) (string, error) {
		got, err := strs(ctx, tx, rowText(t))
		if len(got) > 0 {
			return fmt.Sprintf("read %d rows (of %v)", len(got), s.foreignIn(strings.Join(got, "\n"), -1)), nil
		}
		return "", err
	})
	try(func(tx pgx.Tx) (string, error) {
		tag, err := tx.Exec(ctx, fmt.Sprintf("UPDATE %s SET %s", t.qname(), change(t)))
		if err == nil && tag.RowsAffected() > 0 {
			return fmt.Sprintf("updated %d rows", tag.RowsAffected()), nil
		}
		return "", err
	})
	for _, v := range s.victims(atk)[:1] {
		sql, args := s.clone(t, s.leaf(t, v), s.tenants[v].String(), nil, nil)
		try(func(tx pgx.Tx) (string, error) {
			tag, err := tx.Exec(ctx, sql, args...)
			if err == nil {
				return fmt.Sprintf("inserted %d rows for T%d", tag.RowsAffected(), v), nil
			}
			return "", err
		})
	}
}

func caseNoContext(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	s.underToken(ctx, t, atk, r, "no context at all", func(pgx.Tx) error { return nil })
	s.underToken(ctx, t, atk, r, "an empty context", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT set_config('tenantseal.context', '', true)")
		return err
	})
}

func caseReset(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	for _, reset := range []string{"RESET tenantseal.context", "RESET ALL", "SET tenantseal.context TO DEFAULT", "SET LOCAL tenantseal.context TO DEFAULT"} {
		if s.cat.citus && reset == "SET tenantseal.context TO DEFAULT" {
			s.sessionSetOnCitus(ctx, t, atk, r, reset)
			continue
		}
		s.underToken(ctx, t, atk, r, reset+" after a valid context", func(tx pgx.Tx) error {
			if err := s.enterContext(ctx, tx, s.token(atk)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, reset)
			return err
		})
	}
}

// sessionSetOnCitus: Citus sends SET LOCAL, RESET and RESET ALL to the workers, not a session-level
// SET, so after one the workers keep the transaction's context until it ends. That context is the
// attacker's own: no other tenant's row may show, and the own rows that do are noted.
func (s *suite) sessionSetOnCitus(ctx context.Context, t *table, atk int, r *rec, reset string) {
	err := s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, reset); err != nil {
			return err
		}
		got, err := strs(ctx, tx, rowText(t))
		if err != nil {
			return err
		}
		f := s.foreignIn(strings.Join(got, "\n"), atk)
		r.expect(len(f) == 0, "%s after a valid context: read rows of %v", reset, f)
		if len(got) > 0 {
			r.notef("on Citus a session-level %s does not reach the workers, which keep the transaction's own context until it ends: %d own rows read (use RESET or SET LOCAL)", reset, len(got))
		}
		return nil
	})
	if err != nil && !refused(err) {
		r.errorf("%s after a valid context: %v", reset, err)
	}
}

// tokenParts splits a valid token of tenant ti: v1.kid.tenant.expiry.flags.subject.mac
func (s *suite) tokenParts(ti int) []string { return strings.Split(s.token(ti), ".") }

func forgedTokens(_ context.Context, s *suite, atk int, _ *rec) []badToken {
	v := s.victims(atk)[0]
	p := s.tokenParts(atk)
	victim := s.tenants[v].String()
	return []badToken{
		{"a made-up signature", strings.Join([]string{"v1", p[1], victim, "9999999999", "", p[5], strings.Repeat("ab", 32)}, ".")},
		{"a plain tenant id", victim},
		{"an unsigned token", token.Unsigned(s.tenants[v].Handle())},
		{"SQL in the token", "'; SELECT 1; --"},
	}
}

func alteredTokens(_ context.Context, s *suite, atk int, _ *rec) []badToken {
	v := s.victims(atk)[0]
	swap := func(i int, val string) string {
		p := s.tokenParts(atk)
		p[i] = val
		return strings.Join(p, ".")
	}
	p := s.tokenParts(atk)
	return []badToken{
		{"the tenant swapped", swap(2, uuid.Format(s.tenants[v].Handle()))},
		{"the expiry extended", swap(3, fmt.Sprint(time.Now().Add(time.Hour).Unix()))},
		{"the elevation flag added", swap(4, "e"+p[4])},
		{"the signature truncated", s.token(atk)[:len(s.token(atk))-2]},
	}
}

func expiredTokens(_ context.Context, s *suite, atk int, r *rec) []badToken {
	v := s.victims(atk)[0]
	tok, err := s.sign(s.tenants[v], time.Now().Add(-2*time.Second))
	if err != nil {
		r.errorf("%v", err)
		return nil
	}
	out := []badToken{{"expired two seconds ago", tok}}
	if s.cfg.Sign == nil {
		el, err := token.Sign(s.cfg.ContextKey.ID, s.cfg.ContextKey.Secret, token.Claims{Tenant: s.tenants[atk].Handle(), Subject: subject, Expires: time.Now().Add(-2 * time.Second), Elevated: true})
		if err != nil {
			r.errorf("%v", err)
			return nil
		}
		out = append(out, badToken{"an expired elevation", el})
	}
	return out
}

func wrongKeyTokens(_ context.Context, s *suite, atk int, r *rec) []badToken {
	v := s.victims(atk)[0]
	secret := make([]byte, 32)
	rand.Read(secret)
	claims := token.Claims{Tenant: s.tenants[v].Handle(), Subject: subject, Expires: time.Now().Add(time.Minute)}
	kid := s.tokenParts(atk)[1]
	a, err1 := token.Sign(kid, secret, claims)
	b, err2 := token.Sign("tsnokey", secret, claims)
	claims.Elevated = true
	c, err3 := token.Sign(kid, secret, claims)
	if err1 != nil || err2 != nil || err3 != nil {
		r.errorf("sign: %v %v %v", err1, err2, err3)
		return nil
	}
	return []badToken{{"the right key id, another secret", a}, {"an unknown key id", b}, {"an elevation under another secret", c}}
}

// replayedTokens: a token that worked at setup, replayed after its expiry, and a token whose key was
// retired (as by context-key rotate after its overlap).
func replayedTokens(ctx context.Context, s *suite, atk int, r *rec) []badToken {
	if wait := time.Until(s.replayExp.Add(1100 * time.Millisecond)); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
	}
	out := []badToken{{"a captured token after its expiry", s.replay}}
	if !s.cat.ctxKeys {
		r.notef("no tenantseal.context_keys table: the retired-key replay does not apply")
		return out
	}
	if s.retiredKid == "" {
		secret := make([]byte, 32)
		rand.Read(secret)
		ipad, opad := token.Pads(secret)
		kid := "tsretired-" + s.runID
		if _, err := s.super.Exec(ctx, "INSERT INTO tenantseal.context_keys (kid, ipad, opad, not_after) VALUES ($1, $2, $3, now() - interval '1 second')", kid, ipad, opad); err != nil {
			r.errorf("install a retired key: %v", err)
			return out
		}
		s.retiredKid = kid
		s.retiredSecret = secret
	}
	v := s.victims(atk)[0]
	tok, err := token.Sign(s.retiredKid, s.retiredSecret, token.Claims{Tenant: s.tenants[v].Handle(), Subject: subject, Expires: time.Now().Add(time.Minute)})
	if err != nil {
		r.errorf("%v", err)
		return out
	}
	return append(out, badToken{"a token signed with a retired key", tok})
}

// caseSetRole tries to become a role that row-level security does not restrict, or that sees more.
func caseSetRole(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("(session)")
	var owners []string
	for _, t := range s.cat.all() {
		owners = append(owners, t.owner)
	}
	roles, err := strs(ctx, s.super, `SELECT rolname::text FROM pg_roles
		WHERE rolname <> $1 AND rolname !~ '^pg_' AND (rolsuper OR rolbypassrls OR rolname = ANY($2) OR pg_has_role($1, oid, 'MEMBER'))
		ORDER BY 1`, s.appRole, owners)
	if err != nil {
		r.errorf("list roles: %v", err)
		return
	}
	tok := s.token(atk)
	for _, role := range roles {
		for _, how := range []string{"SET ROLE", "SET SESSION AUTHORIZATION", "SET LOCAL ROLE"} {
			_ = s.as(ctx, tok, false, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, how+" "+ident(role))
				if err != nil {
					r.judge(err, false, "%s %s", how, role)
					return nil
				}
				// Allowed (a role the app is a member of): it must see no more than the app does.
				for _, t := range s.cat.all() {
					got, err := strs(ctx, tx, rowText(t))
					f := s.foreignIn(strings.Join(got, "\n"), atk)
					r.expect(len(f) == 0, "after %s %s, %s shows rows of %v", how, role, t, f)
					if err != nil {
						return nil
					}
				}
				return nil
			})
		}
	}
	r.notef("tried %d roles: %s", len(roles), strings.Join(roles, ", "))
}

// caseInactiveTenant: a valid token of a tenant that is suspended, deleted or gone from
// tenantseal.tenants must read and write nothing: the verifier checks the tenant's status, not only the
// signature. The victim's status is changed as the superuser and restored.
func caseInactiveTenant(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	if !s.cat.tenants {
		r.na = "no tenantseal.tenants: no tenant status to enforce"
		return
	}
	v := s.victims(atk)[0]
	tok := s.token(v)
	for _, status := range []string{"suspended", "deleted"} {
		if _, err := s.super.Exec(ctx, "UPDATE tenantseal.tenants SET status = $2 WHERE id = $1", s.tenants[v], status); err != nil {
			r.errorf("set T%d %s: %v", v, status, err)
			return
		}
		s.underToken(ctx, t, v, r, fmt.Sprintf("a valid token of T%d, %s", v, status), func(tx pgx.Tx) error {
			err := s.enterContext(ctx, tx, tok)
			return err
		})
		if _, err := s.super.Exec(ctx, "UPDATE tenantseal.tenants SET status = 'active' WHERE id = $1", s.tenants[v]); err != nil {
			r.errorf("restore T%d: %v", v, err)
			return
		}
		s.verify(ctx, r, v)
	}
}

// caseElevatedToken: an elevation names one tenant, the one of its support case. Its token (signed
// with the context key, as db.Pool.Elevate signs it) must show that tenant's rows only, and write
// nothing, in a read-only transaction and outside one.
func caseElevatedToken(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	if s.cfg.Sign != nil {
		r.na = "Config.Sign is set: the suite cannot sign an elevation"
		return
	}
	tok, err := token.Sign(s.cfg.ContextKey.ID, s.cfg.ContextKey.Secret, token.Claims{Tenant: s.tenants[atk].Handle(), Subject: subject,
		Expires: time.Now().Add(time.Minute), Elevated: true})
	if err != nil {
		r.errorf("%v", err)
		return
	}
	for _, mode := range []string{"BEGIN READ ONLY", "BEGIN"} {
		err := s.inTx(ctx, mode, tok, func(tx pgx.Tx) error {
			got, err := strs(ctx, tx, rowText(t))
			if refused(err) {
				r.checks++
				return nil
			}
			if err != nil {
				return err
			}
			f := s.foreignIn(strings.Join(got, "\n"), atk)
			r.expect(len(f) == 0, "an elevation to T%d (%s) reads rows of %v: it must read only the tenant it names", atk, mode, f)
			return nil
		})
		if err != nil {
			r.errorf("%s: %v", mode, err)
		}
	}
	// Writes under the elevation, outside a read-only transaction: the database must refuse them itself.
	sql, args := s.clone(t, s.leaf(t, atk), s.tenants[atk].String(), nil, nil)
	for _, w := range []struct {
		sql  string
		args []any
	}{{fmt.Sprintf("UPDATE %s SET %s", t.qname(), change(t)), nil}, {sql, args}, {"DELETE FROM " + t.qname(), nil}} {
		err := s.inTx(ctx, "BEGIN", tok, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, w.sql, w.args...)
			switch {
			case err == nil:
				r.expect(tag.RowsAffected() == 0, "under an elevation, outside a read-only transaction, %q wrote %d rows", w.sql, tag.RowsAffected())
			case refused(err):
				r.checks++
			case r.notRunOnStandby(err, "%q under an elevation", w.sql):
			default:
				r.checks++
				r.notef("%q under an elevation failed with SQLSTATE %s", w.sql, sqlState(err))
			}
			return nil
		})
		if err != nil {
			r.errorf("%v", err)
		}
	}
}

// inTx runs fn on an app-role connection in a transaction begun with begin, under tok, and rolls back.
func (s *suite) inTx(ctx context.Context, begin, tok string, fn func(pgx.Tx) error) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: begin})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := s.enterContext(ctx, tx, tok); err != nil {
		return err
	}
	return fn(tx)
}

// pollutions are session-level changes that SQL injected into one request can make, each to be undone
// before the connection serves the next request.
var pollutions = []string{
	"SELECT set_config('row_security', 'off', false)",
	"SET statement_timeout = 1",
	"SET default_transaction_read_only = on",
	"SET search_path = pg_catalog",
	"SET lock_timeout = 1",
	"DO $$ BEGIN PERFORM set_config('row_security', 'off', false); END $$",
}

// casePooledSession: an attacker's request through a db.Pool of one connection changes the session
// for good (SET without LOCAL, set_config(..., false), a session-level tenant context); the next
// request on that connection, another tenant's, must work as on a fresh one, record no refusal, and
// Unscoped() must still read no tenant's rows.
func casePooledSession(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("(session)")
	if s.cfg.Sign != nil {
		r.na = "Config.Sign is set: no db.Pool to test"
		return
	}
	var rec recorded
	pool, err := s.victimPool(ctx, func(c *db.Config) { c.Recorder = &rec })
	if err != nil {
		r.errorf("%v", err)
		return
	}
	defer pool.Close()
	v := s.victims(atk)[0]
	t := s.cat.tables[0]
	attacker, victim := s.principal(ctx, atk), s.principal(ctx, v)
	const settings = "SELECT concat_ws(' ', current_setting('row_security'), current_setting('statement_timeout'), current_setting('default_transaction_read_only'), current_setting('search_path'), current_setting('lock_timeout'), coalesce(current_setting('tenantseal.context', true), ''))"
	fresh, err := strs(ctx, pool.Unscoped(), settings)
	if err != nil || len(fresh) != 1 {
		r.errorf("settings of a fresh session: %v", err)
		return
	}
	ownRows := len(s.rows[t][v])
	for _, p := range append(pollutions, "SELECT set_config('tenantseal.context', '"+s.token(atk)+"', false)") {
		what := p
		if strings.Contains(p, "tenantseal.context") {
			what = "a session-level tenant context of T" + fmt.Sprint(atk)
		}
		if _, err := pool.Exec(attacker, p); err != nil {
			r.notef("%s: refused (%v)", what, sqlState(err))
		}
		rec.reset()
		got, err := strs(ctx, poolQuerier{pool, victim}, rowText(t))
		r.expect(err == nil && len(got) == ownRows, "after %s, the next request of T%d on the connection read %d rows of %s (%v), want its own %d", what, v, len(got), t, err, ownRows)
		where, args := whereRow(t, s.leaf(t, v), 1)
		tag, err := pool.Exec(victim, fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.qname(), change(t), where), args...)
		if !r.notRunOnStandby(err, "after %s, the next update of T%d on the connection", what, v) {
			r.expect(err == nil && tag.RowsAffected() == 1, "after %s, the next update of T%d on the connection changed %d rows (%v), want 1", what, v, tag.RowsAffected(), err)
		}
		err = pool.Tx(victim, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.qname(), change(t), where), args...)
			return err
		})
		if !r.notRunOnStandby(err, "after %s, the next transaction of T%d on the connection", what, v) {
			r.expect(err == nil, "after %s, the next transaction of T%d on the connection failed: %v", what, v, err)
		}
		unscoped, err := strs(ctx, pool.Unscoped(), rowText(t))
		r.expect(err == nil && len(unscoped) == 0, "after %s, Unscoped() read %d rows of %s (%v): it must read none", what, len(unscoped), t, err)
		now, err := strs(ctx, pool.Unscoped(), settings)
		r.expect(err == nil && len(now) == 1 && now[0] == fresh[0], "after %s, the session's settings are %v (%v), a fresh session's %v", what, now, err, fresh)
		r.expect(len(rec.kinds(tenantseal.EventRefusedWrite, tenantseal.EventInvalidContext)) == 0,
			"after %s, the next requests were recorded as attempts: %v", what, rec.kinds(tenantseal.EventRefusedWrite, tenantseal.EventInvalidContext))
		s.verify(ctx, r, v)
	}
}

// poolQuerier runs queries through a db.Pool under a fixed context.
type poolQuerier struct {
	p   *db.Pool
	ctx context.Context
}

func (q poolQuerier) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	return q.p.Query(q.ctx, sql, args...)
}

// recorded is a tenantseal.Recorder that keeps what it receives.
type recorded struct {
	mu     sync.Mutex
	events []tenantseal.Event
}

func (r *recorded) Record(_ context.Context, e tenantseal.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorded) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}

// kinds returns the recorded events of the given kinds, as "kind: detail".
func (r *recorded) kinds(kinds ...tenantseal.EventKind) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if slices.Contains(kinds, e.Kind) {
			out = append(out, string(e.Kind)+": "+cmp.Or(e.Detail, e.Table))
		}
	}
	return out
}

// victimPool opens a db.Pool of one connection as the app role, signing with the suite's context key,
// as an application would.
func (s *suite) victimPool(ctx context.Context, edit ...func(*db.Config)) (*db.Pool, error) {
	cfg, err := db.ParseConfig(s.cfg.AppDSN)
	if err != nil {
		return nil, err
	}
	cfg.SigningKey = s.cfg.ContextKey
	cfg.AllowPlaintextLoopback = s.cfg.AllowPlaintextLoopback
	cfg.PoolConfig.MaxConns = 1
	cfg.RoleCheckInterval = -1
	for _, e := range edit {
		e(cfg)
	}
	pool, err := db.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open a db.Pool as the app role: %w", err)
	}
	return pool, nil
}
