package audit_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// The server is stopped twice while the writer appends batches, then restarted: every event recorded
// meanwhile reaches the log, in order, and the chain verifies. (Kill and restart are in the
// integration package's fault tests.)
func TestNoEventLostWhenTheServerStopsAndRestarts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srv, err := pgtest.StartFaultServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })
	cluster, err := pgtest.NewCluster(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	d, err := cluster.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := mustWriter(t, d, func(c *audit.Config) {
		c.BatchSize = 16
		c.MaxBlock = time.Minute // this test is about loss, not about drops
		c.WriteTimeout = 2 * time.Second
	})
	pctx := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenantseal.TenantIDFromUUID([16]byte{9}), Subject: "s"})

	// A recorder that never stops while the server goes away and comes back.
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			w.Record(pctx, tenantseal.Event{Kind: "foreign_id", RowKey: fmt.Sprint(n.Add(1))})
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for _, fault := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"stop", func(ctx context.Context) error { return srv.Halt(ctx, 10*time.Second) }},
		{"stop again", func(ctx context.Context) error { return srv.Halt(ctx, 10*time.Second) }},
	} {
		time.Sleep(300 * time.Millisecond) // batches in flight
		if err := fault.do(ctx); err != nil {
			t.Fatalf("%s: %v", fault.name, err)
		}
		time.Sleep(500 * time.Millisecond) // events recorded while the server is down
		if err := srv.Restart(ctx); err != nil {
			t.Logf("server log: %s", srv.LogTail(context.Background()))
			t.Fatalf("restart after %s: %v", fault.name, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	recorded := n.Load()

	mustFlushWithin(t, w, 60*time.Second, "after the restart")
	auditor := pgtest.Conn(t, d.AuditorDSN)
	seen := map[string]int{}
	after := int64(0)
	last := 0
	for {
		page, err := audit.Query(ctx, auditor, audit.Filter{AfterSeq: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			k := str(e.RowKey)
			seen[k]++
			var i int
			fmt.Sscan(k, &i)
			if seen[k] == 1 && i < last {
				t.Errorf("event %d stored after event %d: order not kept", i, last)
			}
			if seen[k] == 1 {
				last = i
			}
			after = e.Seq
		}
	}
	var missing, dup int
	for i := int64(1); i <= recorded; i++ {
		switch seen[fmt.Sprint(i)] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events lost across two stops", missing, recorded)
	}
	// A batch whose commit reached the disk but whose answer was lost is appended again from the spool:
	// the database skips the event ids it already holds.
	if dup > 0 {
		t.Errorf("%d of %d events stored twice", dup, recorded)
	}
	t.Logf("%d events recorded, stats %+v", recorded, w.Stats())
	res, err := audit.Verify(ctx, auditor)
	if err != nil || res.Break != nil {
		t.Errorf("verify after the faults: %+v (%v)", res, err)
	}
	if st := w.Stats(); st.Spooled == 0 || st.Replayed == 0 {
		t.Errorf("got %+v: the faults never made the writer spool and replay", st)
	}
}
