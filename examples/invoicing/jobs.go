package invoicing

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/repo"
)

// Job is a unit of background work and the envelope of the Principal that enqueued it.
type Job struct {
	Payload  []byte // JSON, e.g. {"kind": "issue_invoice", "invoice_id": "..."}
	Envelope string // authn.Sealer.Seal of the enqueuing request, bound to Payload
}

// Queue carries jobs from requests to the worker. A real service puts its broker behind it; the
// envelope travels with the job, so the worker needs to trust neither the broker nor the payload.
type Queue interface {
	// Enqueue adds j, or fails.
	Enqueue(ctx context.Context, j Job) error
	// Dequeue waits for the next job until ctx is done.
	Dequeue(ctx context.Context) (Job, error)
}

// MemoryQueue is a [Queue] in memory, for the example and tests.
type MemoryQueue struct{ jobs chan Job }

// ErrQueueFull means a MemoryQueue had no room for a job. Use errors.Is.
var ErrQueueFull = errors.New("invoicing: job queue full")

// NewMemoryQueue returns a queue of at most size jobs.
func NewMemoryQueue(size int) *MemoryQueue { return &MemoryQueue{jobs: make(chan Job, size)} }

// Enqueue implements [Queue]; it never waits.
func (q *MemoryQueue) Enqueue(_ context.Context, j Job) error {
	select {
	case q.jobs <- j:
		return nil
	default:
		return ErrQueueFull
	}
}

// Dequeue implements [Queue].
func (q *MemoryQueue) Dequeue(ctx context.Context) (Job, error) {
	select {
	case j := <-q.jobs:
		return j, nil
	case <-ctx.Done():
		return Job{}, ctx.Err()
	}
}

const jobIssueInvoice = "issue_invoice"

type issueJob struct {
	Kind      string `json:"kind"`
	InvoiceID string `json:"invoice_id"`
}

// work runs jobs until ctx is done.
func (s *Service) work(ctx context.Context) {
	defer s.worker.Done()
	for {
		j, err := s.st.Queue.Dequeue(ctx)
		if err != nil {
			return
		}
		err = s.run(ctx, j)
		if err != nil {
			s.st.Logger.ErrorContext(ctx, "invoicing: job failed", "error", err)
		}
		if s.st.JobDone != nil {
			s.st.JobDone(j, err)
		}
	}
}

// run opens the job's envelope and runs the job as the Principal it sealed: the worker's context has
// none of its own, so a job without a valid envelope reads and writes nothing.
func (s *Service) run(ctx context.Context, j Job) error {
	ctx, err := s.sealer.Open(ctx, j.Envelope, j.Payload)
	if err != nil {
		return err
	}
	var job issueJob
	if err := json.Unmarshal(j.Payload, &job); err != nil || job.Kind != jobIssueInvoice {
		return errors.New("invoicing: job payload of unknown kind")
	}
	id, err := repo.ParseID(job.InvoiceID)
	if err != nil {
		return err
	}
	inv, err := s.invoices.Get(ctx, id)
	if err != nil {
		return err
	}
	if inv.Status != reference.StatusDraft {
		return nil // issued already: a retried job changes nothing
	}
	now := time.Now().UTC()
	inv.Status, inv.IssuedAt = reference.StatusIssued, &now
	return s.invoices.Update(ctx, &inv)
}
