package migrations_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/internal/token"
	"github.com/tenantseal/tenantseal/internal/uuid"
)

// outcome is what a verifier answers for one token: the tenant current_tenant() returns (or the error
// it raises), elevated()'s answer (or error), and how many customers the policies let the statement see.
type outcome struct {
	Tenant, TenantErr     string
	Elevated, ElevatedErr string
	Rows, RowsErr         string
	Key, KeyErr           string // current_tenant_key()'s: in a uuid database, Tenant's
}

// verdict runs one transaction per question as the app role on conn, with tok as the tenant context.
func verdict(t *testing.T, conn *pgx.Conn, tok string, readOnly bool) outcome {
	t.Helper()
	ask := func(sql string) (string, string) {
		var got *string
		opts := pgx.TxOptions{}
		if readOnly {
			opts.AccessMode = pgx.ReadOnly
		}
		err := pgx.BeginTxFunc(testContext(t), conn, opts, func(tx pgx.Tx) error {
			if _, err := tx.Exec(testContext(t), "SELECT set_config('tenantseal.context', $1, true)", tok); err != nil {
				return err
			}
			return tx.QueryRow(testContext(t), sql).Scan(&got)
		})
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe):
			return "", pe.Code + " " + pe.Message
		case err != nil:
			t.Fatalf("%s: %v", sql, err)
		case got == nil:
			return "NULL", ""
		}
		return *got, ""
	}
	var o outcome
	o.Tenant, o.TenantErr = ask("SELECT tenantseal.current_tenant()::text")
	o.Elevated, o.ElevatedErr = ask("SELECT tenantseal.elevated()::text")
	o.Rows, o.RowsErr = ask("SELECT count(*)::text FROM public.customers")
	o.Key, o.KeyErr = ask("SELECT tenantseal.current_tenant_key()")
	if o.Key != o.Tenant || o.KeyErr != o.TenantErr {
		t.Errorf("token %.40s...: current_tenant_key() = %q %q, current_tenant() = %q %q: want the same answer", tok, o.Key, o.KeyErr, o.Tenant, o.TenantErr)
	}
	return o
}

// verifierFixture is a database with tenants in every state and signing keys in every state.
type verifierFixture struct {
	d                                 *pgtest.Database
	active, other, suspended, deleted tenantseal.TenantID
	key, retiring, retired            db.ContextKey
}

func newVerifierFixture(t *testing.T) *verifierFixture {
	t.Helper()
	d := pgtest.NewDatabase(t)
	f := &verifierFixture{d: d, key: d.ContextKey}
	f.active = mustTenant(t, d, "active")
	f.other = mustTenant(t, d, "other")
	f.suspended = mustTenant(t, d, "suspended")
	f.deleted = mustTenant(t, d, "deleted")
	owner := mustConn(t, d.OwnerDSN)
	mustRun(t, owner, "UPDATE tenantseal.tenants SET status = 'suspended' WHERE id = $1", f.suspended)
	mustRun(t, owner, "UPDATE tenantseal.tenants SET status = 'deleted' WHERE id = $1", f.deleted)
	f.retiring = addKey(t, owner, "retiring", "now() + interval '1 hour'")
	f.retired = addKey(t, owner, "retired", "now() - interval '1 second'")
	// One customer each for the active and the other tenant: the policies must show exactly one.
	super := mustConn(t, d.SuperDSN)
	for _, id := range []tenantseal.TenantID{f.active, f.other} {
		mustRun(t, super, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'c')", id)
	}
	return f
}

// newCFixture is a verifierFixture running the C verifier. A server without the extension fails the
// test: these checks are the C verifier's, and a run that cannot make them must not pass.
func newCFixture(t *testing.T) *verifierFixture {
	t.Helper()
	f := newVerifierFixture(t)
	if pgtest.Verifiers(t, f.d)[0] != db.VerifierC {
		t.Fatalf("the server has no C verifier (extension tenantseal_verify): run the tests on the local image (`make pg-image`)")
	}
	f.d.UseVerifier(t, db.VerifierC)
	return f
}

