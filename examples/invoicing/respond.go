package invoicing

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/repo"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

// badRequest is a request the service refuses as malformed (400); the text says what is wrong.
type badRequest string

func (e badRequest) Error() string { return "invoicing: " + string(e) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // a client gone away has nowhere else to be told
}

// decode reads a JSON body of at most maxBody bytes into v, refusing unknown fields, and then checks
// the tenant it names in *tenant, if any, against the token's.
func (s *Service) decode(r *http.Request, v any, tenant *string) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("the body is not the JSON object this route takes")
	}
	return s.auth.CheckTenant(r.Context(), `body field "tenant_id"`, *tenant)
}

// fail answers err: authentication and tenant refusals as authn says, the repositories' errors by
// kind, anything else as 500 with nothing of the cause (which is logged).
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var pg *pgconn.PgError
	var bad badRequest
	switch {
	case errors.Is(err, tenantseal.ErrTenantMismatch), errors.Is(err, tenantseal.ErrNoTenant),
		errors.Is(err, db.ErrElevation), errors.Is(err, authn.ErrStepUpRequired):
		s.auth.WriteError(w, err)
	case errors.Is(err, repo.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "not found")
	case errors.As(err, &bad), errors.Is(err, repo.ErrInvalidCursor), errors.Is(err, repo.ErrInvalidQuery):
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
	case errors.Is(err, repo.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "changed by someone else: read it again")
	case errors.As(err, &pg) && pg.Code == "23505":
		writeError(w, http.StatusConflict, "conflict", "a customer with this email exists")
	case errors.As(err, &pg) && (pg.Code == "25006" || pg.Code == "42501"):
		writeError(w, http.StatusForbidden, "read_only", "this request may not write")
	default:
		s.st.Logger.ErrorContext(r.Context(), "invoicing: request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
