package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Instrumented is a server whose backends count the instructions they execute (valgrind's callgrind):
// it runs at full speed until Instrument, so that the dataset loads quickly. The development binary
// provides one (a container on the host's network with the host's valgrind).
type Instrumented interface {
	// DSN is a superuser's connection string.
	DSN() string
	// Instrument restarts the server with every process under callgrind.
	Instrument(ctx context.Context) error
	// Counts returns the instructions of every process that has exited since, by an id of its own.
	Counts() (map[string]int64, error)
	// Stop removes the server.
	Stop(ctx context.Context) error
}

// Instructions is one server-only variant's instruction count per transaction, which a noisy machine
// does not change: what the server executes for the context, the statement and its policies.
type Instructions struct {
	Variant int    `json:"variant"`
	Name    string `json:"name"`
	PerTx   int64  `json:"instructions_per_transaction"`
	// OverRaw is PerTx less the raw point read's (variant 101).
	OverRaw int64 `json:"over_raw"`
}

// Transactions per callgrind run: the count is the difference of two runs, which cancels connecting
// and preparing the statements. Not fewer: with runs of 50 and 250 the raw read came out at 62.6k
// instructions against 71.7k with these (which repeat within 0.1 % from run to run), the others 2-4 %
// higher, presumably because what a session does on a timer rather than per transaction (its
// statistics reports, at most once a second) then falls unevenly into the two runs.
const cgShort, cgLong = 100, 400

// measureInstructions counts the instructions per transaction of the server-only variants, on a small
// dataset (100 tenants x 5 customers) of its own server.
func measureInstructions(ctx context.Context, cfg *Config, exe string, dir string) ([]Instructions, error) {
	srv, err := cfg.Callgrind(ctx)
	if err != nil {
		return nil, err
	}
	defer srv.Stop(context.WithoutCancel(ctx))
	fmt.Fprintln(cfg.Progress, "instructions: loading 100 tenants x 5 customers on the instrumented server")
	ds, err := loadFlat(ctx, srv.DSN(), "benchcg", 100, 5)
	if err != nil {
		return nil, err
	}
	if err := ds.plainCopy(ctx); err != nil {
		return nil, err
	}
	ps, err := ds.pairs(16)
	if err != nil {
		return nil, err
	}
	vs := append(ds.pgbenchVariants(),
		pgbenchVariant{ID: 125, Name: "signed context, C verifier, no token cache (every token verified anew)", verifier: verifierC, cacheOff: true, script: scriptSigned})
	runs := make([]*pgbench, len(vs))
	for i, v := range vs {
		if runs[i], err = newPgbench(exe, ds.res.AppDSN, dir, v, ps); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(cfg.Progress, "instructions: restarting the server under callgrind")
	if err := srv.Instrument(ctx); err != nil {
		return nil, err
	}
	var out []Instructions
	cacheOff := false
	for i, v := range vs {
		if !ds.hasC && v.verifier == verifierC {
			continue
		}
		if err := retry(ctx, func() error { return ds.useVerifier(ctx, v.verifier) }); err != nil {
			return nil, err
		}
		if v.cacheOff != cacheOff {
			size := -1
			if v.cacheOff {
				size = 0
			}
			if err := retry(ctx, func() error { return setTokenCache(ctx, srv.DSN(), size) }); err != nil {
				return nil, err
			}
			cacheOff = v.cacheOff
		}
		fmt.Fprintf(cfg.Progress, "instructions: %s\n", v.Name)
		short, err := countRun(ctx, srv, runs[i], cgShort)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", v.Name, err)
		}
		long, err := countRun(ctx, srv, runs[i], cgLong)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", v.Name, err)
		}
		out = append(out, Instructions{Variant: v.ID, Name: v.Name, PerTx: (long - short) / (cgLong - cgShort)})
	}
	for i := range out {
		out[i].OverRaw = out[i].PerTx - out[0].PerTx
	}
	return out, nil
}

// countRun runs n transactions on one client and returns what that client's backend executed.
func countRun(ctx context.Context, srv Instrumented, b *pgbench, n int) (int64, error) {
	before, err := settle(ctx, srv, nil)
	if err != nil {
		return 0, err
	}
	if _, err := b.run(ctx, 1, 0, n); err != nil {
		return 0, err
	}
	// pgbench's own first connection and the client's: the client ran the transactions.
	after, err := settle(ctx, srv, func(m map[string]int64) bool { return len(m) >= len(before)+2 })
	if err != nil {
		return 0, err
	}
	var most int64
	for k, v := range after {
		if _, old := before[k]; !old {
			most = max(most, v)
		}
	}
	return most, nil
}

// settle waits until no process has exited for a while (and ready holds, when given) and returns the
// counts then: sessions that ended a moment ago have been counted.
func settle(ctx context.Context, srv Instrumented, ready func(map[string]int64) bool) (map[string]int64, error) {
	deadline := time.Now().Add(time.Minute)
	var last map[string]int64
	stable := 0
	for time.Now().Before(deadline) {
		m, err := srv.Counts()
		if err != nil {
			return nil, err
		}
		if last != nil && maps.Equal(m, last) && (ready == nil || ready(m)) {
			if stable++; stable >= 5 {
				return m, nil
			}
		} else {
			stable = 0
		}
		last = m
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("bench: callgrind's counts did not settle (%d processes counted: %v)", len(last), slices.Sorted(maps.Keys(last)))
}

// retry runs fn up to three times: a session under callgrind, slow to start, is now and then cut off
// while it connects. fn must be safe to repeat.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for range 3 {
		if err = fn(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return err
}
