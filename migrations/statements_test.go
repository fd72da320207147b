package migrations_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

// A failing migration's error names the file, the statement and its line (not the whole file), nothing
// of the file stays applied, and once the cause is fixed migrating again completes with no force.
func TestFailingMigrationNamesFileAndStatement(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, dir, table string
		file             string
		line, errorLine  int
		statement        string
		notShown         []string // other statements of the file
		appliedBefore    uint
		leftOut          []string // tables of the failing file
		fix              string
		afterFix         uint
	}{
		{
			name: "position", dir: "testdata/failing", table: "failing_migrations",
			file: "0002_broken.up.sql", line: 12, errorLine: 14,
			statement:     "INSERT INTO failing_second (id) SELECT id FROM failing_missing",
			notShown:      []string{"failing_fn", "failing_third", "a comment", "VALUES (1)"},
			appliedBefore: 1, leftOut: []string{"failing_second", "failing_third"},
			fix: "CREATE TABLE failing_missing (id int)", afterFix: 2,
		},
		{
			name: "inside a DO block", dir: "testdata/failing-in-block", table: "failing_block_migrations",
			file: "0001_block.up.sql", line: 3,
			statement:     "DO $$ BEGIN RAISE EXCEPTION 'failing on purpose'; END $$",
			notShown:      []string{"failing_after", "CREATE TABLE"},
			appliedBefore: 0, leftOut: []string{"failing_block", "failing_after"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := pgtest.NewDatabase(t)
			ctx := testContext(t)
			mg := migrator(t, d, migrations.Options{Source: os.DirFS(tc.dir), Table: tc.table})
			err := mg.Up(ctx)
			var me *migrations.MigrationError
			if !errors.As(err, &me) {
				t.Fatalf("got %v, want a *MigrationError", err)
			}
			if me.File != tc.file || me.Line != tc.line || me.ErrorLine != tc.errorLine || strings.Join(strings.Fields(me.Statement), " ") != tc.statement {
				t.Errorf("got file %q, statement at line %d, error at line %d, statement %q; want %q, %d, %d, %q",
					me.File, me.Line, me.ErrorLine, me.Statement, tc.file, tc.line, tc.errorLine, tc.statement)
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.file) || !strings.Contains(msg, tc.statement) ||
				!strings.Contains(msg, "line "+strconv.Itoa(tc.line)) {
				t.Errorf("got %q, want one line naming %s, line %d and the statement %q", msg, tc.file, tc.line, tc.statement)
			}
			for _, s := range tc.notShown {
				if strings.Contains(msg, s) {
					t.Errorf("got %q, want no other statement of the file (%q)", msg, s)
				}
			}
			if !me.RolledBack || !strings.Contains(msg, "nothing of it was applied") {
				t.Errorf("got RolledBack %v in %q, want the file reported rolled back", me.RolledBack, msg)
			}
			if v, dirty, err := mg.Version(); err != nil || dirty || v != tc.appliedBefore {
				t.Errorf("got version %d dirty=%v (%v), want %d clean", v, dirty, err, tc.appliedBefore)
			}
			owner := mustConn(t, d.OwnerDSN)
			for _, tbl := range tc.leftOut {
				var there bool
				if err := owner.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{"public", tbl}.Sanitize()).Scan(&there); err != nil || there {
					t.Errorf("table %s: got there=%v (%v), want nothing of the failed file", tbl, there, err)
				}
			}
			if tc.fix == "" {
				return
			}
			if _, err := owner.Exec(ctx, tc.fix); err != nil {
				t.Fatal(err)
			}
			if err := mg.Up(ctx); err != nil {
				t.Fatalf("up after the fix: %v", err)
			}
			if v, dirty, err := mg.Version(); err != nil || dirty || v != tc.afterFix {
				t.Errorf("after the fix: got version %d dirty=%v (%v), want %d clean", v, dirty, err, tc.afterFix)
			}
		})
	}
}

