// Package bench measures what tenantseal's isolation costs against what applications would otherwise
// do: the same query on the same rows through each variant, interleaved, at several client counts.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a run.
type Config struct {
	// SuperDSN connects as a superuser to the server to measure on: it creates the databases bench,
	// benchflat_small and benchflat_big there, with roles of the same prefixes. Required.
	SuperDSN string
	// Tenants and CustomersPerTenant size the dataset; invoices are added at one per two customers.
	Tenants, CustomersPerTenant int
	// Clients are the concurrency levels. Default 1 and 8, where the targets are.
	Clients []int
	// Rounds is how many times the variants run, interleaved (A B C ... A B C ...). Default 3.
	Rounds int
	// Duration of one measurement. Default 2 s.
	Duration time.Duration
	// Warmup before each measurement, after the priming (see dataset.prime). Default 100 ms.
	Warmup time.Duration
	// Flat, when set, also measures the signed point read at 100 and at FlatTenants tenants with
	// FlatRows customers each.
	Flat                  bool
	FlatTenants, FlatRows int
	// Pgbench is the pgbench binary of the server-only variants: empty, the one on PATH or PostgreSQL
	// 15's; "-" skips them.
	Pgbench string
	// Callgrind, if set, starts a server whose backends count their instructions, for the instruction
	// counts of the server-only variants. Nil: none are reported.
	Callgrind func(ctx context.Context) (Instrumented, error)
	// Server says how the clients reach the server, for the report ("a container on the host's network").
	Server string
	// Progress receives a line per step.
	Progress io.Writer
}

func (c *Config) defaults() {
	if c.Tenants == 0 {
		c.Tenants = 1000
	}
	if c.CustomersPerTenant == 0 {
		c.CustomersPerTenant = 1000
	}
	if len(c.Clients) == 0 {
		c.Clients = []int{1, 8}
	}
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if c.Duration == 0 {
		c.Duration = 2 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 100 * time.Millisecond
	}
	if c.FlatTenants == 0 {
		c.FlatTenants = 100_000
	}
	if c.FlatRows == 0 {
		c.FlatRows = 5
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// op runs one operation for client worker; rng is the worker's own.
type op func(ctx context.Context, rng *rand.Rand) error

// variant is one way of running the query. setup returns the operation and a cleanup, for one
// measurement at a given client count.
type variant struct {
	ID    int
	Name  string
	setup func(ctx context.Context, clients int) (op, func(), error)
	// before, if set, prepares the database first: the verifier the variant measures.
	before func(ctx context.Context) error
}

// Measurement is one variant at one client count in one round.
type Measurement struct {
	Throughput    float64 // operations per second
	P50, P99      time.Duration
	AllocsPerOp   float64
	BytesPerOp    float64
	Ops, Failures int64
}

// measure runs o on clients goroutines for d after a warm-up.
func measure(ctx context.Context, o op, clients int, warm, d time.Duration) (Measurement, error) {
	run := func(d time.Duration, keep bool) (Measurement, error) {
		var ops, fails atomic.Int64
		lat := make([][]time.Duration, clients)
		var errMu sync.Mutex
		var firstErr error
		var wg sync.WaitGroup
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		deadline := time.Now().Add(d)
		start := time.Now()
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(time.Now().UnixNano())))
				for time.Now().Before(deadline) && ctx.Err() == nil {
					t0 := time.Now()
					if err := o(ctx, rng); err != nil {
						fails.Add(1)
						errMu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						errMu.Unlock()
						continue
					}
					if keep {
						lat[w] = append(lat[w], time.Since(t0))
					}
					ops.Add(1)
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		runtime.ReadMemStats(&ms1)
		m := Measurement{Ops: ops.Load(), Failures: fails.Load()}
		if firstErr != nil {
			return m, fmt.Errorf("%d of %d operations failed, the first with: %w", m.Failures, m.Ops+m.Failures, firstErr)
		}
		if !keep || m.Ops == 0 {
			return m, nil
		}
		m.Throughput = float64(m.Ops) / elapsed.Seconds()
		all := slices.Concat(lat...)
		slices.Sort(all)
		m.P50 = all[len(all)/2]
		m.P99 = all[len(all)*99/100]
		m.AllocsPerOp = float64(ms1.Mallocs-ms0.Mallocs) / float64(m.Ops)
		m.BytesPerOp = float64(ms1.TotalAlloc-ms0.TotalAlloc) / float64(m.Ops)
		return m, nil
	}
	if _, err := run(warm, false); err != nil {
		return Measurement{}, err
	}
	return run(d, true)
}
