package authn

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
)

// BurstConfig configures alerts on bursts of refusals from one source.
type BurstConfig struct {
	// Threshold: an alert fires when one source is refused more than this many times within one
	// Window. Default 20.
	Threshold int
	// Window is the counting window. Default one minute.
	Window time.Duration
	// MaxSources bounds the sources counted at once; when full, those whose window has passed are
	// forgotten, then any. Default 10000.
	MaxSources int
	// Alerter receives the alerts, the same type audit.Detector raises, with Key "source:<source>".
	// Default audit.LogAlerter with Config.Logger.
	Alerter audit.Alerter
}

func (c BurstConfig) withDefaults(log *slog.Logger) BurstConfig {
	setDefault(&c.Threshold, 20)
	setDefault(&c.Window, time.Minute)
	setDefault(&c.MaxSources, 10000)
	if c.Alerter == nil {
		c.Alerter = audit.LogAlerter{Logger: log}
	}
	return c
}

// bursts counts refusals per source in fixed windows. Unlike audit.Detector, which keeps every event
// of a window per principal, it keeps one counter per source: refusals come before any principal is
// known, and a flood of them from one address must not grow memory with its size.
type bursts struct {
	cfg     BurstConfig
	now     func() time.Time
	mu      sync.Mutex
	sources map[string]*window
	swept   time.Time
}

type window struct {
	start time.Time
	n     int
	kinds map[string]int
	fired bool
}

func newBursts(cfg BurstConfig, now func() time.Time) *bursts {
	return &bursts{cfg: cfg, now: now, sources: map[string]*window{}}
}

// observe counts one refusal of source and alerts once per window when the count passes the threshold.
func (b *bursts) observe(ctx context.Context, source string, kind tenantseal.EventKind) {
	now := b.now()
	b.mu.Lock()
	w, ok := b.sources[source]
	if !ok || now.Sub(w.start) >= b.cfg.Window {
		if !ok && len(b.sources) >= b.cfg.MaxSources {
			b.evict(now)
		}
		w = &window{start: now, kinds: map[string]int{}}
		b.sources[source] = w
	}
	w.n++
	w.kinds[string(kind)]++
	var alert *audit.Alert
	if w.n > b.cfg.Threshold && !w.fired {
		w.fired = true
		kinds := make(map[string]int, len(w.kinds))
		for k, n := range w.kinds {
			kinds[k] = n
		}
		alert = &audit.Alert{Key: "source:" + source, Count: w.n, Window: b.cfg.Window, Kinds: kinds, At: now}
	}
	b.mu.Unlock()
	if alert != nil {
		b.cfg.Alerter.Alert(ctx, *alert)
	}
}

// evict forgets the sources whose window has passed, at most once per window, and then sources at
// random until there is room; b.mu is held. A flood from ever new addresses costs one map deletion
// per refusal, not a scan.
func (b *bursts) evict(now time.Time) {
	if now.Sub(b.swept) >= b.cfg.Window {
		b.swept = now
		for k, w := range b.sources {
			if now.Sub(w.start) >= b.cfg.Window {
				delete(b.sources, k)
			}
		}
	}
	for k := range b.sources {
		if len(b.sources) < b.cfg.MaxSources {
			return
		}
		delete(b.sources, k)
	}
}