func mustRun(t testing.TB, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(testContext(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// addKey stores a new signing key named kid with the given not_after expression, as context-key
// rotation does, and returns it.
func addKey(t testing.TB, owner *pgx.Conn, kid, notAfter string) db.ContextKey {
	t.Helper()
	k := db.ContextKey{ID: kid, Secret: make([]byte, 32)}
	rand.Read(k.Secret)
	ipad, opad := token.Pads(k.Secret)
	mustRun(t, owner, "INSERT INTO tenantseal.context_keys (kid, ipad, opad, not_after) VALUES ($1, $2, $3, "+notAfter+")", kid, ipad, opad)
	return k
}

// flip changes the last character of a token, which is part of its signature.
func flip(tok string) string {
	if strings.HasSuffix(tok, "0") {
		return tok[:len(tok)-1] + "1"
	}
	return tok[:len(tok)-1] + "0"
}

func sign(t testing.TB, k db.ContextKey, c token.Claims) string {
	t.Helper()
	tok, err := token.Sign(k.ID, k.Secret, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// craft signs any text as the token's signed part, well formed or not: only the key's holder can.
func craft(k db.ContextKey, fields ...string) string {
	msg := strings.Join(fields, ".")
	m := hmac.New(sha256.New, k.Secret)
	m.Write([]byte(msg))
	return msg + "." + hex.EncodeToString(m.Sum(nil))
}

type verifierCase struct {
	name     string
	tok      string
	readOnly bool
	// want: the tenant current_tenant() returns ("NULL", or a tenant's id), or a substring of its error.
	want string
}

func (f *verifierFixture) cases(t *testing.T) []verifierCase {
	soon := time.Now().Add(time.Hour)
	exp := fmt.Sprint(soon.Unix())
	a, o := f.active.String(), f.other.String()
	valid := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: soon})
	elevated := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: "sam", Expires: soon, Elevated: true})
	wrong := f.key
	wrong.Secret = make([]byte, 32)
	rand.Read(wrong.Secret)
	random := make([]byte, 16)
	rand.Read(random)
	unknown := uuid.Format([16]byte(random))
	return []verifierCase{
		{name: "no context", tok: "", want: "NULL"},
		{name: "valid", tok: valid, want: a},
		{name: "valid in a read-only transaction", tok: valid, readOnly: true, want: a},
		{name: "valid, longest subject", tok: sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: strings.Repeat("s", token.MaxSubjectLen), Expires: soon}), want: a},
		{name: "valid, empty subject", tok: sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Expires: soon}), want: a},
		{name: "valid, other tenant", tok: sign(t, f.key, token.Claims{Tenant: f.other.Handle(), Subject: "bob", Expires: soon}), want: o},
		{name: "signed with a retiring key", tok: sign(t, f.retiring, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: soon}), want: a},
		{name: "signed with a retired key", tok: sign(t, f.retired, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: soon}), want: "unknown or retired key"},
		{name: "unknown key id", tok: sign(t, db.ContextKey{ID: "nokey", Secret: f.key.Secret}, token.Claims{Tenant: f.active.Handle(), Expires: soon}), want: "unknown or retired key"},
		{name: "wrong key", tok: sign(t, wrong, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: soon}), want: "does not verify"},
		{name: "forged signature", tok: flip(valid), want: "does not verify"},
		{name: "altered tenant", tok: strings.Replace(valid, a, o, 1), want: "does not verify"},
		{name: "altered expiry", tok: strings.Replace(valid, exp, fmt.Sprint(soon.Unix()+3600), 1), want: "does not verify"},
		{name: "altered flags", tok: strings.Replace(valid, exp+"..", exp+".e.", 1), want: "does not verify"},
		{name: "truncated", tok: valid[:len(valid)-1], want: "malformed"},
		{name: "signature in capitals", tok: valid[:len(valid)-64] + strings.ToUpper(valid[len(valid)-64:]), want: "malformed"},
		{name: "expired", tok: sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Expires: time.Now().Add(-time.Second)}), want: "expired"},
		{name: "suspended tenant", tok: sign(t, f.key, token.Claims{Tenant: f.suspended.Handle(), Expires: soon}), want: "suspended tenant"},
		{name: "deleted tenant", tok: sign(t, f.key, token.Claims{Tenant: f.deleted.Handle(), Expires: soon}), want: "deleted tenant"},
		{name: "unknown tenant", tok: craft(f.key, "v1", f.key.ID, unknown, exp, "", ""), want: "unknown tenant"},
		{name: "elevation, read-only", tok: elevated, readOnly: true, want: a},
		{name: "elevation, read-write", tok: elevated, want: "reads only"},
		{name: "expired elevation", tok: sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Expires: time.Now().Add(-time.Second), Elevated: true}), readOnly: true, want: "expired"},
		{name: "elevation with a wrong key", tok: sign(t, wrong, token.Claims{Tenant: f.active.Handle(), Expires: soon, Elevated: true}), readOnly: true, want: "does not verify"},
		{name: "elevation of a suspended tenant", tok: sign(t, f.key, token.Claims{Tenant: f.suspended.Handle(), Expires: soon, Elevated: true}), readOnly: true, want: "suspended tenant"},
		{name: "unsigned, unsigned mode off", tok: token.Unsigned(f.active.Handle()), want: "unsigned tenant context refused"},
		{name: "unsigned, capitals", tok: "u1." + strings.ToUpper(a), want: "unsigned tenant context refused"},
		{name: "plain tenant id", tok: a, want: "malformed"},
		{name: "garbage", tok: "'; SELECT 1; --", want: "malformed"},
		{name: "empty fields", tok: "v1......", want: "malformed"},
		{name: "eight fields", tok: valid + ".x", want: "malformed"},
		{name: "not ASCII", tok: strings.Replace(valid, "v1.", "v1é.", 1), want: "malformed"},
		{name: "long", tok: strings.Repeat("v1.", 4000), want: "malformed"},
		// Signed by the key's holder, but not as the signer writes tokens: the verifiers agree on each.
		{name: "crafted: flags in capitals", tok: craft(f.key, "v1", f.key.ID, a, exp, "E", ""), want: a},
		{name: "crafted: subject hex in capitals", tok: craft(f.key, "v1", f.key.ID, a, exp, "", "AB"), want: a},
		{name: "crafted: subject not UTF-8", tok: craft(f.key, "v1", f.key.ID, a, exp, "", "ff"), want: a},
		{name: "crafted: tenant in capitals", tok: craft(f.key, "v1", f.key.ID, strings.ToUpper(a), exp, "", ""), want: "malformed"},
		{name: "crafted: expiry with a sign", tok: craft(f.key, "v1", f.key.ID, a, "+"+exp, "", ""), want: a},
		{name: "crafted: expiry not a number", tok: craft(f.key, "v1", f.key.ID, a, "soon", "", ""), want: "22P02"},
		{name: "crafted: expiry of 13 digits", tok: craft(f.key, "v1", f.key.ID, a, "1"+exp, "", ""), want: a},
	}
}

