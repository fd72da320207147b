package lint

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// evalCatalog knows the operators and functions of testdata/policytrees.txt.
func evalCatalog() *catalog {
	return &catalog{
		elevated: 16423,
		ops: map[uint32]opInfo{
			98:   {name: "=(text, text)", op: "=", code: 67},
			2972: {name: "=(uuid, uuid)", op: "=", code: 2956},
			2973: {name: "<>(uuid, uuid)", op: "<>", code: 2959},
		},
		funcs: map[uint32]funcInfo{67: {leakproof: true}, 2956: {leakproof: true}, 2959: {leakproof: true}},
	}
}

func policyTrees(t testing.TB) map[string]*nodetree.Node {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "policytrees.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	trees := map[string]*nodetree.Node{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, tree, ok := strings.Cut(sc.Text(), "\t")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		n, err := nodetree.Parse(tree)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		trees[name] = n
	}
	return trees
}

func TestAdmits(t *testing.T) {
	t.Parallel()
	c := evalCatalog()
	verifiers := map[uint32]bool{16422: true}
	trees := policyTrees(t)
	for _, tc := range []struct {
		name string
		// whether the policy admits a forbidden row: read on a NOT NULL column, read on a nullable one,
		// write on a NOT NULL column
		notNull, nullable, write bool
		indexable                bool
	}{
		{"eq", false, false, false, true},
		{"coal", true, true, true, false},
		{"ne", true, true, true, false},
		{"ortrue", true, true, true, false},
		{"notdist", false, true, false, false},
		{"anyarr", false, false, false, true},
		{"elev", false, false, true, false},
		{"castp", false, false, false, false},
		{"caseok", false, false, false, false},
		{"exist", true, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := trees[tc.name]
			if e == nil {
				t.Fatalf("no tree %s", tc.name)
			}
			for _, p := range []struct {
				what            string
				nullable, write bool
				want            bool
			}{{"read, NOT NULL", false, false, tc.notNull}, {"read, nullable", true, false, tc.nullable}, {"write, NOT NULL", false, true, tc.write}} {
				l, got := c.admits([]*nodetree.Node{e}, 1, verifiers, p.nullable, p.write)
				if got != p.want {
					t.Errorf("%s: got leak %v (%s), want %v", p.what, got, l.what, p.want)
				}
			}
			if got := c.hasIndexCondition(e, 1); got != tc.indexable {
				t.Errorf("index condition: got %v, want %v", got, tc.indexable)
			}
		})
	}
	// A restrictive tenant policy beside confines a permissive "true".
	yes := &nodetree.Node{Type: "CONST", Fields: []nodetree.Field{
		{Name: "consttype", Value: nodetree.Value{Tokens: []string{"16"}}},
		{Name: "constisnull", Value: nodetree.Value{Tokens: []string{"false"}}},
		{Name: "constvalue", Value: nodetree.Value{Tokens: []string{"1", "[", "1", "0", "0", "0", "0", "0", "0", "0", "]"}}}}}
	if _, leaks := c.admits([]*nodetree.Node{yes}, 1, verifiers, false, false); !leaks {
		t.Errorf("true alone: got no leak, want one")
	}
	if l, leaks := c.admits([]*nodetree.Node{yes, trees["eq"]}, 1, verifiers, false, false); leaks {
		t.Errorf("true AND the tenant comparison: got leak %q, want none", l.what)
	}
}

// FuzzAdmits evaluates arbitrary node trees: the evaluator must never panic, whatever the catalog holds.
func FuzzAdmits(f *testing.F) {
	for _, n := range policyTrees(f) {
		f.Add(n.String())
	}
	c := evalCatalog()
	verifiers := map[uint32]bool{16422: true}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := nodetree.Parse(s)
		if err != nil {
			return
		}
		for _, nullable := range []bool{false, true} {
			c.admits([]*nodetree.Node{n}, 1, verifiers, nullable, true)
		}
		c.hasIndexCondition(n, 1)
		refsRow(n)
	})
}

func TestUnsafeDynamicSQL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ src, want string }{
		{"BEGIN EXECUTE 'SELECT count(*) FROM ' || tbl INTO n; END", "'SELECT count(*) FROM ' || tbl"},
		{"BEGIN EXECUTE format('SELECT 1 FROM %s', tbl) INTO n USING x; END", "format('SELECT 1 FROM %s', tbl)"},
		{"BEGIN EXECUTE format('INSERT INTO %I VALUES ($1)', tbl) USING x; END", ""},
		{"BEGIN EXECUTE 'SELECT ' || quote_literal(x) || ' FROM t'; END", ""},
		{"BEGIN EXECUTE format('CREATE TRIGGER t AFTER INSERT ON %I EXECUTE FUNCTION f()', tbl); END", ""},
		{"BEGIN -- EXECUTE 'x' || y;\n RETURN 1; END", ""},
		{"BEGIN PERFORM 'EXECUTE ' || y; END", ""},
		{"CREATE TRIGGER t AFTER INSERT ON x EXECUTE FUNCTION f()", ""},
	} {
		if got := unsafeDynamicSQL(tc.src); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.src, got, tc.want)
		}
	}
}

func TestMentions(t *testing.T) {
	t.Parallel()
	notes := &table{schema: "public", relname: "notes"}
	for _, tc := range []struct {
		body string
		want bool
	}{
		{"select * from public.notes", true},
		{"select * from notes where", true},
		{`select * from "public"."notes"`, true},
		{"select * from other.notes", false},
		{"select * from public.notes_archive", false},
		{"select note_count from x", false},
	} {
		if got := mentions(tc.body, notes); got != tc.want {
			t.Errorf("%q: got %v, want %v", tc.body, got, tc.want)
		}
	}
}
