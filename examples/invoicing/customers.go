package invoicing

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/repo"
)

// customerJSON is a customer as the API shows it: decrypted, for its own tenant only.
type customerJSON struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"display_name"`
	Email       string    `json:"email"`
	Phone       string    `json:"phone"`
	Notes       *string   `json:"notes,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

func customerOut(c reference.Customer) customerJSON {
	return customerJSON{ID: c.ID.String(), DisplayName: c.DisplayName, Email: c.Email, Phone: c.Phone, Notes: c.Notes, CreatedAt: c.CreatedAt}
}

// newCustomer is the body of POST /v1/customers. TenantID, if sent, must be the token's tenant.
type newCustomer struct {
	TenantID    string  `json:"tenant_id"`
	DisplayName string  `json:"display_name"`
	Email       string  `json:"email"`
	Phone       string  `json:"phone"`
	Notes       *string `json:"notes"`
}

// page is a page of a list and the cursor of the next.
type page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

func listOptions(r *http.Request) (repo.ListOptions, error) {
	opts := repo.ListOptions{After: r.URL.Query().Get("after")}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > repo.MaxLimit {
			return opts, badRequest("limit must be a number from 1 to " + strconv.Itoa(repo.MaxLimit))
		}
		opts.Limit = n
	}
	return opts, nil
}

func (s *Service) listCustomers(w http.ResponseWriter, r *http.Request) {
	list(s, w, r, s.customers.List, customerOut)
}

// list answers a page of a repository's list, each item shown by out.
func list[T, J any](s *Service, w http.ResponseWriter, r *http.Request,
	fetch func(context.Context, repo.ListOptions, ...repo.Cond) (repo.Page[T], error), out func(T) J) {
	opts, err := listOptions(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := fetch(r.Context(), opts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pg := page[J]{Items: make([]J, 0, len(p.Items)), Next: p.Next}
	for _, v := range p.Items {
		pg.Items = append(pg.Items, out(v))
	}
	writeJSON(w, http.StatusOK, pg)
}

func (s *Service) createCustomer(w http.ResponseWriter, r *http.Request) {
	var in newCustomer
	if err := s.decode(r, &in, &in.TenantID); err != nil {
		s.fail(w, r, err)
		return
	}
	if in.DisplayName == "" || len(in.DisplayName) > 200 || in.Email == "" {
		s.fail(w, r, badRequest("display_name (1 to 200 bytes) and email are required"))
		return
	}
	c := reference.Customer{DisplayName: in.DisplayName, Email: in.Email, Phone: in.Phone, Notes: in.Notes}
	if err := s.customers.Insert(r.Context(), &c); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, customerOut(c))
}

func (s *Service) searchCustomers(w http.ResponseWriter, r *http.Request) {
	email := r.URL.Query().Get("email")
	if email == "" {
		s.fail(w, r, badRequest("?email= is required"))
		return
	}
	c, err := s.customers.FindByEmail(r.Context(), email)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, customerOut(c))
}

func (s *Service) getCustomer(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.customers.Get(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, customerOut(c))
}

// pathID parses the {id} of the route.
func pathID(r *http.Request) (repo.ID, error) {
	id, err := repo.ParseID(r.PathValue("id"))
	if err != nil {
		return id, badRequest("the path must name an id")
	}
	return id, nil
}