// TestVerifiersAgree runs every kind of token against both verifiers of one database and requires the
// same answers from each (tenant, elevation, rows seen, the same TS401) and the expected ones.
func TestVerifiersAgree(t *testing.T) {
	t.Parallel()
	f := newVerifierFixture(t)
	verifiers := pgtest.Verifiers(t, f.d)
	cases := f.cases(t)
	owner := mustConn(t, f.d.OwnerDSN)
	unsignedCases := []verifierCase{
		{name: "unsigned", tok: token.Unsigned(f.active.Handle()), want: f.active.String()},
		{name: "unsigned, read-only", tok: token.Unsigned(f.active.Handle()), readOnly: true, want: f.active.String()},
		{name: "unsigned, suspended tenant", tok: token.Unsigned(f.suspended.Handle()), want: "suspended tenant"},
		{name: "unsigned, capitals", tok: "u1." + strings.ToUpper(f.active.String()), want: "malformed"},
		{name: "unsigned, three fields", tok: token.Unsigned(f.active.Handle()) + ".x", want: "malformed"},
		{name: "signed, while unsigned mode is on", tok: cases[1].tok, want: f.active.String()},
	}
	got := map[db.Verifier]map[string]outcome{}
	for _, v := range verifiers {
		f.d.UseVerifier(t, v)
		got[v] = map[string]outcome{}
		app := mustConn(t, f.d.AppDSN)
		run := func(cs []verifierCase) {
			for _, tc := range cs {
				// Twice on the same session: a cached answer must be the first one.
				first := verdict(t, app, tc.tok, tc.readOnly)
				if again := verdict(t, app, tc.tok, tc.readOnly); again != first {
					t.Errorf("%s verifier, %s: asked again, got %+v, want %+v", v, tc.name, again, first)
				}
				got[v][tc.name] = first
				answer := first.Tenant
				if first.TenantErr != "" {
					answer = first.TenantErr
				}
				if !strings.Contains(answer, tc.want) {
					t.Errorf("%s verifier, %s: current_tenant() got %q, want %q", v, tc.name, answer, tc.want)
				}
				if strings.HasPrefix(first.TenantErr, "TS401") && !strings.HasPrefix(first.RowsErr, "TS401") {
					t.Errorf("%s verifier, %s: current_tenant() refused, but a read got %q %q", v, tc.name, first.Rows, first.RowsErr)
				}
			}
		}
		mustRun(t, owner, "UPDATE tenantseal.settings SET allow_unsigned = false")
		run(cases)
		mustRun(t, owner, "UPDATE tenantseal.settings SET allow_unsigned = true")
		run(unsignedCases)
		mustRun(t, owner, "UPDATE tenantseal.settings SET allow_unsigned = false")
	}
	// The policies: a valid token sees its tenant's one customer, an elevation reads it too.
	if o := got[verifiers[0]]["valid"]; o.Rows != "1" || o.Elevated != "false" {
		t.Errorf("valid token: got %+v, want 1 row, not elevated", o)
	}
	if o := got[verifiers[0]]["elevation, read-only"]; o.Rows != "1" || o.Elevated != "true" {
		t.Errorf("elevation: got %+v, want 1 row, elevated", o)
	}
	for _, v := range verifiers[1:] {
		if diff := cmp.Diff(got[verifiers[0]], got[v]); diff != "" {
			t.Errorf("the %s and %s verifiers disagree (-%s +%s):\n%s", verifiers[0], v, verifiers[0], v, diff)
		}
	}
}

