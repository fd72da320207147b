package lint_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tenantseal/tenantseal/lint"
)

// sarifSchema compiles the OASIS SARIF 2.1.0 schema (testdata/sarif-schema-2.1.0.json, errata 01),
// with format assertions: helpUri must be an absolute URI, as the standard says.
func sarifSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("sarif-schema-2.1.0.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWriteSARIF(t *testing.T) {
	t.Parallel()
	schema := sarifSchema(t)
	for _, tc := range []struct {
		name string
		in   []lint.Finding
		opts lint.SARIFOptions
	}{
		{"none", nil, lint.SARIFOptions{}},
		{"two", sample, lint.SARIFOptions{Version: "v1.2.3"}},
		{"attached to an artifact, documented elsewhere", sample, lint.SARIFOptions{Artifact: "migrations/", DocBase: "https://example.com/tenantseal/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := lint.WriteSARIF(&b, tc.in, tc.opts); err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b.Bytes()))
			if err != nil {
				t.Fatalf("output is not JSON: %v", err)
			}
			if err := schema.Validate(inst); err != nil {
				t.Fatalf("output does not validate against SARIF 2.1.0: %v\n%s", err, b.String())
			}
			var log struct {
				Runs []struct {
					Tool struct {
						Driver struct {
							Rules []struct {
								ID      string
								HelpURI string `json:"helpUri"`
							}
						}
					}
					Results []struct {
						RuleID              string
						RuleIndex           int
						PartialFingerprints map[string]string
						Locations           []struct {
							PhysicalLocation *struct{ ArtifactLocation struct{ URI string } }
						}
					}
				}
			}
			if err := json.Unmarshal(b.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			run := log.Runs[0]
			rules := lint.Rules()
			if len(run.Tool.Driver.Rules) != len(rules) {
				t.Fatalf("got %d rules, want %d", len(run.Tool.Driver.Rules), len(rules))
			}
			base := tc.opts.DocBase
			if base == "" {
				base = lint.DefaultDocBase
			}
			for i, r := range run.Tool.Driver.Rules {
				if want := base + rules[i].DocPath(); r.HelpURI != want {
					t.Errorf("rule %s: got helpUri %q, want %q", r.ID, r.HelpURI, want)
				}
			}
			if len(run.Results) != len(tc.in) {
				t.Fatalf("got %d results, want %d", len(run.Results), len(tc.in))
			}
			for i, res := range run.Results {
				if res.RuleID != tc.in[i].Rule || run.Tool.Driver.Rules[res.RuleIndex].ID != res.RuleID {
					t.Errorf("result %d: got rule %s at index %d, want %s", i, res.RuleID, res.RuleIndex, tc.in[i].Rule)
				}
				if res.PartialFingerprints["tenantsealFinding/v1"] == "" {
					t.Errorf("result %d has no fingerprint", i)
				}
				if got := res.Locations[0].PhysicalLocation != nil; got != (tc.opts.Artifact != "") {
					t.Errorf("result %d: physical location %v, want %v", i, got, tc.opts.Artifact != "")
				}
			}
		})
	}
	// The schema is asserted, not decoration: a relative helpUri is no absolute URI and fails.
	var b bytes.Buffer
	if err := lint.WriteSARIF(&b, sample, lint.SARIFOptions{DocBase: "../"}); err != nil {
		t.Fatal(err)
	}
	if inst, err := jsonschema.UnmarshalJSON(&b); err != nil || schema.Validate(inst) == nil {
		t.Errorf("a relative helpUri: got valid (%v), want a validation error", err)
	}
	if err := lint.WriteSARIF(&bytes.Buffer{}, []lint.Finding{{Rule: "TS999"}}, lint.SARIFOptions{}); err == nil {
		t.Errorf("a finding of an unknown rule: got nil, want an error")
	}
}
