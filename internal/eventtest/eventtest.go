// Package eventtest is a tenantseal.Recorder that keeps what it receives, for tests that check what a
// library records. It is a test kit: only tests import it.
package eventtest

import (
	"context"
	"sync"

	"github.com/tenantseal/tenantseal"
)

// Recorder keeps the events recorded through it, safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []tenantseal.Event
}

// Record keeps e.
func (r *Recorder) Record(_ context.Context, e tenantseal.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Take returns the events recorded since the last Take.
func (r *Recorder) Take() []tenantseal.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

// Recorded returns the events recorded so far, keeping them.
func (r *Recorder) Recorded() []tenantseal.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tenantseal.Event(nil), r.events...)
}
