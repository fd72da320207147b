package invoicing

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/repo"
)

// invoiceJSON is an invoice as the API shows it.
type invoiceJSON struct {
	ID          string        `json:"id"`
	CustomerID  string        `json:"customer_id"`
	AmountMinor int64         `json:"amount_minor"`
	Currency    string        `json:"currency"`
	Status      string        `json:"status"`
	Memo        *string       `json:"memo,omitempty"`
	IssuedAt    *time.Time    `json:"issued_at,omitempty"`
	Customer    *customerJSON `json:"customer,omitempty"`
}

func invoiceOut(i reference.Invoice) invoiceJSON {
	return invoiceJSON{ID: i.ID.String(), CustomerID: i.CustomerID.String(), AmountMinor: i.AmountMinor,
		Currency: i.Currency, Status: i.Status, Memo: i.Memo, IssuedAt: i.IssuedAt}
}

// newInvoice is the body of POST /v1/invoices. TenantID, if sent, must be the token's tenant.
type newInvoice struct {
	TenantID    string  `json:"tenant_id"`
	CustomerID  string  `json:"customer_id"`
	AmountMinor int64   `json:"amount_minor"`
	Currency    string  `json:"currency"`
	Memo        *string `json:"memo"`
}

func (s *Service) listInvoices(w http.ResponseWriter, r *http.Request) {
	fetch := s.invoices.List
	if status := r.URL.Query().Get("status"); status != "" {
		fetch = func(ctx context.Context, opts repo.ListOptions, _ ...repo.Cond) (repo.Page[reference.Invoice], error) {
			return s.invoices.ByStatus(ctx, status, opts)
		}
	}
	list(s, w, r, fetch, invoiceOut)
}

func (s *Service) createInvoice(w http.ResponseWriter, r *http.Request) {
	var in newInvoice
	if err := s.decode(r, &in, &in.TenantID); err != nil {
		s.fail(w, r, err)
		return
	}
	customer, err := repo.ParseID(in.CustomerID)
	if err != nil || in.AmountMinor < 0 || !isCurrency(in.Currency) {
		s.fail(w, r, badRequest("customer_id (an id), amount_minor (0 or more) and currency (3 capital letters) are required"))
		return
	}
	// Asked first, so that another tenant's customer id is "not found", and recorded, not a key error.
	if _, err := s.customers.Get(r.Context(), customer); err != nil {
		s.fail(w, r, err)
		return
	}
	inv := reference.Invoice{CustomerID: customer, AmountMinor: in.AmountMinor, Currency: in.Currency,
		Status: reference.StatusDraft, Memo: in.Memo}
	if err := s.invoices.Insert(r.Context(), &inv); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, invoiceOut(inv))
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range []byte(s) {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func (s *Service) getInvoice(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ic, err := s.invoices.GetWithCustomer(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out, c := invoiceOut(ic.Invoice), customerOut(ic.Customer)
	out.Customer = &c
	writeJSON(w, http.StatusOK, out)
}

// issueInvoice queues a job that issues a draft invoice, sealed with the caller's Principal: the worker
// issues it as the caller's tenant, or not at all.
func (s *Service) issueInvoice(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.invoices.Get(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	payload, _ := json.Marshal(issueJob{Kind: jobIssueInvoice, InvoiceID: id.String()}) // strings always marshal
	env, err := s.sealer.Seal(r.Context(), payload)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.st.Queue.Enqueue(r.Context(), Job{Payload: payload, Envelope: env}); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "queued", "invoice_id": id.String()})
}
