package bootstrap_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// ownership describes who owns a database and its schema public and who may do what on them.
type ownership struct {
	DatabaseOwner, PublicOwner string
	DatabaseACL, PublicACL     []string // grantee:privilege:grantor, PUBLIC for everyone
}

const aclEntries = `SELECT coalesce(array_agg(coalesce(nullif(a.grantee, 0)::regrole::text, 'PUBLIC') || ':' || a.privilege_type || ':' || a.grantor::regrole::text
	ORDER BY 1), '{}') FROM aclexplode($1::aclitem[]) a`

func mustOwnership(t testing.TB, database string) ownership {
	t.Helper()
	ctx := testContext(t)
	in := mustConn(t, pgtest.WithDatabase(superDSN(t), database))
	var o ownership
	var datacl, nspacl string
	if err := in.QueryRow(ctx, `SELECT d.datdba::regrole::text, coalesce(d.datacl, acldefault('d', d.datdba))::text,
			n.nspowner::regrole::text, coalesce(n.nspacl, acldefault('n', n.nspowner))::text
		FROM pg_database d, pg_namespace n WHERE d.datname = current_database() AND n.nspname = 'public'`).
		Scan(&o.DatabaseOwner, &datacl, &o.PublicOwner, &nspacl); err != nil {
		t.Fatal(err)
	}
	if err := in.QueryRow(ctx, aclEntries, datacl).Scan(&o.DatabaseACL); err != nil {
		t.Fatal(err)
	}
	if err := in.QueryRow(ctx, aclEntries, nspacl).Scan(&o.PublicACL); err != nil {
		t.Fatal(err)
	}
	return o
}

// A database that exists keeps its owner, its schema public's owner and every privilege on both:
// bootstrap only adds the privileges of its own roles there, and warns of what PUBLIC may do. With
// TakeOwnership it is handed to the owner role and secured as one that bootstrap creates.
func TestExistingDatabaseIsLeftAlone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// publicCreate: PUBLIC may create in schema public, as in a database made before PostgreSQL 15.
		publicCreate bool
		warnings     []string
	}{
		{"PUBLIC may create in public", true, []string{"create objects in schema public", "create temporary tables"}},
		{"only its owner and a reader may create in public", false, []string{"create temporary tables"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			existingDatabase(t, tc.publicCreate, tc.warnings)
		})
	}
}

func existingDatabase(t *testing.T, publicCreate bool, warnings []string) {
	other, reader := freshRole(t, "other"), freshRole(t, "reader")
	mustRole(t, other, "NOLOGIN", "")
	mustRole(t, reader, "NOLOGIN", "")
	prefix, database := freshNames(t)
	ctx := testContext(t)
	super := mustConn(t, superDSN(t))
	mustExec(t, super, "CREATE DATABASE "+database+" OWNER "+other)
	mustExec(t, super, "GRANT CONNECT, TEMPORARY ON DATABASE "+database+" TO "+reader)
	in := mustConn(t, pgtest.WithDatabase(superDSN(t), database))
	mustExec(t, in, "ALTER SCHEMA public OWNER TO "+other+"; GRANT USAGE, CREATE ON SCHEMA public TO "+reader)
	if publicCreate {
		mustExec(t, in, "GRANT CREATE ON SCHEMA public TO PUBLIC")
	}
	before := mustOwnership(t, database)

	opts := bootstrap.Options{Database: database, RolePrefix: prefix}
	res, err := bootstrap.Run(ctx, superDSN(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	after := mustOwnership(t, database)
	if before.DatabaseOwner != after.DatabaseOwner || before.PublicOwner != after.PublicOwner || !cmp.Equal(before.PublicACL, after.PublicACL) {
		t.Errorf("got owners %s, %s and public ACL %q, want them unchanged: %s, %s, %q",
			after.DatabaseOwner, after.PublicOwner, after.PublicACL, before.DatabaseOwner, before.PublicOwner, before.PublicACL)
	}
	roles := db.Roles(prefix)
	for _, e := range before.DatabaseACL {
		if !slices.Contains(after.DatabaseACL, e) {
			t.Errorf("database privilege %s is gone, want every one kept", e)
		}
	}
	for _, e := range after.DatabaseACL {
		grantee := strings.Split(e, ":")[0]
		if !slices.Contains(before.DatabaseACL, e) && !slices.Contains([]string{roles.Owner, roles.App, roles.Auditor, roles.AuditWriter}, grantee) {
			t.Errorf("database privilege %s is new, want only tenantseal's roles given any", e)
		}
	}
	var got []string
	for _, w := range res.Warnings {
		for _, want := range []string{"create objects in schema public", "create temporary tables"} {
			if strings.Contains(w, want) {
				got = append(got, want)
			}
		}
	}
	if !cmp.Equal(got, warnings) {
		t.Errorf("got warnings %q, want exactly ones saying every role may %q", res.Warnings, warnings)
	}
	mustSmoke(t, res)

	t.Run("with TakeOwnership", func(t *testing.T) {
		opts := opts
		opts.TakeOwnership = true
		opts.Passwords = passwordsOf(t, res)
		opts.ContextKey = &res.ContextKey
		taken, err := bootstrap.Run(ctx, superDSN(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		got := mustOwnership(t, database)
		if got.DatabaseOwner != roles.Owner || got.PublicOwner != roles.Owner {
			t.Errorf("got owners %s, %s, want %s of both", got.DatabaseOwner, got.PublicOwner, roles.Owner)
		}
		for _, e := range append(got.DatabaseACL, got.PublicACL...) {
			if strings.HasPrefix(e, "PUBLIC:") && !strings.HasPrefix(e, "PUBLIC:USAGE:") {
				t.Errorf("got %s, want PUBLIC left no privilege but USAGE on public", e)
			}
		}
		if want := "made " + roles.Owner + " the owner of database " + database; !slices.Contains(taken.Actions, want) {
			t.Errorf("got actions %q, want %q", taken.Actions, want)
		}
		if len(taken.Warnings) != 0 {
			t.Errorf("got warnings %q, want none", taken.Warnings)
		}
	})
}
