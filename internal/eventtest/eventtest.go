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

// TakeKind returns the events of kind k recorded since they were last taken, keeping the others.
func (r *Recorder) TakeKind(k tenantseal.EventKind) []tenantseal.Event {
	return r.takeIf(func(e tenantseal.Event) bool { return e.Kind == k })
}

// TakeExcept returns the events of kinds other than k recorded since they were last taken, keeping
// those of kind k: a test of refusals sets aside the keyset unwraps that every cache miss records.
func (r *Recorder) TakeExcept(k tenantseal.EventKind) []tenantseal.Event {
	return r.takeIf(func(e tenantseal.Event) bool { return e.Kind != k })
}

func (r *Recorder) takeIf(take func(tenantseal.Event) bool) []tenantseal.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var taken, kept []tenantseal.Event
	for _, e := range r.events {
		if take(e) {
			taken = append(taken, e)
		} else {
			kept = append(kept, e)
		}
	}
	r.events = kept
	return taken
}
