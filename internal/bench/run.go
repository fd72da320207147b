package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Result is the medians over rounds of one variant at one client count.
type Result struct {
	Variant     int     `json:"variant"`
	Name        string  `json:"name"`
	Clients     int     `json:"clients"`
	Throughput  float64 `json:"ops_per_s"`
	P50us       float64 `json:"p50_us"` // pgbench variants: the mean latency
	P99us       float64 `json:"p99_us"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	// Ratio is Throughput over the matching baseline's at the same client count: variant 1 for point
	// reads, the raw list for List, the raw insert for Insert, the baseline through pgbouncer for 9, the
	// raw pgbench read (101) for pgbench variants, the same variant at 100 tenants for flatness.
	Ratio   float64   `json:"ratio"`
	Against int       `json:"ratio_against"`
	Rounds  []float64 `json:"ops_per_s_by_round"`
}

// Target is one of the goals the report checks.
type Target struct {
	Goal   string `json:"goal"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
	Reason string `json:"reason,omitempty"`
}

// Report is a whole run.
type Report struct {
	When     time.Time `json:"when"`
	Machine  string    `json:"machine"`
	Postgres string    `json:"postgres"`
	Dataset  string    `json:"dataset"`
	Command  string    `json:"command"`
	// Server says how clients reach it; RoundTripUS is the median round trip of an empty statement.
	Server      string  `json:"server"`
	RoundTripUS float64 `json:"round_trip_us"`
	// Verifiers are the verifiers of tenant contexts measured.
	Verifiers    []string       `json:"verifiers"`
	Results      []Result       `json:"results"`
	Pgbench      []Result       `json:"pgbench,omitempty"`
	Instructions []Instructions `json:"instructions,omitempty"`
	Flat         []Result       `json:"flatness,omitempty"`
	Targets      []Target       `json:"targets"`
	Notes        []string       `json:"notes,omitempty"`
	Duration     string         `json:"measurement"`
	Elapsed      string         `json:"elapsed"`
	startedAt    time.Time
}

// against names the baseline each variant is compared with.
func against(id int) int {
	switch {
	case id == 7:
		return 71
	case id == 8:
		return 81
	case id == 95:
		return 91
	case id > 100 && id < 200:
		return 101
	default:
		return 1
	}
}