// TestVerifiersFollowChangesAtOnce changes keys, tenants and settings while a session of the app role
// goes on using its tokens: each change applies to that session's next statement, on either verifier,
// and nothing cached outlives a token's expiry or a key's not_after.
func TestVerifiersFollowChangesAtOnce(t *testing.T) {
	t.Parallel()
	probe := pgtest.NewDatabase(t)
	for _, v := range pgtest.Verifiers(t, probe) {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			f := newVerifierFixture(t)
			f.d.UseVerifier(t, v)
			owner := mustConn(t, f.d.OwnerDSN)
			app := mustConn(t, f.d.AppDSN)
			a := f.active.String()
			soon := time.Now().Add(time.Hour)
			expect := func(step, tok, want string) {
				t.Helper()
				o := verdict(t, app, tok, false)
				answer := o.Tenant
				if o.TenantErr != "" {
					answer = o.TenantErr
				}
				if !strings.Contains(answer, want) {
					t.Errorf("%s: got %q, want %q", step, answer, want)
				}
			}
			tok := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: soon})
			expect("before any change", tok, a)

			mustRun(t, owner, "UPDATE tenantseal.tenants SET status = 'suspended' WHERE id = $1", f.active)
			expect("tenant suspended", tok, "suspended tenant")
			// A token the verifier has not seen, of a tenant whose status it has (the C verifier's
			// tenant cache): the status is read again after the change.
			fresh := func(subject string) string {
				return sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: subject, Expires: soon})
			}
			expect("tenant suspended, a new token", fresh("bob"), "suspended tenant")
			mustRun(t, owner, "UPDATE tenantseal.tenants SET status = 'active' WHERE id = $1", f.active)
			expect("tenant active again", tok, a)
			expect("tenant active again, a new token", fresh("carol"), a)
			mustRun(t, owner, "UPDATE tenantseal.tenants SET status = 'deleted' WHERE id = $1", f.active)
			expect("tenant deleted, a new token", fresh("dave"), "deleted tenant")
			mustRun(t, owner, "UPDATE tenantseal.tenants SET status = 'active' WHERE id = $1", f.active)
			expect("tenant active once more, a new token", fresh("erin"), a)

			rotated := addKey(t, owner, "rotated", "NULL")
			byRotated := sign(t, rotated, token.Claims{Tenant: f.active.Handle(), Expires: soon})
			expect("new key", byRotated, a)
			mustRun(t, owner, "UPDATE tenantseal.context_keys SET not_after = now() WHERE kid = 'rotated'")
			expect("key retired", byRotated, "unknown or retired key")
			mustRun(t, owner, "UPDATE tenantseal.context_keys SET not_after = NULL WHERE kid = 'rotated'")
			expect("key back", byRotated, a)
			ipad, opad := token.Pads(f.retiring.Secret)
			mustRun(t, owner, "UPDATE tenantseal.context_keys SET ipad = $1, opad = $2 WHERE kid = 'rotated'", ipad, opad)
			expect("key replaced in place", byRotated, "does not verify")
			mustRun(t, owner, "DELETE FROM tenantseal.context_keys WHERE kid = 'rotated'")
			expect("key deleted", byRotated, "unknown or retired key")

			mustRun(t, owner, "UPDATE tenantseal.settings SET allow_unsigned = true")
			expect("unsigned mode on", token.Unsigned(f.active.Handle()), a)
			mustRun(t, owner, "UPDATE tenantseal.settings SET allow_unsigned = false")
			expect("unsigned mode off", token.Unsigned(f.active.Handle()), "unsigned tenant context refused")

			// Time alone: a token and a key that stop being valid in a moment, used before and after.
			until := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
			short := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Expires: until})
			fading := addKey(t, owner, "fading", fmt.Sprintf("to_timestamp(%d)", until.Unix()))
			byFading := sign(t, fading, token.Claims{Tenant: f.active.Handle(), Expires: soon})
			expect("token about to expire", short, a)
			expect("key about to retire", byFading, a)
			time.Sleep(time.Until(until) + 50*time.Millisecond)
			expect("token expired", short, "expired")
			expect("key retired by its not_after", byFading, "unknown or retired key")
		})
	}
}

