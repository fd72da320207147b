// Package metrictest reads what instruments recorded, for tests: a meter provider of the OpenTelemetry
// SDK with a manual reader. The product never imports it.
package metrictest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Reader is a meter provider whose measurements a test collects on demand.
type Reader struct {
	// Provider is the meter provider to give to the code under test.
	Provider *sdkmetric.MeterProvider
	reader   *sdkmetric.ManualReader
}

// New returns a Reader, shut down when the test ends.
func New(t testing.TB) *Reader {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return &Reader{Provider: mp, reader: r}
}

// Point is one data point of an integer sum (a counter or up-down counter).
type Point struct {
	Metric string
	Attrs  attribute.Set
	Value  int64
}

// Points collects every integer sum's data points now.
func (r *Reader) Points(t testing.TB) []Point {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	var out []Point
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					out = append(out, Point{Metric: m.Name, Attrs: dp.Attributes, Value: dp.Value})
				}
			}
		}
	}
	return out
}

// Sum adds up the data points of metric name that carry every one of attrs (and any others).
func (r *Reader) Sum(t testing.TB, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	var n int64
	for _, p := range r.Points(t) {
		if p.Metric == name && has(p.Attrs, attrs) {
			n += p.Value
		}
	}
	return n
}

func has(set attribute.Set, attrs []attribute.KeyValue) bool {
	for _, a := range attrs {
		if v, ok := set.Value(a.Key); !ok || v != a.Value {
			return false
		}
	}
	return true
}

// WantNoValue fails the test for every attribute of a data point whose value is one of values: the
// tenant ids, subjects and secrets that no instrument may carry.
func (r *Reader) WantNoValue(t testing.TB, values ...string) {
	t.Helper()
	for _, p := range r.Points(t) {
		for _, kv := range p.Attrs.ToSlice() {
			for _, v := range values {
				if kv.Value.String() == v {
					t.Errorf("%s carries %q in %s", p.Metric, v, kv.Key)
				}
			}
		}
	}
}