// Statements split where PostgreSQL ends them: not at semicolons in literals, quoted identifiers,
// comments or dollar-quoted bodies.
func TestSplitStatements(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []migrations.Statement
		atomic    bool
	}{
		{"plain", "SELECT 1;\nSELECT 2;", []migrations.Statement{{Text: "SELECT 1", Line: 1}, {Text: "SELECT 2", Line: 2}}, true},
		{"no final semicolon", "SELECT 1;\n\n  SELECT 2\n", []migrations.Statement{{Text: "SELECT 1", Line: 1}, {Text: "SELECT 2", Line: 3}}, true},
		{"literal", "SELECT 'a;''b';", []migrations.Statement{{Text: "SELECT 'a;''b'", Line: 1}}, true},
		{"escape string", `SELECT E'a\';b'; SELECT 2;`, []migrations.Statement{{Text: `SELECT E'a\';b'`, Line: 1}, {Text: "SELECT 2", Line: 1}}, true},
		{"identifier", `CREATE TABLE "a;b" (x int);`, []migrations.Statement{{Text: `CREATE TABLE "a;b" (x int)`, Line: 1}}, true},
		{"comments", "-- a; b\n/* c; /* d; */ e; */ SELECT 1; -- f;", []migrations.Statement{{Text: "SELECT 1", Line: 2}}, true},
		{"dollar body", "DO $x$ BEGIN PERFORM 1; END $x$;\nSELECT $$;$$;", []migrations.Statement{{Text: "DO $x$ BEGIN PERFORM 1; END $x$", Line: 1}, {Text: "SELECT $$;$$", Line: 2}}, true},
		{"parameter is no tag", "SELECT $1;SELECT 2;", []migrations.Statement{{Text: "SELECT $1", Line: 1}, {Text: "SELECT 2", Line: 1}}, true},
		{"transaction control", "BEGIN;\nCREATE TABLE x (a int);\nCOMMIT;", []migrations.Statement{{Text: "BEGIN", Line: 1}, {Text: "CREATE TABLE x (a int)", Line: 2}, {Text: "COMMIT", Line: 3}}, false},
		{"empty", "-- nothing\n;;", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := migrations.SplitStatements(tc.src)
			if !cmp.Equal(got, tc.want, cmpopts.EquateEmpty()) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if a := migrations.Atomic(tc.src); a != tc.atomic {
				t.Errorf("got atomic %v, want %v", a, tc.atomic)
			}
		})
	}
}

// FuzzSplitStatements: any input splits into statements that appear in it, in order and trimmed, and
// finding the statement at a position, telling atomicity or eliding literals never panics.
func FuzzSplitStatements(f *testing.F) {
	for _, s := range []string{"SELECT 1; SELECT 2", "DO $$ BEGIN; END $$;", "SELECT 'a;b' -- c;\n;", "/* /* */ ; */ x;", "E'\\'';", "$a$ $b$ ; $a$;"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, src string, pos int) {
		rest := src
		for _, st := range migrations.SplitStatements(src) {
			if st.Text == "" || st.Text != strings.Trim(st.Text, " \t\n\r\f\v") {
				t.Fatalf("got statement %q, want it trimmed and not empty", st.Text)
			}
			i := strings.Index(rest, st.Text)
			if i < 0 {
				t.Fatalf("statement %q is not in the rest of %q", st.Text, src)
			}
			rest = rest[i+len(st.Text):]
		}
		migrations.StatementAt(src, pos)
		migrations.Atomic(src)
		migrations.ElideLiterals(src)
	})
}

// The literals of a statement that names a password never reach an error message.
func TestElideLiterals(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"ALTER ROLE x PASSWORD 's3cret''s'", "ALTER ROLE x PASSWORD '...'"},
		{"SELECT set_config('p', E'a\\'b', false), $q$x$q$, $1", "SELECT set_config('...', E'...', false), $q$...$q$, $1"},
		{"SELECT 1", "SELECT 1"},
	} {
		if got := migrations.ElideLiterals(tc.src); got != tc.want {
			t.Errorf("ElideLiterals(%q): got %q, want %q", tc.src, got, tc.want)
		}
	}
	err := &migrations.MigrationError{File: "0001_roles.up.sql", Line: 3, Statement: "CREATE ROLE r LOGIN PASSWORD 'hunter2'", Err: errors.New("boom")}
	if msg := err.Error(); strings.Contains(msg, "hunter2") || !strings.Contains(msg, "CREATE ROLE r LOGIN PASSWORD '...'") {
		t.Errorf("got %q, want the statement without its password", msg)
	}
}