// TestCVerifierCannotBeSteered tries, as the app role, everything it can write or set that might steer
// the C verifier's caches or its reads: each attempt fails or changes no answer.
func TestCVerifierCannotBeSteered(t *testing.T) {
	t.Parallel()
	f := newCFixture(t)
	ctx := testContext(t)
	a := f.active.String()
	soon := time.Now().Add(time.Hour)
	valid := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: soon})

	t.Run("what the app role may not do", func(t *testing.T) {
		for _, tc := range []struct{ name, sql string }{
			{"read the keys", "SELECT * FROM tenantseal.context_keys"},
			{"plant a key", "INSERT INTO tenantseal.context_keys (kid, ipad, opad) VALUES ('evil', '\\x00', '\\x00')"},
			{"reactivate a tenant", "UPDATE tenantseal.tenants SET status = 'active'"},
			{"turn on unsigned mode", "UPDATE tenantseal.settings SET allow_unsigned = true"},
			{"silence the invalidating trigger", "ALTER TABLE tenantseal.context_keys DISABLE TRIGGER verifier_invalidate"},
			{"silence every trigger", "SET session_replication_role = replica"},
			{"shrink the cache for itself", "ALTER ROLE CURRENT_USER SET tenantseal_verify.token_cache_size = 0"},
			{"shrink the tenant cache for itself", "ALTER ROLE CURRENT_USER SET tenantseal_verify.tenant_cache_size = 0"},
			{"load the library itself", "LOAD 'tenantseal_verify'"},
			{"read the cache's counters", "SELECT * FROM tenantseal.c_verifier_stats()"},
			{"call the plpgsql verifier directly", "SELECT tenantseal.plpgsql_current_tenant()"},
			{"switch the verifier", "SELECT tenantseal.select_verifier('plpgsql')"},
		} {
			app := mustConn(t, f.d.AppDSN)
			if _, err := app.Exec(ctx, tc.sql); sqlState(err) != "42501" && sqlState(err) != "42883" {
				t.Errorf("%s: got %v (SQLSTATE %q), want a permission error", tc.name, err, sqlState(err))
			}
		}
		app := mustConn(t, f.d.AppDSN)
		if _, err := app.Exec(ctx, "SELECT tenantseal.c_invalidate_verifier()"); err == nil {
			t.Error("called the invalidating trigger function directly: succeeded, want a refusal")
		}
	})

	t.Run("settings of the session", func(t *testing.T) {
		// Before the library is loaded in the session, a setting of its prefix is a placeholder; when it
		// loads, a session-level value of a server setting is refused.
		app := mustConn(t, f.d.AppDSN)
		if _, err := app.Exec(ctx, "SET tenantseal_verify.token_cache_size = 0"); err != nil {
			t.Logf("placeholder refused at once: %v", err)
		}
		if o := verdict(t, app, valid, false); o.Tenant != a {
			t.Fatalf("valid token: got %+v, want %s", o, a)
		}
		var size string
		if err := app.QueryRow(ctx, "SELECT current_setting('tenantseal_verify.token_cache_size')").Scan(&size); err != nil || size != "1024" {
			t.Errorf("the cache size after the session set it: got %q (%v), want the server's 1024", size, err)
		}
		for _, stmt := range []string{
			"SET tenantseal_verify.token_cache_size = 0",
			"SET tenantseal_verify.tenant_cache_size = 0",
			"SET tenantseal_verify.cache_owner = 'me'",
		} {
			if _, err := app.Exec(ctx, stmt); err == nil {
				t.Errorf("%s once the library is loaded: succeeded, want a refusal", stmt)
			}
		}
		// Settings the session may change change no answer.
		for _, stmt := range []string{
			"SET search_path = pg_temp, public, tenantseal",
			"SET search_path = ''",
			"SET TimeZone = 'Pacific/Kiritimati'",
			"SET DateStyle = 'SQL, DMY'",
			"SET bytea_output = 'escape'",
			"SET enable_indexscan = off",
		} {
			if _, err := app.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
			if o := verdict(t, app, valid, false); o.Tenant != a || o.Rows != "1" {
				t.Errorf("after %s: got %+v, want %s and its one row", stmt, o, a)
			}
			if o := verdict(t, app, flip(valid), false); !strings.HasPrefix(o.TenantErr, "TS401") {
				t.Errorf("after %s, forged token: got %+v, want TS401", stmt, o)
			}
		}
	})

	t.Run("tokens beside a cached one", func(t *testing.T) {
		// As the app role in a superuser's session, so that the cache's counters can be read between.
		super := mustConn(t, f.d.SuperDSN)
		mustRun(t, super, "SET ROLE "+pgx.Identifier{f.d.Roles.App}.Sanitize())
		stats := func() (hits, verified, delegated int64) {
			t.Helper()
			mustRun(t, super, "RESET ROLE")
			if err := super.QueryRow(ctx, "SELECT hits, verified, delegated FROM tenantseal.c_verifier_stats()").Scan(&hits, &verified, &delegated); err != nil {
				t.Fatal(err)
			}
			mustRun(t, super, "SET ROLE "+pgx.Identifier{f.d.Roles.App}.Sanitize())
			return
		}
		if o := verdict(t, super, valid, false); o.Tenant != a {
			t.Fatalf("valid token: got %+v", o)
		}
		h0, v0, d0 := stats()
		if o := verdict(t, super, valid, false); o.Tenant != a {
			t.Fatalf("valid token again: got %+v", o)
		}
		if h, v, _ := stats(); h <= h0 || v != v0 {
			t.Errorf("valid token again: hits %d -> %d, verified %d -> %d, want a hit and no verification", h0, h, v0, v)
		}
		// Every token that differs from the cached one, however little, is no hit: it is verified anew
		// and refused by the plpgsql verifier.
		for i, forged := range []string{
			flip(valid),
			strings.Replace(valid, a, f.other.String(), 1),
			valid + " ",
			" " + valid,
			strings.ToUpper(valid[:2]) + valid[2:],
		} {
			_, _, before := stats()
			o := verdict(t, super, forged, false)
			if !strings.HasPrefix(o.TenantErr, "TS401") || !strings.HasPrefix(o.RowsErr, "TS401") {
				t.Errorf("forged token %d: got %+v, want TS401", i, o)
			}
			if _, _, after := stats(); after <= before {
				t.Errorf("forged token %d: the plpgsql verifier was not asked (delegated %d -> %d)", i, before, after)
			}
		}
		_, _, d1 := stats()
		if d1 <= d0 {
			t.Errorf("delegated %d -> %d, want the forged tokens handed to the plpgsql verifier", d0, d1)
		}
		// An elevation cached in a read-only transaction is no elevation in a read-write one.
		elevated := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: "sam", Expires: soon, Elevated: true})
		if o := verdict(t, super, elevated, true); o.Tenant != a || o.Elevated != "true" {
			t.Errorf("elevation, read-only: got %+v", o)
		}
		if o := verdict(t, super, elevated, false); !strings.Contains(o.TenantErr, "reads only") {
			t.Errorf("cached elevation, read-write: got %+v, want TS401 reads only", o)
		}
	})
}

