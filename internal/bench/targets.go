package bench

import (
	"fmt"
	"strings"
)

// targets checks the goals of the run, and says for each one missed what was measured that explains it.
func targets(rep *Report, cfg Config) []Target {
	var ts []Target
	check := func(goal string, got, want float64, reason func() string) {
		t := Target{Goal: goal, Got: fmt.Sprintf("%.2f", got), Met: got >= want}
		if !t.Met {
			t.Reason = reason()
		}
		ts = append(ts, t)
	}
	goR := func(v, c int) (Result, bool) { return find(rep.Results, v, c) }
	pgR := func(v, c int) (Result, bool) { return find(rep.Pgbench, v, c) }
	in := map[int]int64{}
	for _, i := range rep.Instructions {
		in[i.Variant] = i.PerTx
	}
	k := func(n int64) string { return fmt.Sprintf("%.0fk", float64(n)/1000) }
	hasIn := func(ids ...int) bool {
		for _, id := range ids {
			if _, ok := in[id]; !ok {
				return false
			}
		}
		return true
	}

	for _, c := range []int{1, 8} {
		if r, ok := goR(5, c); ok {
			check(fmt.Sprintf("signed point read, C verifier (5) >= 0.90 of raw pgx (1) at %d clients", c), r.Ratio, 0.90, func() string {
				var why []string
				if p, ok := pgR(105, c); ok {
					why = append(why, fmt.Sprintf("server-side alone the same read runs at %.2f of the raw read (pgbench 105)", p.Ratio))
				}
				if p7, ok := pgR(107, c); ok {
					why = append(why, fmt.Sprintf("db.Pool's batch server-side (c_enter and the read) runs at %.2f (pgbench 107)", p7.Ratio))
				}
				if hasIn(105, 106, 107) {
					why = append(why, fmt.Sprintf("c_enter costs %s instructions per transaction over set_config, where set_config and a RESET ALL statement cost %s (pgbench 106)", signedK(k, in[107]-in[105]), k(in[106]-in[105])))
				}
				if b, ok := goR(1, c); ok {
					why = append(why, fmt.Sprintf("db.Pool allocates %.0f times per read against %.0f for raw pgx, in a client that shares the 2 CPUs with the server", r.AllocsPerOp, b.AllocsPerOp))
				}
				if hasIn(101, 102, 105) {
					why = append(why, fmt.Sprintf("the server executes %s instructions per transaction against %s raw: %s for the batch's set_config, %s for RLS and the C verifier", k(in[105]), k(in[101]), k(in[102]-in[101]), k(in[105]-in[102])))
				}
				return strings.Join(why, "; ")
			})
		}
		// Server-side, the read as db.Pool sends it: c_enter and the statement (107); where the run has no
		// 107, set_config and the statement (105).
		server := 107
		if _, ok := pgR(server, c); !ok {
			server = 105
		}
		if p, ok := pgR(server, c); ok {
			check(fmt.Sprintf("signed point read, C verifier, server-only (pgbench %d) >= 0.90 of the raw read at %d clients", server, c), p.Ratio, 0.90, func() string {
				why := "a second statement in the transaction (the context"
				if b, ok := pgR(102, c); ok {
					why += fmt.Sprintf(": set_config and a read without RLS run at %.2f, pgbench 102", b.Ratio)
				}
				why += ") and the InitPlan that row-level security adds"
				if hasIn(101, 102, server) {
					why += fmt.Sprintf("; instructions per transaction: %s raw, %s with set_config, %s signed with RLS and the C verifier", k(in[101]), k(in[102]), k(in[server]))
				}
				return why
			})
		}
		if r, ok := goR(51, c); ok {
			check(fmt.Sprintf("signed point read, plpgsql verifier (51) >= 0.60 of raw pgx (1) at %d clients", c), r.Ratio, 0.60, func() string { return plpgsqlReason(in, k) })
		}
		if p, ok := pgR(115, c); ok {
			check(fmt.Sprintf("signed point read, plpgsql verifier, server-only (pgbench 115) >= 0.60 of the raw read at %d clients", c), p.Ratio, 0.60, func() string { return plpgsqlReason(in, k) })
		}
		r5, ok5 := goR(5, c)
		r4, ok4 := goR(4, c)
		if ok5 && ok4 && r4.Throughput > 0 {
			check(fmt.Sprintf("signed (5) within 3%% of unsigned (4), C verifier, at %d clients", c), r5.Throughput/r4.Throughput, 0.97, func() string {
				return signedReason(in, k, r5, r4)
			})
		}
		p5, ok5 := pgR(105, c)
		p4, ok4 := pgR(104, c)
		if ok5 && ok4 && p4.Throughput > 0 {
			check(fmt.Sprintf("signed (105) within 3%% of unsigned (104), C verifier, server-only, at %d clients", c), p5.Throughput/p4.Throughput, 0.97, func() string {
				return signedReason(in, k, p5, p4)
			})
		}
	}
	for _, c := range cfg.Clients {
		repoReason := func(r Result, what string) func() string {
			return func() string {
				return fmt.Sprintf("it carries the signed read's cost (5)%s, plus %s; %.0f allocations per operation", ratioAt(rep.Results, 5, c), what, r.AllocsPerOp)
			}
		}
		if r, ok := goR(6, c); ok {
			check(fmt.Sprintf("repository Get (6) >= 0.85 of raw pgx (1) at %d clients", c), r.Ratio, 0.85, repoReason(r, "three decryptions and the mapping"))
		}
		if r, ok := goR(7, c); ok {
			check(fmt.Sprintf("repository List(50) (7) >= 0.75 of the raw list (7b) at %d clients", c), r.Ratio, 0.75, repoReason(r, "150 decryptions and the mapping of 51 rows"))
		}
		if r, ok := goR(8, c); ok {
			check(fmt.Sprintf("repository Insert (8) >= 0.70 of the raw insert (8b) at %d clients", c), r.Ratio, 0.70, repoReason(r, "three encryptions and a blind index"))
		}
	}
	if r, ok := find(rep.Flat, flatBase+1, 8); ok {
		check(fmt.Sprintf("signed read at %d tenants within 5%% of 100 tenants (db.Pool, 8 clients)", cfg.FlatTenants), r.Ratio, 0.95, func() string {
			return flatReason(rep, in, k, cfg.FlatTenants)
		})
		// The same without what the data's growth costs a raw read too: tenantseal's own share.
		if raw, ok := find(rep.Flat, flatBase+11, 8); ok && raw.Ratio > 0 {
			check(fmt.Sprintf("signed read at %d tenants, over the raw read at the same size, within 5%% of the same at 100 tenants", cfg.FlatTenants), r.Ratio/raw.Ratio, 0.95, func() string {
				return fmt.Sprintf("the raw read itself runs at %.2f at %d tenants, the signed one at %.2f; ", raw.Ratio, cfg.FlatTenants, r.Ratio) + flatReason(rep, in, k, cfg.FlatTenants)
			})
		}
	}
	return ts
}

