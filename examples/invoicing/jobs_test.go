package invoicing_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/examples/invoicing"
)

// A background job runs as the tenant that enqueued it; a job whose envelope was tampered with, or
// moved to another job, runs as nobody and is recorded.
func TestJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.userToken("alice", "org_acme", nil)
	bob := e.userToken("bob", "org_globex", nil)
	_, aInv := e.seed(t, alice, "ada")
	_, bInv := e.seed(t, bob, "bea")

	e.mustDo(t, 202, "POST", "/v1/invoices/"+aInv+"/issue", alice, nil)
	if err := <-e.jobs; err != nil {
		t.Fatalf("the job: %v", err)
	}
	if got := e.mustDo(t, 200, "GET", "/v1/invoices/"+aInv, alice, nil).json(t); got["status"] != "issued" || got["issued_at"] == nil {
		t.Errorf("acme's invoice after the job: got %v, want issued", got)
	}

	tests := []struct {
		name string
		edit func(invoicing.Job) invoicing.Job
	}{
		{"the envelope's tenant swapped", func(j invoicing.Job) invoicing.Job {
			parts := strings.Split(j.Envelope, ".")
			claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), e.globex.String(), e.acme.String(), 1)))
			j.Envelope = strings.Join(parts, ".")
			return j
		}},
		{"bob's envelope on a job naming acme's invoice", func(j invoicing.Job) invoicing.Job {
			j.Payload = []byte(strings.Replace(string(j.Payload), bInv, aInv, 1))
			return j
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.queue.setEdit(tc.edit)
			defer e.queue.setEdit(nil)
			e.mustDo(t, 202, "POST", "/v1/invoices/"+bInv+"/issue", bob, nil)
			if err := <-e.jobs; !errors.Is(err, authn.ErrEnvelope) {
				t.Fatalf("the job: got %v, want ErrEnvelope", err)
			}
			if got := e.mustDo(t, 200, "GET", "/v1/invoices/"+bInv, bob, nil).json(t); got["status"] != "draft" {
				t.Errorf("globex's invoice: got status %v, want draft", got["status"])
			}
		})
	}
	refused := e.events(t, tenantseal.EventEnvelopeRefused)
	if len(refused) != 2 {
		t.Fatalf("got %d envelope_refused events, want 2", len(refused))
	}
	if d := str(refused[1].Detail); !strings.Contains(d, "sealed for another job") || str(refused[1].TargetTenant) != e.globex.String() {
		t.Errorf("got %+v, want the moved envelope refused, naming globex", refused[1])
	}
}
