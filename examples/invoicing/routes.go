package invoicing

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
)

// ReasonHeader carries the reason of a staff request, recorded with every statement it runs.
const ReasonHeader = "X-Elevation-Reason"

// routes builds the handler: the tenant API behind the authentication middleware, and the same API for
// staff, elevated per request into the tenant of the path.
func (s *Service) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /v1/customers", s.listCustomers)
	api.HandleFunc("POST /v1/customers", s.createCustomer)
	api.HandleFunc("GET /v1/customers/search", s.searchCustomers)
	api.HandleFunc("GET /v1/customers/{id}", s.getCustomer)
	api.HandleFunc("GET /v1/invoices", s.listInvoices)
	api.HandleFunc("POST /v1/invoices", s.createInvoice)
	api.HandleFunc("GET /v1/invoices/{id}", s.getInvoice)
	api.HandleFunc("POST /v1/invoices/{id}/issue", s.issueInvoice)

	staff := s.auth.StaffMiddleware(s.auth.StepUp(s.pool, s.st.ElevationTTL, staffTarget)(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.StripPrefix("/admin/tenants/"+r.PathValue("tenant"), api).ServeHTTP(w, r)
		})))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("/v1/", s.auth.Middleware(api))
	mux.Handle("/admin/tenants/{tenant}/v1/", staff)
	return withRequestID(mux)
}

// staffTarget reads the tenant of a staff request from its path and the reason from ReasonHeader.
func staffTarget(r *http.Request) (tenantseal.TenantID, string, error) {
	tenant, err := tenantseal.ParseTenantID(r.PathValue("tenant"))
	if err != nil {
		return tenant, "", errors.New("invoicing: the path must name a tenant id")
	}
	reason := strings.TrimSpace(r.Header.Get(ReasonHeader))
	if reason == "" {
		return tenant, "", errors.New("invoicing: staff requests need a reason in the " + ReasonHeader + " header")
	}
	return tenant, reason, nil
}

// withRequestID gives each request an id, in the X-Request-ID response header and in every audit event
// recorded while serving it. A client's own X-Request-ID is not trusted for it.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 8)
		rand.Read(b)
		id := hex.EncodeToString(b)
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(audit.WithRequestID(r.Context(), id)))
	})
}
