package lint_test

import (
	"cmp"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/lint"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testContext(t testing.TB) context.Context { return pgtest.Context(t) }

func mustConn(t testing.TB, dsn string) *pgx.Conn { return pgtest.Conn(t, dsn) }

func mustExec(t testing.TB, c *pgx.Conn, sql string) {
	t.Helper()
	if _, err := c.Exec(testContext(t), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// mustFixture runs the SQL file path as the superuser, with {{app}} and {{owner}} replaced by the
// database's role names.
func mustFixture(t testing.TB, d *pgtest.Database, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sql := strings.NewReplacer(
		"{{app}}", pgx.Identifier{d.Roles.App}.Sanitize(),
		"{{owner}}", pgx.Identifier{d.Roles.Owner}.Sanitize(),
	).Replace(string(b))
	mustExec(t, mustConn(t, d.SuperDSN), sql)
}

func options(d *pgtest.Database) lint.Options {
	return lint.Options{AppRole: d.Roles.App, OwnerRole: d.Roles.Owner}
}

// fixtureOptions applies the "-- lint: <option> <value>" lines of a fixture to opts: global-table,
// tenant-function, tenant-column, registry and schema, as the CLI's flags of those names.
func fixtureOptions(t testing.TB, path string, opts lint.Options) lint.Options {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "-- lint: ")
		if !ok {
			continue
		}
		key, value, _ := strings.Cut(strings.TrimSpace(rest), " ")
		switch key {
		case "global-table":
			opts.GlobalTables = append(opts.GlobalTables, value)
		case "tenant-function":
			opts.TenantFunction = value
		case "tenant-column":
			opts.TenantColumn = value
		case "registry":
			opts.Registry = value
		case "schema":
			opts.Schemas = append(opts.Schemas, value)
		default:
			t.Fatalf("%s: unknown option %q", path, key)
		}
	}
	return opts
}

// mustRun lints through a new connection to dsn and checks that the findings come sorted.
func mustRun(t testing.TB, dsn string, opts lint.Options) []lint.Finding {
	t.Helper()
	fs, err := lint.Run(testContext(t), mustConn(t, dsn), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sorted := slices.IsSortedFunc(fs, func(a, b lint.Finding) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Object, b.Object), cmp.Compare(a.Message, b.Message))
	})
	if !sorted {
		t.Errorf("findings are not sorted by rule, object, message:\n%s", text(fs))
	}
	return fs
}

// ruleIDs returns the distinct rule ids of fs, sorted; never nil, so that cmp.Diff compares it with a
// literal.
func ruleIDs(fs []lint.Finding) []string {
	ids := []string{}
	for _, f := range fs {
		ids = append(ids, f.Rule)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func text(fs []lint.Finding) string {
	var b strings.Builder
	if err := lint.WriteText(&b, fs); err != nil {
		return err.Error()
	}
	return b.String()
}

// shippedFindings lints d before a fixture is applied, with the fixture's options when they name only
// what exists already, else with the defaults.
func shippedFindings(t testing.TB, d *pgtest.Database, opts lint.Options) []lint.Finding {
	t.Helper()
	fs, err := lint.Run(testContext(t), mustConn(t, d.OwnerDSN), opts)
	if errors.Is(err, lint.ErrOptions) {
		return mustRun(t, d.OwnerDSN, options(d))
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return fs
}
