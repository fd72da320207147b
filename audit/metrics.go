package audit

import (
	"errors"
	"fmt"

	"github.com/tenantseal/tenantseal"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the instrumentation scope of the writer's instruments.
const MeterName = "github.com/tenantseal/tenantseal/audit"

// AttrKind is the attribute of tenantseal.audit.recorded: the event's kind, one of
// tenantseal.EventKinds, or "other" for a kind of the application's own, so that the number of series
// stays bounded. Stats.ByKind has every kind as recorded.
const AttrKind = attribute.Key("tenantseal.event.kind")

// meters are the writer's instruments, one per figure of [Stats], and the queue's length.
type meters struct {
	recorded, appended, spooled, replayed, dropped metric.Int64Counter
	lockTimeouts, checkpoints, checkpointFailures  metric.Int64Counter
	queued                                         metric.Int64UpDownCounter
}

func newMeters(mp metric.MeterProvider) (*meters, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(MeterName)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	ms := &meters{
		recorded:           counter("tenantseal.audit.recorded", "{event}", "Events recorded, by kind."),
		appended:           counter("tenantseal.audit.appended", "{event}", "Events appended to the audit log."),
		spooled:            counter("tenantseal.audit.spooled", "{event}", "Events written to the spool while the database could not take them."),
		replayed:           counter("tenantseal.audit.replayed", "{event}", "Spooled events appended to the audit log."),
		dropped:            counter("tenantseal.audit.dropped", "{event}", "Events dropped because the queue stayed full."),
		lockTimeouts:       counter("tenantseal.audit.lock_timeouts", "{append}", "Appends that gave up waiting for the chain head."),
		checkpoints:        counter("tenantseal.audit.checkpoints", "{checkpoint}", "Checkpoints signed and published."),
		checkpointFailures: counter("tenantseal.audit.checkpoint_failures", "{checkpoint}", "Checkpoints that failed to be signed or published."),
	}
	var err error
	ms.queued, err = m.Int64UpDownCounter("tenantseal.audit.queue_length", metric.WithUnit("{event}"),
		metric.WithDescription("Events queued and not yet appended or spooled."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("audit: metrics: %w", err)
	}
	return ms, nil
}

// kindAttrs are the attribute sets of the kinds, built once: Record should not allocate one per event.
var kindAttrs = func() map[tenantseal.EventKind]metric.AddOption {
	m := map[tenantseal.EventKind]metric.AddOption{}
	for _, k := range append(tenantseal.EventKinds(), "other") {
		m[k] = metric.WithAttributes(AttrKind.String(string(k)))
	}
	return m
}()

// kindAttr is the attribute set of an event's kind.
func kindAttr(kind tenantseal.EventKind) metric.AddOption {
	if a, ok := kindAttrs[kind]; ok {
		return a
	}
	return kindAttrs["other"]
}

// add is Add on the writer's own context: the counters move whatever the caller's context says.
func (w *Writer) add(c metric.Int64Counter, n int) { c.Add(w.base, int64(n)) }

func (w *Writer) queueDelta(n int64) { w.m.queued.Add(w.base, n) }
