package audit_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// BenchmarkWriterThroughput appends events through the writer with the database up: events/s. Record
// may wait as long as it takes for room, so the loop runs at the writer's pace and nothing is dropped.
func BenchmarkWriterThroughput(b *testing.B) {
	d := pgtest.NewDatabase(b)
	w := mustWriter(b, d, func(c *audit.Config) { c.QueueSize = 1 << 12; c.MaxBlock = time.Minute })
	ctx := tenantseal.WithPrincipal(context.Background(), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{1}), Subject: "bench"})
	ev := tenantseal.Event{Kind: "foreign_id", Table: "customers", Operation: "get", RowKey: "01a22233-cecc-7d47-845e-6816142fed58"}
	start := time.Now()
	n := 0
	for b.Loop() {
		w.Record(ctx, ev)
		n++
	}
	if ok, err := w.Flush(context.Background()); !ok || err != nil {
		b.Fatalf("flush: %v %v", ok, err)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	if st := w.Stats(); st.Dropped != 0 {
		b.Fatalf("dropped %d events", st.Dropped)
	}
}

// BenchmarkRecordLatencySaturated measures what Record adds to a request while the writer cannot keep
// up (a small queue that is always full): p50 and p99 of one call, bounded by MaxBlock.
func BenchmarkRecordLatencySaturated(b *testing.B) {
	d := pgtest.NewDatabase(b)
	w := mustWriter(b, d, func(c *audit.Config) { c.QueueSize = 8; c.BatchSize = 8 })
	ctx := tenantseal.WithPrincipal(context.Background(), tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{1}), Subject: "bench"})
	ev := tenantseal.Event{Kind: "foreign_id", Table: "customers"}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		w.Record(ctx, ev)
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(w.Stats().Dropped)/float64(len(lat))*100, "%dropped")
}
