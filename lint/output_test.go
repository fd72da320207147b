package lint_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/lint"
)

var sample = []lint.Finding{
	{Rule: "TS002", Severity: lint.SeverityError, Object: "public.invoices",
		Message: "row-level security is enabled but not forced", Fix: "ALTER TABLE public.invoices FORCE ROW LEVEL SECURITY"},
	{Rule: "TS006", Severity: lint.SeverityWarning, Object: `"Odd name" on public.invoices`,
		Message: "calls tenantseal.current_tenant() outside a sub-select \"quoted\" <b>", Fix: ""},
}

func TestWriteText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []lint.Finding
		want string
	}{
		{"none", nil, "no findings\n"},
		{"one", sample[:1], `TS002 error public.invoices: row-level security is enabled but not forced
	fix: ALTER TABLE public.invoices FORCE ROW LEVEL SECURITY
1 finding: 1 error, 0 warnings
`},
		{"two, one without fix", sample, `TS002 error public.invoices: row-level security is enabled but not forced
	fix: ALTER TABLE public.invoices FORCE ROW LEVEL SECURITY
TS006 warning "Odd name" on public.invoices: calls tenantseal.current_tenant() outside a sub-select "quoted" <b>
2 findings: 1 error, 1 warning
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := lint.WriteText(&b, tc.in); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("WriteText (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []lint.Finding
		want []lint.Finding
	}{
		{"none is an empty array", nil, []lint.Finding{}},
		{"round trip", sample, sample},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := lint.WriteJSON(&b, tc.in); err != nil {
				t.Fatal(err)
			}
			var got []lint.Finding
			if err := json.Unmarshal(b.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, b.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	// The keys are part of the CLI's contract.
	var b bytes.Buffer
	if err := lint.WriteJSON(&b, sample[:1]); err != nil {
		t.Fatal(err)
	}
	var raw []map[string]string
	if err := json.Unmarshal(b.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"rule": "TS002", "severity": "error", "object": "public.invoices",
		"message": sample[0].Message, "fix": sample[0].Fix}
	if diff := cmp.Diff(want, raw[0]); diff != "" {
		t.Errorf("JSON keys (-want +got):\n%s", diff)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	if err := lint.WriteText(failingWriter{}, sample); err == nil {
		t.Errorf("WriteText to a failing writer: got nil, want an error")
	}
	if err := lint.WriteJSON(failingWriter{}, sample); err == nil {
		t.Errorf("WriteJSON to a failing writer: got nil, want an error")
	}
}

func TestHasErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []lint.Finding
		want bool
	}{
		{"none", nil, false},
		{"warning only", sample[1:], false},
		{"error and warning", sample, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := lint.HasErrors(tc.in); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
