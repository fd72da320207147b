package isolation

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal/internal/token"

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

// tokenCase runs the attacks of caseWithToken under every token that make returns.
func tokenCase(make func(ctx context.Context, s *suite, atk int, r *rec) []badToken) func(context.Context, *suite, *table, int, *rec) {
	return func(ctx context.Context, s *suite, t *table, atk int, r *rec) {
		for _, bt := range make(ctx, s, atk, r) {
			for _, set := range setters {
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
	conn, err := s.app.Acquire(ctx)
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
		sql, args := clone(t, s.leaf(t, v), s.tenants[v].String(), nil, nil)
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
		s.underToken(ctx, t, atk, r, reset+" after a valid context", func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('tenantseal.context', $1, true)", s.token(atk)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, reset)
			return err
		})
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
		{"an unsigned token", token.Unsigned(s.tenants[v])},
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
		{"the tenant swapped", swap(2, s.tenants[v].String())},
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
		el, err := token.Sign(s.cfg.ContextKey.ID, s.cfg.ContextKey.Secret, token.Claims{Tenant: s.tenants[atk], Subject: subject, Expires: time.Now().Add(-2 * time.Second), Elevated: true})
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
	claims := token.Claims{Tenant: s.tenants[v], Subject: subject, Expires: time.Now().Add(time.Minute)}
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
		kid := "tsretired-" + randomHex(4)
		if _, err := s.super.Exec(ctx, "INSERT INTO tenantseal.context_keys (kid, ipad, opad, not_after) VALUES ($1, $2, $3, now() - interval '1 second')", kid, ipad, opad); err != nil {
			r.errorf("install a retired key: %v", err)
			return out
		}
		s.retiredKid = kid
		s.retiredSecret = secret
	}
	v := s.victims(atk)[0]
	tok, err := token.Sign(s.retiredKid, s.retiredSecret, token.Claims{Tenant: s.tenants[v], Subject: subject, Expires: time.Now().Add(time.Minute)})
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
					r.expect(refused(err), "%s %s failed otherwise than refused: %v", how, role, err)
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
