package migrations_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/internal/token"
)

// TestVerifiersIgnoreShadowingObjects gives the app role what it would need to shadow the names the
// verifiers use (bootstrap revokes TEMP on the database; a clone of the test template grants it):
// tables, functions, an operator and a type of its own in pg_temp, on a search_path that puts them
// first. Neither verifier reads them: a token signed with a planted key stays refused, the planted
// settings allow nothing, and a valid token names its own tenant.
func TestVerifiersIgnoreShadowingObjects(t *testing.T) {
	t.Parallel()
	f := newVerifierFixture(t)
	ctx := testContext(t)
	a, o := f.active.String(), f.other.String()
	soon := time.Now().Add(time.Hour)
	valid := sign(t, f.key, token.Claims{Tenant: f.active.Handle(), Subject: "alice", Expires: soon})
	evil := db.ContextKey{ID: f.key.ID, Secret: []byte(strings.Repeat("e", 32))}
	forged := sign(t, evil, token.Claims{Tenant: f.other.Handle(), Subject: "mallory", Expires: soon})
	ipad, opad := token.Pads(evil.Secret)
	for _, v := range pgtest.Verifiers(t, f.d) {
		f.d.UseVerifier(t, v)
		app := mustConn(t, f.d.AppDSN)
		for _, stmt := range []string{
			"CREATE TEMP TABLE context_keys (kid text, ipad bytea, opad bytea, not_after timestamptz, created_at timestamptz)",
			"CREATE TEMP TABLE tenants (id uuid, name text, status text, created_at timestamptz)",
			"CREATE TEMP TABLE settings (singleton boolean, allow_unsigned boolean)",
			"INSERT INTO pg_temp.settings VALUES (true, true)",
			"INSERT INTO pg_temp.tenants VALUES ('" + o + "', 'x', 'active', now())",
			// Functions and an operator that would accept anything, were they found.
			`CREATE FUNCTION pg_temp.sha256(bytea) RETURNS bytea LANGUAGE sql AS 'SELECT $1'`,
			`CREATE FUNCTION pg_temp.encode(bytea, text) RETURNS text LANGUAGE sql AS 'SELECT ''x'''`,
			`CREATE FUNCTION pg_temp.current_setting(text, boolean) RETURNS text LANGUAGE sql AS 'SELECT ''u1.` + o + `'''`,
			`CREATE FUNCTION pg_temp.texteq_any(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'`,
			"CREATE OPERATOR pg_temp.= (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.texteq_any)",
			"CREATE DOMAIN pg_temp.uuid AS text",
			"SET search_path = pg_temp, public, tenantseal, pg_catalog",
		} {
			if _, err := app.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s verifier: %s: %v", v, stmt, err)
			}
		}
		if _, err := app.Exec(ctx, "INSERT INTO pg_temp.context_keys VALUES ($1, $2, $3, NULL, now())", f.key.ID, ipad, opad); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ name, tok, want string }{
			{"valid", valid, a},
			{"signed with the planted key", forged, "does not verify"},
			{"unsigned, allowed only by the planted settings", token.Unsigned(f.other.Handle()), "unsigned tenant context refused"},
			{"no context, the planted current_setting notwithstanding", "", "NULL"},
		} {
			got := verdict(t, app, tc.tok, false)
			answer := got.Tenant
			if got.TenantErr != "" {
				answer = got.TenantErr
			}
			if !strings.Contains(answer, tc.want) {
				t.Errorf("%s verifier, %s: got %+v, want %q", v, tc.name, got, tc.want)
			}
		}
	}
}
