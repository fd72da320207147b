package bench

import (
	"fmt"
	"html"
	"slices"
	"strings"
)

// Markdown renders the report as the tables the README quotes.
func Markdown(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# tenantseal benchmark\n\n")
	fmt.Fprintf(&b, "- when: %s\n- machine: %s\n- postgres: %s\n", rep.When.Format("2006-01-02 15:04 UTC"), rep.Machine, rep.Postgres)
	if rep.Server != "" {
		fmt.Fprintf(&b, "- server: %s\n", rep.Server)
	}
	if rep.RoundTripUS > 0 {
		fmt.Fprintf(&b, "- round trip: %.0f µs (median of an empty statement on one connection)\n", rep.RoundTripUS)
	}
	if len(rep.Verifiers) > 0 {
		fmt.Fprintf(&b, "- verifiers: %s\n", strings.Join(rep.Verifiers, ", "))
	}
	fmt.Fprintf(&b, "- dataset: %s\n- method: %s\n- elapsed: %s\n- reproduce: `%s`\n\n", rep.Dataset, rep.Duration, rep.Elapsed, rep.Command)
	for _, c := range clientsOf(rep.Results) {
		fmt.Fprintf(&b, "## %d client(s)\n\n| # | variant | ops/s | ratio | vs | p50 µs | p99 µs | allocs/op | B/op |\n|---|---|---:|---:|---|---:|---:|---:|---:|\n", c)
		for _, r := range rep.Results {
			if r.Clients != c {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.2f | %s | %.0f | %.0f | %.0f | %.0f |\n", label(r.Variant), r.Name, r.Throughput, r.Ratio, label(r.Against), r.P50us, r.P99us, r.AllocsPerOp, r.BytesPerOp)
		}
		b.WriteString("\n")
	}
	if len(rep.Pgbench) > 0 {
		b.WriteString("## Server only (pgbench -M prepared, context and statement in one pipeline)\n\n")
		for _, c := range clientsOf(rep.Pgbench) {
			fmt.Fprintf(&b, "### %d client(s)\n\n| # | variant | tps | ratio | vs | mean latency µs |\n|---|---|---:|---:|---|---:|\n", c)
			for _, r := range rep.Pgbench {
				if r.Clients == c {
					fmt.Fprintf(&b, "| %s | %s | %.0f | %.2f | %s | %.0f |\n", label(r.Variant), r.Name, r.Throughput, r.Ratio, label(r.Against), r.P50us)
				}
			}
			b.WriteString("\n")
		}
	}
	if len(rep.Instructions) > 0 {
		b.WriteString("## Instructions per transaction (valgrind callgrind, server only, 100 tenants)\n\n| # | variant | instructions | over the raw read |\n|---|---|---:|---:|\n")
		for _, i := range rep.Instructions {
			fmt.Fprintf(&b, "| %s | %s | %d | %+d |\n", label(i.Variant), i.Name, i.PerTx, i.OverRaw)
		}
		b.WriteString("\n")
	}
	if len(rep.Flat) > 0 {
		b.WriteString("## Flat in tenant count (8 clients)\n\nIn steady state: each Go variant keeps one pool for all rounds, on which every tenant is read once\nbefore the first measurement, and before each one for the signed read (each tenant's token signed\nand cached by db.Pool).\n\n| dataset | ops/s | ratio to 100 tenants | p50 µs | p99 µs |\n|---|---:|---:|---:|---:|\n")
		for _, r := range rep.Flat {
			fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.0f | %.0f |\n", r.Name, r.Throughput, r.Ratio, r.P50us, r.P99us)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Targets\n\n| goal | got | met |\n|---|---:|---|\n")
	for _, t := range rep.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**: " + t.Reason
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.Goal, t.Got, met)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func clientsOf(rs []Result) []int {
	var cs []int
	for _, r := range rs {
		if !slices.Contains(cs, r.Clients) {
			cs = append(cs, r.Clients)
		}
	}
	return cs
}

// label names a variant: 1 to 9 as in the issue, 7b/8b for the raw list and insert baselines, 5p for
// the plpgsql verifier, 5k for a tenant column compared by key (text, bigint, integer), S1 to S5 for their server-only (pgbench) forms.
func label(id int) string {
	switch id {
	case 51:
		return "5p"
	case 52:
		return "5k"
	case 71:
		return "7b"
	case 81:
		return "8b"
	case 91:
		return "9a"
	case 95:
		return "9b"
	case 106:
		return "S5r"
	case 107:
		return "S5e"
	case 115:
		return "S5p"
	case 125:
		return "S5n"
	}
	if id > 100 && id < 200 {
		return fmt.Sprintf("S%d", id-100)
	}
	return fmt.Sprint(id)
}

// Chart draws throughput per variant, one bar per client count, as an SVG.
func Chart(rep *Report) string {
	var clients []int
	var variants []Result
	for _, r := range rep.Results {
		if !slices.Contains(clients, r.Clients) {
			clients = append(clients, r.Clients)
		}
		if !slices.ContainsFunc(variants, func(v Result) bool { return v.Variant == r.Variant }) {
			variants = append(variants, r)
		}
	}
	maxThr := 1.0
	for _, r := range rep.Results {
		maxThr = max(maxThr, r.Throughput)
	}
	const left, top, rowH, barH, width = 330, 50, 54, 14, 900
	colors := []string{"#4C78A8", "#F58518", "#54A24B", "#B279A2"}
	h := top + rowH*len(variants) + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width+120, h)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="15" font-weight="bold">tenantseal: throughput per variant (ops/s; ratio to its baseline)</text>`+"\n")
	for i, c := range clients {
		fmt.Fprintf(&b, `<rect x="%d" y="30" width="12" height="12" fill="%s"/><text x="%d" y="40">%d client(s)</text>`+"\n", left+i*110, colors[i%len(colors)], left+i*110+16, c)
	}
	for i, v := range variants {
		y := top + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s %s</text>`+"\n", left-8, y+barH+8, label(v.Variant), html.EscapeString(v.Name))
		for j, c := range clients {
			r, ok := find(rep.Results, v.Variant, c)
			if !ok {
				continue
			}
			w := int(r.Throughput / maxThr * width * 0.85)
			by := y + j*(barH+1)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, left, by, max(w, 1), barH, colors[j%len(colors)])
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10">%.0f (%.2f)</text>`+"\n", left+w+4, by+barH-3, r.Throughput, r.Ratio)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
