package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

// VerifierEnv names the verifier the databases of the test cluster run, "c" or "plpgsql", when set:
// `make test` runs the packages with the elevation, TS401, rotation and isolation tests again with
// TENANTSEAL_TEST_VERIFIER=plpgsql. Unset, the migrations choose (the C verifier where the server has
// it). It is the database setting tenantseal.verifier, which the migrations honour.
const VerifierEnv = "TENANTSEAL_TEST_VERIFIER"

// verifierSetting returns the statement that makes database name keep the verifier of VerifierEnv, or
// "" when it is unset.
func verifierSetting(name string) string {
	v := os.Getenv(VerifierEnv)
	if v == "" {
		return ""
	}
	return fmt.Sprintf("ALTER DATABASE %s SET tenantseal.verifier = %s", pgx.Identifier{name}.Sanitize(), quoteLiteral(v))
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// selectTemplateVerifier makes the template run the verifier of VerifierEnv, when set.
func selectTemplateVerifier(ctx context.Context, superDSN, ownerDSN, template string) error {
	stmt := verifierSetting(template)
	if stmt == "" {
		return nil
	}
	for _, c := range []struct{ dsn, sql string }{
		{superDSN, stmt},
		{ownerDSN, "SELECT tenantseal.select_verifier()"},
	} {
		conn, err := pgx.Connect(ctx, c.dsn)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		_, err = conn.Exec(ctx, c.sql)
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("pgtest: %s=%s: %w", VerifierEnv, os.Getenv(VerifierEnv), err)
		}
	}
	return nil
}

// Verifiers returns the verifiers of tenant contexts that d can run, the C one first: both where the
// migrations installed the extension tenantseal_verify, only the plpgsql one elsewhere (a server of
// TENANTSEAL_TEST_DSN or an image without it, as on managed PostgreSQL). On the local image, which
// `make pg-image` builds with the extension, a database without it fails t: the image is out of date.
func Verifiers(t testing.TB, d *Database) []db.Verifier {
	t.Helper()
	var installed bool
	if err := Conn(t, d.OwnerDSN).QueryRow(Context(t),
		"SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'tenantseal_verify')").Scan(&installed); err != nil {
		t.Fatal(err)
	}
	if installed {
		return []db.Verifier{db.VerifierC, db.VerifierPLpgSQL}
	}
	if SharedCluster(t).Server.Image == LocalImage {
		t.Fatalf("pgtest: %s has no extension tenantseal_verify: rebuild it with `make pg-image`", LocalImage)
	}
	t.Logf("pgtest: the server has no extension tenantseal_verify: only the plpgsql verifier is tested")
	return []db.Verifier{db.VerifierPLpgSQL}
}

// UseVerifier makes d verify tenant contexts with v, as its owner running tenantseal.select_verifier.
func (d *Database) UseVerifier(t testing.TB, v db.Verifier) {
	t.Helper()
	var got string
	if err := Conn(t, d.OwnerDSN).QueryRow(Context(t), "SELECT tenantseal.select_verifier($1)", string(v)).Scan(&got); err != nil {
		t.Fatalf("pgtest: select the %s verifier: %v", v, err)
	}
	if db.Verifier(got) != v {
		t.Fatalf("pgtest: got the %s verifier, want %s", got, v)
	}
}
