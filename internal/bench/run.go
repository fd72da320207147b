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
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	// Ratio is Throughput over the matching baseline's at the same client count: variant 1 for point
	// reads, the raw list for List, the raw insert for Insert, the baseline through pgbouncer for 9.
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
	When      time.Time `json:"when"`
	Machine   string    `json:"machine"`
	Postgres  string    `json:"postgres"`
	Dataset   string    `json:"dataset"`
	Command   string    `json:"command"`
	Results   []Result  `json:"results"`
	Flat      []Result  `json:"flatness,omitempty"`
	Targets   []Target  `json:"targets"`
	Notes     []string  `json:"notes,omitempty"`
	Duration  string    `json:"measurement"`
	Elapsed   string    `json:"elapsed"`
	startedAt time.Time
}

// against names the baseline each variant is compared with.
func against(id int) int {
	switch id {
	case 7:
		return 71
	case 8:
		return 81
	case 95:
		return 91
	default:
		return 1
	}
}

// Run loads the dataset, measures every variant and writes results.json, results.md and chart.svg to
// outDir.
func Run(ctx context.Context, cfg Config, outDir, command string) (*Report, error) {
	cfg.defaults()
	rep := &Report{When: time.Now().UTC(), startedAt: time.Now(), Command: command,
		Machine:  fmt.Sprintf("%s/%s, %d CPUs, Go %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		Dataset:  fmt.Sprintf("%d tenants x %d customers (encrypted email, phone, notes; blind index), invoices for about half of them", cfg.Tenants, cfg.CustomersPerTenant),
		Duration: fmt.Sprintf("%d interleaved rounds of %v per variant and client count, after %v warm-up", cfg.Rounds, cfg.Duration, cfg.Warmup)}
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
	vs := ds.variants()
	if b, err := startBouncer(ctx, ds.res); err != nil {
		rep.Notes = append(rep.Notes, "variant 9 (pgbouncer) not measured: "+err.Error())
	} else {
		defer b.stop()
		vs = append(vs, ds.bouncerVariants(b.appDSN)...)
		rep.Notes = append(rep.Notes, fmt.Sprintf("variant 9 runs through pgbouncer in transaction pooling mode with %d server connections, pgx exec mode CacheDescribe", bouncerPoolSize))
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
			rep.Results = append(rep.Results, summarize(v, c, by[key{v.ID, c}]))
		}
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		r.Against = against(r.Variant)
		for _, b := range rep.Results {
			if b.Variant == r.Against && b.Clients == r.Clients && b.Throughput > 0 {
				r.Ratio = r.Throughput / b.Throughput
			}
		}
	}
	if cfg.Flat {
		if err := flatness(ctx, &cfg, superDSN, rep); err != nil {
			return nil, err
		}
	}
	rep.Targets = targets(rep, cfg)
	rep.Elapsed = time.Since(rep.startedAt).Round(time.Second).String()
	return rep, write(rep, outDir)
}

func run1(ctx context.Context, v variant, clients int, cfg Config) (Measurement, error) {
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

func summarize(v variant, c int, ms []Measurement) Result {
	r := Result{Variant: v.ID, Name: v.Name, Clients: c}
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

// flatness measures the signed point read with 100 tenants and with FlatTenants tenants, FlatRows
// customers each, interleaved.
func flatness(ctx context.Context, cfg *Config, superDSN string, rep *Report) error {
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
	vs := []variant{
		{ID: 100, Name: "signed point read, 100 tenants", setup: small.signedRead(small.res.AppDSN, 0, false)},
		{ID: cfg.FlatTenants, Name: fmt.Sprintf("signed point read, %d tenants", cfg.FlatTenants), setup: big.signedRead(big.res.AppDSN, 0, false)},
	}
	by := map[int][]Measurement{}
	for round := range cfg.Rounds {
		for _, v := range vs {
			fmt.Fprintf(cfg.Progress, "flatness round %d/%d: %s\n", round+1, cfg.Rounds, v.Name)
			m, err := run1(ctx, v, clients, *cfg)
			if err != nil {
				return fmt.Errorf("bench: %s: %w", v.Name, err)
			}
			by[v.ID] = append(by[v.ID], m)
		}
	}
	for _, v := range vs {
		rep.Flat = append(rep.Flat, summarize(v, clients, by[v.ID]))
	}
	rep.Flat[1].Ratio = rep.Flat[1].Throughput / rep.Flat[0].Throughput
	rep.Flat[1].Against = 100
	rep.Flat[0].Ratio = 1
	return nil
}

func find(rep *Report, v, c int) (Result, bool) {
	for _, r := range rep.Results {
		if r.Variant == v && r.Clients == c {
			return r, true
		}
	}
	return Result{}, false
}

func targets(rep *Report, cfg Config) []Target {
	var ts []Target
	check := func(goal string, got float64, ok bool, reason string) {
		t := Target{Goal: goal, Got: fmt.Sprintf("%.2f", got), Met: ok}
		if !ok {
			t.Reason = reason
		}
		ts = append(ts, t)
	}
	for _, c := range []int{1, 8} {
		if r, ok := find(rep, 5, c); ok {
			check(fmt.Sprintf("signed point read (5) >= 0.90 of baseline at %d clients", c), r.Ratio, r.Ratio >= 0.90,
				"each statement's first call of the plpgsql SECURITY DEFINER verifier costs 40-65 us of server time (entering the definer function, the key lookup, parsing and hashing), against about 20 us for the whole baseline query; a verifier in C would cost about 2 us")
		}
		r5, ok5 := find(rep, 5, c)
		r4, ok4 := find(rep, 4, c)
		if ok5 && ok4 && r4.Throughput > 0 {
			q := r5.Throughput / r4.Throughput
			check(fmt.Sprintf("signed (5) within 5%% of unsigned (4) at %d clients", c), q, q >= 0.95,
				"the signed path looks up the key and hashes twice where the unsigned path only checks a setting")
		}
	}
	for _, c := range cfg.Clients {
		if r, ok := find(rep, 6, c); ok {
			check(fmt.Sprintf("repository Get (6) >= 0.80 of baseline at %d clients", c), r.Ratio, r.Ratio >= 0.80, "it carries the signed read's cost (5), plus three decryptions and the mapping")
		}
		if r, ok := find(rep, 7, c); ok {
			check(fmt.Sprintf("repository List(50) (7) >= 0.70 of the raw list at %d clients", c), r.Ratio, r.Ratio >= 0.70, "it carries the signed read's cost (5), plus 150 decryptions and the mapping of 51 rows")
		}
	}
	if len(rep.Flat) == 2 {
		check(fmt.Sprintf("signed read at %d tenants within 10%% of 100 tenants", cfg.FlatTenants), rep.Flat[1].Ratio, rep.Flat[1].Ratio >= 0.90,
			"not diagnosed; candidates: the client signs a new token for nearly every statement (100 principals stay in its token cache, 100,000 do not) and less of the larger index stays in shared buffers")
	}
	return ts
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
