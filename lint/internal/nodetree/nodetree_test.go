package nodetree_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/lint/internal/nodetree"
)

// Trees as PostgreSQL 15 stores them in pg_policy.polqual.
const (
	// tenant_id = (SELECT tenantseal.current_tenant())
	wrappedTree = `{OPEXPR :opno 2972 :opfuncid 2956 :opresulttype 16 :opretset false :opcollid 0 :inputcollid 0 :args ({VAR :varno 1 :varattno 1 :vartype 2950 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location 47} {SUBLINK :subLinkType 4 :subLinkId 0 :testexpr <> :operName <> :subselect {QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs false :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :rtable <> :jointree {FROMEXPR :fromlist <> :quals <>} :targetList ({TARGETENTRY :expr {FUNCEXPR :funcid 16387 :funcresulttype 2950 :funcretset false :funcvariadic false :funcformat 0 :funccollid 0 :inputcollid 0 :args <> :location 67} :resno 1 :resname current_tenant :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false}) :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJoin false :stmt_location 0 :stmt_len 0} :location 59}) :location 57}`
	// tenant_id = tenantseal.current_tenant() OR true AND NOT (note LIKE 'x%')
	boolTree = `{BOOLEXPR :boolop or :args ({OPEXPR :opno 2972 :opfuncid 2956 :opresulttype 16 :opretset false :opcollid 0 :inputcollid 0 :args ({VAR :varno 1 :varattno 1 :vartype 2950 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location 44} {FUNCEXPR :funcid 16387 :funcresulttype 2950 :funcretset false :funcvariadic false :funcformat 0 :funccollid 0 :inputcollid 0 :args <> :location 56}) :location 54} {BOOLEXPR :boolop and :args ({CONST :consttype 16 :consttypmod -1 :constcollid 0 :constlen 1 :constbyval true :constisnull false :location 87 :constvalue 1 [ 1 0 0 0 0 0 0 0 ]} {BOOLEXPR :boolop not :args ({OPEXPR :opno 1209 :opfuncid 850 :opresulttype 16 :opretset false :opcollid 0 :inputcollid 100 :args ({VAR :varno 1 :varattno 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 3 :location 101} {CONST :consttype 25 :consttypmod -1 :constcollid 100 :constlen -1 :constbyval false :constisnull false :location 111 :constvalue 6 [ 24 0 0 0 120 37 ]}) :location 106}) :location 96}) :location 92}) :location 84}`
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		tree      string
		wantType  string
		wantFuncs []string // funcid of every FUNCEXPR, in walk order
		wantInSub []bool   // whether each FUNCEXPR has a SUBLINK ancestor
	}{
		{name: "scalar sub-select", tree: wrappedTree, wantType: "OPEXPR", wantFuncs: []string{"16387"}, wantInSub: []bool{true}},
		{name: "bare call in boolean tree", tree: boolTree, wantType: "BOOLEXPR", wantFuncs: []string{"16387"}, wantInSub: []bool{false}},
		{name: "escaped braces and lists of integers", tree: `{ALIAS :aliasname a\{b\ c :colnames ("x" "y\)") :ints (i 1 2)}`, wantType: "ALIAS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := nodetree.Parse(tc.tree)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if n.Type != tc.wantType {
				t.Errorf("got type %s, want %s", n.Type, tc.wantType)
			}
			var funcs []string
			var inSub []bool
			nodetree.Walk(n, func(n *nodetree.Node, anc []*nodetree.Node) bool {
				if n.Type == "FUNCEXPR" {
					funcs = append(funcs, n.Token("funcid"))
					sub := false
					for _, a := range anc {
						sub = sub || a.Type == "SUBLINK"
					}
					inSub = append(inSub, sub)
				}
				return true
			})
			if diff := cmp.Diff(tc.wantFuncs, funcs); diff != "" {
				t.Errorf("FUNCEXPR funcids (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantInSub, inSub); diff != "" {
				t.Errorf("FUNCEXPR under SUBLINK (-want +got):\n%s", diff)
			}
			again, err := nodetree.Parse(n.String())
			if err != nil {
				t.Fatalf("Parse(String()): %v", err)
			}
			if diff := cmp.Diff(n, again); diff != "" {
				t.Errorf("round trip (-first +second):\n%s", diff)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	t.Parallel()
	n, err := nodetree.Parse(boolTree)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.Token("boolop"), "or"; got != want {
		t.Errorf("boolop: got %q, want %q", got, want)
	}
	args := n.Nodes("args")
	if got, want := len(args), 2; got != want {
		t.Fatalf("args: got %d, want %d", got, want)
	}
	c := args[1].Nodes("args")[0]
	v, _ := c.Get("constvalue")
	if diff := cmp.Diff([]string{"1", "[", "1", "0", "0", "0", "0", "0", "0", "0", "]"}, v.Tokens); diff != "" {
		t.Errorf("constvalue tokens (-want +got):\n%s", diff)
	}
	if got, ok := args[0].Int("opno"); !ok || got != 2972 {
		t.Errorf("opno: got %d %v, want 2972 true", got, ok)
	}
	if !args[0].Nodes("args")[1].IsNull("args") {
		t.Errorf("IsNull(args) of a call without arguments: got false, want true")
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, tree string }{
		{"empty", ""},
		{"not a node", "(1 2)"},
		{"unterminated", "{OPEXPR :opno 1"},
		{"no type", "{:opno 1}"},
		{"value where a field belongs", "{OPEXPR 1}"},
		{"stray close", "{OPEXPR :args (1 })"},
		{"trailing", "{A} {B}"},
		{"too deep", deep(2000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := nodetree.Parse(tc.tree); !errors.Is(err, nodetree.ErrSyntax) {
				t.Errorf("got %v, want ErrSyntax", err)
			}
		})
	}
}

func deep(n int) string {
	s := "{A}"
	for range n {
		s = "{A :x " + s + "}"
	}
	return s
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{wrappedTree, boolTree, `{A :b ("x" (i 1) <> {C})}`, `{A :b \{ :c 1 [ 0 ]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := nodetree.Parse(s)
		if err != nil {
			return
		}
		nodetree.Walk(n, func(*nodetree.Node, []*nodetree.Node) bool { return true })
		again, err := nodetree.Parse(n.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %v, but its String %q does not parse: %v", s, n, n.String(), err)
		}
		if diff := cmp.Diff(n, again); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, diff)
		}
	})
}
