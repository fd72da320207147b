package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Alert reports a burst of cross-tenant attempts from one source.
type Alert struct {
	// Key names the source: "principal:<tenant>/<subject>" or "tenant:<tenant>".
	Key    string
	Count  int
	Window time.Duration
	// Kinds counts the burst's events by kind.
	Kinds map[string]int
	At    time.Time
}

// Alerter receives alerts. It is called on the recording goroutine: return quickly.
type Alerter interface {
	Alert(ctx context.Context, a Alert)
}

// LogAlerter logs alerts at ERROR. It is the default.
type LogAlerter struct{ Logger *slog.Logger }

// Alert logs a.
func (l LogAlerter) Alert(ctx context.Context, a Alert) {
	l.Logger.ErrorContext(ctx, "tenantseal audit: cross-tenant attempts above threshold",
		"source", a.Key, "count", a.Count, "window", a.Window.String(), "kinds", a.Kinds)
}

// DetectorConfig configures a [Detector].
type DetectorConfig struct {
	// Threshold: an alert fires when a source produces more than this many events within Window.
	// Default 5.
	Threshold int
	// Window is the sliding window. Default 60 s.
	Window time.Duration
	// Alerter receives alerts. Default LogAlerter with Logger.
	Alerter Alerter
	// Logger for the default alerter. Default slog.Default().
	Logger *slog.Logger
	// MaxSources bounds the sources tracked at once; the stalest is forgotten. Default 10000.
	MaxSources int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Detector counts cross-tenant events per principal and per source tenant in a sliding window and
// raises an alert when a source exceeds the threshold: once per burst, re-armed when the source's
// count falls back to the threshold or below. Only attempts are counted (tenantseal.EventKind.Attempt):
// not elevations, operators' actions, keyset unwraps nor schema changes.
type Detector struct {
	cfg     DetectorConfig
	mu      sync.Mutex
	sources map[string]*source
}

type source struct {
	events []timedKind
	fired  bool
	last   time.Time
}

type timedKind struct {
	at   time.Time
	kind string
}

// NewDetector returns a Detector.
func NewDetector(cfg DetectorConfig) *Detector {
	setDefault(&cfg.Threshold, 5)
	setDefault(&cfg.Window, 60*time.Second)
	setDefault(&cfg.MaxSources, 10000)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Alerter == nil {
		cfg.Alerter = LogAlerter{Logger: cfg.Logger}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Detector{cfg: cfg, sources: map[string]*source{}}
}

// Observe counts an event.
func (d *Detector) Observe(ctx context.Context, en Entry) {
	// A lookup miss is no attempt until the database found the id to be another tenant's: the writer
	// observes it again, as a foreign id, then.
	if !en.Kind.Attempt() {
		return
	}
	var keys []string
	tenant := deref(en.TenantID)
	if en.Subject != nil || en.TenantID != nil {
		keys = append(keys, "principal:"+tenant+"/"+deref(en.Subject))
	}
	if tenant != "" {
		keys = append(keys, "tenant:"+tenant)
	}
	if len(keys) == 0 {
		keys = append(keys, "anonymous")
	}
	now := d.cfg.Now()
	var alerts []Alert
	d.mu.Lock()
	for _, k := range keys {
		if a, ok := d.observe(k, string(en.Kind), now); ok {
			alerts = append(alerts, a)
		}
	}
	d.mu.Unlock()
	for _, a := range alerts {
		d.cfg.Alerter.Alert(ctx, a)
	}
}

func (d *Detector) observe(key, kind string, now time.Time) (Alert, bool) {
	s, ok := d.sources[key]
	if !ok {
		if len(d.sources) >= d.cfg.MaxSources {
			d.evictStalest()
		}
		s = &source{}
		d.sources[key] = s
	}
	cut := now.Add(-d.cfg.Window)
	i := 0
	for i < len(s.events) && !s.events[i].at.After(cut) {
		i++
	}
	s.events = append(s.events[i:], timedKind{now, kind})
	s.last = now
	n := len(s.events)
	if n <= d.cfg.Threshold {
		s.fired = false
		return Alert{}, false
	}
	if s.fired {
		return Alert{}, false
	}
	s.fired = true
	kinds := map[string]int{}
	for _, e := range s.events {
		kinds[e.kind]++
	}
	return Alert{Key: key, Count: n, Window: d.cfg.Window, Kinds: kinds, At: now}, true
}

func (d *Detector) evictStalest() {
	var stalest string
	var at time.Time
	for k, s := range d.sources {
		if stalest == "" || s.last.Before(at) {
			stalest, at = k, s.last
		}
	}
	delete(d.sources, stalest)
}