// TestCVerifierCachesNothingWithoutItsTriggers: with an invalidating trigger disabled, the C verifier
// cannot learn of changes, so it caches nothing and reads every time.
func TestCVerifierCachesNothingWithoutItsTriggers(t *testing.T) {
	t.Parallel()
	f := newCFixture(t)
	ctx := testContext(t)
	owner := mustConn(t, f.d.OwnerDSN)
	mustRun(t, owner, "ALTER TABLE tenantseal.tenants DISABLE TRIGGER verifier_invalidate")
	super := mustConn(t, f.d.SuperDSN)
	mustRun(t, super, "SET ROLE "+pgx.Identifier{f.d.Roles.App}.Sanitize())
	valid := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: time.Now().Add(time.Hour)})
	for range 2 {
		if o := verdict(t, super, valid, false); o.Tenant != f.active.String() {
			t.Fatalf("valid token: got %+v", o)
		}
	}
	mustRun(t, super, "RESET ROLE")
	var hits int64
	var caching bool
	if err := super.QueryRow(ctx, "SELECT hits, caching FROM tenantseal.c_verifier_stats()").Scan(&hits, &caching); err != nil {
		t.Fatal(err)
	}
	if hits != 0 || caching {
		t.Errorf("with a trigger disabled: got %d hits, caching %v, want none", hits, caching)
	}
	// And a change it was not told of applies at once all the same.
	mustRun(t, owner, "UPDATE tenantseal.tenants SET status = 'suspended' WHERE id = $1", f.active)
	mustRun(t, super, "SET ROLE "+pgx.Identifier{f.d.Roles.App}.Sanitize())
	if o := verdict(t, super, valid, false); !strings.Contains(o.TenantErr, "suspended tenant") {
		t.Errorf("suspended without the trigger: got %+v, want TS401", o)
	}
}

