package bench

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func sampleReport() *Report {
	rep := &Report{When: time.Unix(0, 0), Results: []Result{
		{Variant: 1, Name: "baseline", Clients: 1, Throughput: 1000, Ratio: 1, Against: 1},
		{Variant: 5, Name: "signed <ctx>", Clients: 1, Throughput: 700, Ratio: 0.7, Against: 1},
		{Variant: 4, Name: "unsigned", Clients: 1, Throughput: 800, Ratio: 0.8, Against: 1},
		{Variant: 1, Name: "baseline", Clients: 8, Throughput: 3000, Ratio: 1, Against: 1},
		{Variant: 5, Name: "signed <ctx>", Clients: 8, Throughput: 2850, Ratio: 0.95, Against: 1},
		{Variant: 4, Name: "unsigned", Clients: 8, Throughput: 2900, Ratio: 0.97, Against: 1},
	}}
	rep.Targets = targets(rep, Config{Clients: []int{1, 8}})
	return rep
}

func TestTargetsSayWhatWasMissed(t *testing.T) {
	rep := sampleReport()
	want := map[string]bool{
		"signed point read, C verifier (5) >= 0.90 of raw pgx (1) at 1 clients": false,
		"signed (5) within 3% of unsigned (4), C verifier, at 1 clients":        false,
		"signed point read, C verifier (5) >= 0.90 of raw pgx (1) at 8 clients": true,
		"signed (5) within 3% of unsigned (4), C verifier, at 8 clients":        true,
	}
	for _, tg := range rep.Targets {
		if met, ok := want[tg.Goal]; !ok || met != tg.Met || (!tg.Met && tg.Reason == "") {
			t.Errorf("target %+v, want met=%v and a reason when missed", tg, met)
		}
	}
	md := Markdown(rep)
	if !strings.Contains(md, "| signed point read, C verifier (5) >= 0.90 of raw pgx (1) at 1 clients | 0.70 | **no**:") {
		t.Errorf("the Markdown does not say plainly that a target was missed:\n%s", md)
	}
}

func TestChartIsWellFormedSVG(t *testing.T) {
	svg := Chart(sampleReport())
	d := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// Two legend swatches and one bar per variant and client count.
	if rects != 2+6 {
		t.Errorf("got %d rects, want 8", rects)
	}
	if !strings.Contains(svg, "signed &lt;ctx&gt;") {
		t.Error("variant names are not escaped")
	}
}

func TestPgbenchOutputParses(t *testing.T) {
	out := `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: multiple scripts
scaling factor: 1
number of clients: 8
latency average = 0.512 ms
initial connection time = 12.345 ms
tps = 15623.456789 (without initial connection time)
`
	if m := tpsLine.FindStringSubmatch(out); m == nil || m[1] != "15623.456789" {
		t.Errorf("tps: got %q", m)
	}
	if m := latencyLine.FindStringSubmatch(out); m == nil || m[1] != "0.512" {
		t.Errorf("latency: got %q", m)
	}
}

func TestServerOnlyVariantsCompareWithTheRawRead(t *testing.T) {
	for id, want := range map[int]int{101: 101, 105: 101, 115: 101, 125: 101, 5: 1, 51: 1, 7: 71, 95: 91} {
		if got := against(id); got != want {
			t.Errorf("against(%d) = %d, want %d", id, got, want)
		}
	}
	for id, want := range map[int]string{51: "5p", 101: "S1", 105: "S5", 106: "S5r", 115: "S5p", 125: "S5n", 71: "7b"} {
		if got := label(id); got != want {
			t.Errorf("label(%d) = %q, want %q", id, got, want)
		}
	}
}

func TestScriptsPipelineTheContext(t *testing.T) {
	p := pair{tenant: "t", customer: "c", token: "v1.k.t.1..00.ab"}
	got := scriptLibrary(p)
	want := "\\startpipeline\nSELECT set_config('tenantseal.context', 'v1.k.t.1..00.ab', true);\n" +
		"SELECT " + pointCols + " FROM customers WHERE tenant_id = 't' AND id = 'c';\nRESET ALL;\n\\endpipeline\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := scriptRaw(p); strings.Contains(got, "pipeline") || !strings.Contains(got, "customers_plain") {
		t.Errorf("raw script: %s", got)
	}
}