func ratioAt(rs []Result, v, c int) string {
	if r, ok := find(rs, v, c); ok {
		return fmt.Sprintf(" at %.2f", r.Ratio)
	}
	return ""
}

func plpgsqlReason(in map[int]int64, k func(int64) string) string {
	why := "the plpgsql verifier runs on every statement: entering a plpgsql SECURITY DEFINER function, its expressions, one query of the key and the tenant's status and two SHA-256 through OpenSSL"
	if p, ok := in[115]; ok {
		if c, ok := in[105]; ok {
			why += fmt.Sprintf("; %s instructions per transaction against %s with the C verifier", k(p), k(c))
		}
	}
	return why + "; the leanest plpgsql form measured (docs/bench) is the one shipped"
}

func signedReason(in map[int]int64, k func(int64) string, signed, unsigned Result) string {
	why := fmt.Sprintf("%.0f against %.0f operations per second", signed.Throughput, unsigned.Throughput)
	if s, ok := in[105]; ok {
		if u, ok := in[104]; ok {
			why += fmt.Sprintf("; the server executes %s instructions per signed transaction against %s unsigned (a cached token is compared, not verified)", k(s), k(u))
			if float64(s) <= 1.03*float64(u) {
				why += ": within 3%, so what the throughput shows is the noise of the machine"
			}
		}
	}
	return why
}

func flatReason(rep *Report, in map[int]int64, k func(int64) string, n int) string {
	var why []string
	for i, what := range []string{"the raw read through pgx", "the raw read by pgbench", "the signed read by pgbench with cached tokens", "the signed read by pgbench verifying every token anew"} {
		if r, ok := find(rep.Flat, flatBase+10*(i+1)+1, 8); ok {
			why = append(why, fmt.Sprintf("%s runs at %.2f of itself at 100 tenants", what, r.Ratio))
		}
	}
	if c, ok := in[105]; ok {
		if m, ok := in[125]; ok {
			why = append(why, fmt.Sprintf("a token not in the backend's cache (each backend keeps the latest 1024 by default; with %d tenants drawn at random nearly every token is new to it) costs %s more instructions (%s against %s)", n, k(m-c), k(m), k(c)))
		}
	}
	small, okS := find(rep.Flat, flatBase, 8)
	big, okB := find(rep.Flat, flatBase+1, 8)
	if okS && okB && big.AllocsPerOp > small.AllocsPerOp+2 {
		why = append(why, fmt.Sprintf("db.Pool signs more tokens at %d tenants (%.0f allocations per read against %.0f)", n, big.AllocsPerOp, small.AllocsPerOp))
	}
	return strings.Join(why, "; ")
}

// signedK is k for a difference that may be negative.
func signedK(k func(int64) string, n int64) string {
	if n < 0 {
		return "-" + k(-n)
	}
	return "+" + k(n)
}