// TestVerifierFollowsTheExtension: without the extension the plpgsql verifier is selected (as on
// managed PostgreSQL), asking for the C one fails, and installing the extension later and selecting
// again brings the C one back, with the same answers.
func TestVerifierFollowsTheExtension(t *testing.T) {
	t.Parallel()
	f := newCFixture(t)
	ctx := testContext(t)
	owner := mustAutoSelect(t, f.d)
	selected := func() string { return mustSelectVerifier(t, owner) }
	valid := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: time.Now().Add(time.Hour)})
	answer := func() outcome { t.Helper(); return verdict(t, mustConn(t, f.d.AppDSN), valid, false) }
	withC := answer()

	f.d.UseVerifier(t, db.VerifierPLpgSQL)
	mustRun(t, owner, "DROP EXTENSION tenantseal_verify")
	if v := selected(); v != "plpgsql" {
		t.Errorf("without the extension: got the %s verifier, want plpgsql", v)
	}
	if _, err := owner.Exec(ctx, "SELECT tenantseal.select_verifier('c')"); sqlState(err) != "58P01" {
		t.Errorf("asking for the C verifier without the extension: got %v, want SQLSTATE 58P01", err)
	}
	if got := answer(); got != withC {
		t.Errorf("plpgsql verifier: got %+v, want %+v", got, withC)
	}
	mustRun(t, owner, "CREATE EXTENSION tenantseal_verify")
	if v := selected(); v != "c" {
		t.Errorf("with the extension installed again: got the %s verifier, want c", v)
	}
	if got := answer(); got != withC {
		t.Errorf("C verifier installed again: got %+v, want %+v", got, withC)
	}
}