// Run loads the dataset, measures every variant and writes results.json, results.md and chart.svg to
// outDir.
func Run(ctx context.Context, cfg Config, outDir, command string) (*Report, error) {
	cfg.defaults()
	rep := &Report{When: time.Now().UTC(), startedAt: time.Now(), Command: command, Server: cfg.Server,
		Machine:  fmt.Sprintf("%s/%s, %d CPUs, Go %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		Dataset:  fmt.Sprintf("%d tenants x %d customers (encrypted email, phone, notes; blind index), invoices for about half of them", cfg.Tenants, cfg.CustomersPerTenant),
		Duration: fmt.Sprintf("%d interleaved rounds of %v per variant and client count; each Go variant first does one operation on every tenant on its pool (tokens signed, keysets opened), then warms up for %v (pgbench: none)", cfg.Rounds, cfg.Duration, cfg.Warmup)}
	superDSN := cfg.SuperDSN
	if superDSN == "" {
		return nil, errors.New("bench: no server: Config.SuperDSN is required")
	}
	if c, err := pgx.Connect(ctx, superDSN); err == nil {
		c.QueryRow(ctx, "SELECT version()").Scan(&rep.Postgres)
		c.Close(ctx)
	}
	fmt.Fprintf(cfg.Progress, "loading %s\n", rep.Dataset)
	ds, err := loadMain(ctx, &cfg, superDSN)
	if err != nil {
		return nil, fmt.Errorf("bench: load: %w", err)
	}
	rep.Verifiers = []string{verifierPLpgSQL}
	if ds.hasC {
		rep.Verifiers = []string{verifierC, verifierPLpgSQL}
	} else {
		rep.Notes = append(rep.Notes, "the server has no extension tenantseal_verify: the variants marked C ran the plpgsql verifier")
	}
	rtt, err := roundTrip(ctx, ds.res.AppDSN)
	if err != nil {
		return nil, fmt.Errorf("bench: round trip: %w", err)
	}
	rep.RoundTripUS = float64(rtt.Nanoseconds()) / 1000
	fmt.Fprintf(cfg.Progress, "round trip: %.0f us\n", rep.RoundTripUS)

	vs := ds.variants()
	if b, err := startBouncer(ctx, ds.res); err != nil {
		rep.Notes = append(rep.Notes, "variant 9 (pgbouncer) not measured: "+err.Error())
	} else {
		defer b.stop()
		vs = append(vs, ds.bouncerVariants(b.appDSN)...)
		rep.Notes = append(rep.Notes, fmt.Sprintf("variant 9 runs through pgbouncer in transaction pooling mode with %d server connections, pgx exec mode CacheDescribe", bouncerPoolSize))
	}
	for i := range vs {
		vs[i].setup = ds.primed(vs[i].setup)
	}

	type key struct{ v, c int }
	by := map[key][]Measurement{}
	for round := range cfg.Rounds {
		for _, c := range cfg.Clients {
			for _, v := range vs {
				fmt.Fprintf(cfg.Progress, "round %d/%d, %2d clients: %s\n", round+1, cfg.Rounds, c, v.Name)
				m, err := run1(ctx, v, c, cfg)
				if err != nil {
					return nil, fmt.Errorf("bench: %s at %d clients: %w", v.Name, c, err)
				}
				by[key{v.ID, c}] = append(by[key{v.ID, c}], m)
			}
		}
	}
	for _, c := range cfg.Clients {
		for _, v := range vs {
			rep.Results = append(rep.Results, summarize(v.ID, v.Name, c, by[key{v.ID, c}]))
		}
	}
	ratios(rep.Results)

	tmp, err := os.MkdirTemp("", "tenantseal-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	exe := ""
	if cfg.Pgbench != "-" {
		if exe, err = findPgbench(cfg.Pgbench); err != nil {
			rep.Notes = append(rep.Notes, "server-only variants not measured: "+err.Error())
		} else if rep.Pgbench, err = pgbenchRounds(ctx, &cfg, ds, exe, tmp, ds.pgbenchVariants(), pgbenchClients(cfg.Clients)); err != nil {
			return nil, err
		}
		ratios(rep.Pgbench)
	}
	if cfg.Flat {
		if err := flatness(ctx, &cfg, superDSN, exe, tmp, rep); err != nil {
			return nil, err
		}
	}
	if cfg.Callgrind != nil && exe != "" {
		if rep.Instructions, err = measureInstructions(ctx, &cfg, exe, tmp); err != nil {
			rep.Notes = append(rep.Notes, "instructions not counted: "+err.Error())
		}
	} else {
		rep.Notes = append(rep.Notes, "instructions not counted: no server under callgrind (make bench starts one when valgrind is installed)")
	}
	rep.Targets = targets(rep, cfg)
	rep.Elapsed = time.Since(rep.startedAt).Round(time.Second).String()
	return rep, write(rep, outDir)
}

// pgbenchClients are the client counts of the server-only variants: 1 and 8 where the run has them.
func pgbenchClients(all []int) []int {
	var cs []int
	for _, c := range all {
		if c <= 8 {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		cs = all[:1]
	}
	return cs
}

// pgbenchRounds measures server-only variants on ds, interleaved like the Go ones.
func pgbenchRounds(ctx context.Context, cfg *Config, ds *dataset, exe, tmp string, vs []pgbenchVariant, clients []int) ([]Result, error) {
	ps, err := ds.pairs(pgbenchScripts)
	if err != nil {
		return nil, err
	}
	runs := map[int]*pgbench{}
	for _, v := range vs {
		if runs[v.ID], err = newPgbench(exe, ds.res.AppDSN, tmp, v, ps); err != nil {
			return nil, err
		}
	}
	type key struct{ v, c int }
	by := map[key][]Measurement{}
	for round := range cfg.Rounds {
		for _, c := range clients {
			for _, v := range vs {
				if !ds.hasC && v.verifier == verifierC {
					continue
				}
				fmt.Fprintf(cfg.Progress, "round %d/%d, %2d clients, pgbench: %s\n", round+1, cfg.Rounds, c, v.Name)
				m, err := pgbenchStep(ctx, cfg, ds, runs[v.ID], v, c)
				if err != nil {
					return nil, fmt.Errorf("bench: pgbench %s at %d clients: %w", v.Name, c, err)
				}
				by[key{v.ID, c}] = append(by[key{v.ID, c}], m)
			}
		}
	}
	var out []Result
	for _, c := range clients {
		for _, v := range vs {
			if ms := by[key{v.ID, c}]; len(ms) > 0 {
				out = append(out, summarize(v.ID, v.Name, c, ms))
			}
		}
	}
	return out, nil
}

// ratios sets each result's ratio to its baseline's at the same client count.
func ratios(rs []Result) {
	for i := range rs {
		r := &rs[i]
		r.Against = against(r.Variant)
		for _, b := range rs {
			if b.Variant == r.Against && b.Clients == r.Clients && b.Throughput > 0 {
				r.Ratio = r.Throughput / b.Throughput
			}
		}
	}
}

func run1(ctx context.Context, v variant, clients int, cfg Config) (Measurement, error) {
	if v.before != nil {
		if err := v.before(ctx); err != nil {
			return Measurement{}, err
		}
	}
	o, cleanup, err := v.setup(ctx, clients)
	if err != nil {
		return Measurement{}, err
	}
	defer cleanup()
	return measure(ctx, o, clients, cfg.Warmup, cfg.Duration)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(id int, name string, c int, ms []Measurement) Result {
	r := Result{Variant: id, Name: name, Clients: c}
	var thr, p50, p99, al, by []float64
	for _, m := range ms {
		thr = append(thr, m.Throughput)
		p50 = append(p50, float64(m.P50.Microseconds()))
		p99 = append(p99, float64(m.P99.Microseconds()))
		al = append(al, m.AllocsPerOp)
		by = append(by, m.BytesPerOp)
	}
	r.Rounds = thr
	r.Throughput, r.P50us, r.P99us, r.AllocsPerOp, r.BytesPerOp = median(thr), median(p50), median(p99), median(al), median(by)
	return r
}

// Flatness kinds: the signed read through db.Pool and the raw read through pgx, and pgbench's raw read,
// signed read with cached tokens, and signed read verifying every token anew. A kind's result at 100
// tenants has ID flatBase+10*kind, at FlatTenants one more.
const flatBase = 300

// step is one measurement of the flatness runs: a Go variant or a pgbench one.
type step struct {
	id   int
	name string
	run  func(ctx context.Context) (Measurement, error)
}

// flatness measures, at 100 tenants and at FlatTenants tenants with FlatRows customers each,
// interleaved, 8 clients: the signed point read through db.Pool and the raw one, and, to tell the
// server's share from the client's and the verifier's from the data's, the same reads by pgbench.
func flatness(ctx context.Context, cfg *Config, superDSN, exe, tmp string, rep *Report) error {
	fmt.Fprintf(cfg.Progress, "loading flatness datasets: 100 and %d tenants x %d customers\n", cfg.FlatTenants, cfg.FlatRows)
	small, err := loadFlat(ctx, superDSN, "benchflat_small", 100, cfg.FlatRows)
	if err != nil {
		return err
	}
	big, err := loadFlat(ctx, superDSN, "benchflat_big", cfg.FlatTenants, cfg.FlatRows)
	if err != nil {
		return err
	}
	const clients = 8
	var cleanups []func()
	defer func() {
		for _, c := range cleanups {
			c()
		}
	}()
	sizes := []struct {
		ds *dataset
		n  int
	}{{small, 100}, {big, cfg.FlatTenants}}
	var steps []step
	for i, s := range sizes {
		if err := s.ds.plainCopyOnce(ctx); err != nil {
			return err
		}
		for k, v := range []variant{
			{Name: "signed point read (db.Pool)" + s.ds.cName(), before: s.ds.before(verifierC), setup: s.ds.signedRead(s.ds.res.AppDSN, 0, false)},
			{Name: "raw point read (pgx)", setup: s.ds.baseline(s.ds.res.AppDSN, 0)},
		} {
			v.ID, v.Name = flatBase+10*k+i, fmt.Sprintf("%s, %d tenants", v.Name, s.n)
			// One pool per variant for all rounds, as an application keeps its pool, primed before
			// its first measurement. The signed read's pool is primed before each one: a round takes
			// longer than half a token's lifetime, after which db.Pool signs a tenant's token again, as
			// it would for a tenant not seen since; the raw read's pool keeps nothing per tenant.
			signed := k == 0
			var o op
			ds := s.ds
			steps = append(steps, step{id: v.ID, name: v.Name, run: func(ctx context.Context) (Measurement, error) {
				if v.before != nil {
					if err := v.before(ctx); err != nil {
						return Measurement{}, err
					}
				}
				first := o == nil
				if first {
					var cleanup func()
					var err error
					if o, cleanup, err = v.setup(ctx, clients); err != nil {
						return Measurement{}, err
					}
					cleanups = append(cleanups, cleanup)
				}
				if first || signed {
					if err := ds.prime(ctx, o, clients); err != nil {
						return Measurement{}, err
					}
				}
				return measure(ctx, o, clients, cfg.Warmup, cfg.Duration)
			}})
		}
	}
	if exe != "" {
		kinds := []pgbenchVariant{
			{Name: "raw point read, pgbench", script: scriptRaw},
			{Name: "signed point read, pgbench, tokens cached", verifier: verifierC, script: scriptSigned},
			{Name: "signed point read, pgbench, every token verified anew", verifier: verifierC, cacheOff: true, script: scriptSigned},
		}
		for k, kind := range kinds {
			if kind.verifier == verifierC && !small.hasC {
				continue
			}
			for i, s := range sizes {
				v := kind
				v.ID, v.Name = flatBase+10*(k+2)+i, fmt.Sprintf("%s, %d tenants", kind.Name, s.n)
				ps, err := s.ds.pairs(pgbenchScripts)
				if err != nil {
					return err
				}
				b, err := newPgbench(exe, s.ds.res.AppDSN, tmp, v, ps)
				if err != nil {
					return err
				}
				ds := s.ds
				steps = append(steps, step{id: v.ID, name: v.Name, run: func(ctx context.Context) (Measurement, error) {
					return pgbenchStep(ctx, cfg, ds, b, v, clients)
				}})
			}
		}
	}
	by := map[int][]Measurement{}
	for round := range cfg.Rounds {
		for _, st := range steps {
			fmt.Fprintf(cfg.Progress, "flatness round %d/%d: %s\n", round+1, cfg.Rounds, st.name)
			m, err := st.run(ctx)
			if err != nil {
				return fmt.Errorf("bench: %s: %w", st.name, err)
			}
			by[st.id] = append(by[st.id], m)
		}
	}
	for _, st := range steps {
		rep.Flat = append(rep.Flat, summarize(st.id, st.name, clients, by[st.id]))
	}
	for i := range rep.Flat {
		r := &rep.Flat[i]
		r.Against = r.Variant - (r.Variant-flatBase)%2
		for _, b := range rep.Flat {
			if b.Variant == r.Against && b.Throughput > 0 {
				r.Ratio = r.Throughput / b.Throughput
			}
		}
	}
	return nil
}

// pgbenchStep runs one pgbench measurement of v on ds: its verifier selected, and the token cache off
// for the run when v says so.
func pgbenchStep(ctx context.Context, cfg *Config, ds *dataset, b *pgbench, v pgbenchVariant, clients int) (Measurement, error) {
	if err := ds.useVerifier(ctx, v.verifier); err != nil {
		return Measurement{}, err
	}
	if v.cacheOff {
		if err := setTokenCache(ctx, cfg.SuperDSN, 0); err != nil {
			return Measurement{}, err
		}
	}
	m, err := b.run(ctx, clients, cfg.Duration, 0)
	if v.cacheOff {
		if rerr := setTokenCache(ctx, cfg.SuperDSN, -1); err == nil {
			err = rerr
		}
	}
	return m, err
}

func find(rs []Result, v, c int) (Result, bool) {
	for _, r := range rs {
		if r.Variant == v && r.Clients == c {
			return r, true
		}
	}
	return Result{}, false
}

func write(rep *Report, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(Markdown(rep)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "chart.svg"), []byte(Chart(rep)), 0o644)
}