// TestCVerifierOfAnotherRoleIsNotUsed: a role with CREATE on the database may install the extension
// itself (it is trusted) and then owns its functions. Its installation is not selected, and its
// functions do not run the owner's plpgsql verifier on its behalf.
func TestCVerifierOfAnotherRoleIsNotUsed(t *testing.T) {
	t.Parallel()
	f := newCFixture(t)
	ctx := testContext(t)
	owner, super := mustAutoSelect(t, f.d), mustConn(t, f.d.SuperDSN)
	f.d.UseVerifier(t, db.VerifierPLpgSQL)
	mustRun(t, owner, "DROP EXTENSION tenantseal_verify")
	intruder := f.d.Name + "_intruder"
	mustRun(t, super, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'pw'", intruder))
	t.Cleanup(func() {
		c := mustConn(t, f.d.SuperDSN)
		c.Exec(testContext(t), fmt.Sprintf("DROP EXTENSION IF EXISTS tenantseal_verify; DROP OWNED BY %[1]s; DROP ROLE %[1]s", intruder))
	})
	mustRun(t, super, fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s; GRANT USAGE, CREATE ON SCHEMA tenantseal TO %s", f.d.Name, intruder, intruder))
	u, err := url.Parse(f.d.AppDSN) // bootstrap writes URLs
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(intruder, "pw")
	in := mustConn(t, u.String())
	mustRun(t, in, "CREATE EXTENSION tenantseal_verify")
	if v := mustSelectVerifier(t, owner); v != "plpgsql" {
		t.Errorf("with the intruder's installation: got the %s verifier, want plpgsql", v)
	}
	if _, err := owner.Exec(ctx, "SELECT tenantseal.select_verifier('c')"); sqlState(err) != "42501" {
		t.Errorf("asking for the intruder's C verifier: got %v, want SQLSTATE 42501", err)
	}
	forged := flip(sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Expires: time.Now().Add(time.Hour)}))
	err = pgx.BeginFunc(ctx, in, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('tenantseal.context', $1, true)", forged); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT tenantseal.c_current_tenant()")
		return err
	})
	if sqlState(err) != "42501" || !strings.Contains(err.Error(), "another role") {
		t.Errorf("the intruder's C verifier on a forged token: got %v, want SQLSTATE 42501 and no plpgsql verifier run", err)
	}
}

// mustAutoSelect connects as d's owner with no preference for a verifier (the database setting
// tenantseal.verifier, which the second pass of make test sets, cleared for the session).
func mustAutoSelect(t *testing.T, d *pgtest.Database) *pgx.Conn {
	t.Helper()
	c := mustConn(t, d.OwnerDSN)
	mustRun(t, c, "SET tenantseal.verifier = ''")
	return c
}

// mustSelectVerifier runs tenantseal.select_verifier() as the owner of conn and returns its choice.
func mustSelectVerifier(t *testing.T, owner *pgx.Conn) string {
	t.Helper()
	var v string
	if err := owner.QueryRow(testContext(t), "SELECT tenantseal.select_verifier()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
