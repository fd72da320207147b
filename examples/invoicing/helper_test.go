package invoicing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/authn/authntest"
	"github.com/tenantseal/tenantseal/examples/invoicing"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/tenants"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	apiAud   = "invoicing"
	staffAud = "support-console"
)

// env is the service on its own database, served over loopback HTTP, with a loopback identity
// provider of three issuers: "customers" (names acme and globex by org_id), "globex-sso" (globex's own,
// by tid) and "staff".
type env struct {
	d                           *pgtest.Database
	svc                         *invoicing.Service
	srv                         *httptest.Server
	customers, globexSSO, staff *authntest.Issuer
	clock                       *authntest.Clock
	acme, globex                tenantseal.TenantID
	queue                       *editQueue
	jobs                        chan error
	ctx                         context.Context // of the test
	settings                    invoicing.Settings
}

// editQueue is a MemoryQueue whose jobs a test may change on the way, as a broker could.
type editQueue struct {
	*invoicing.MemoryQueue
	mu   sync.Mutex
	edit func(invoicing.Job) invoicing.Job
}

func (q *editQueue) Enqueue(ctx context.Context, j invoicing.Job) error {
	q.mu.Lock()
	if q.edit != nil {
		j = q.edit(j)
	}
	q.mu.Unlock()
	return q.MemoryQueue.Enqueue(ctx, j)
}

func (q *editQueue) setEdit(edit func(invoicing.Job) invoicing.Job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.edit = edit
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := pgtest.Context(t)
	e := &env{d: pgtest.NewDatabase(t), clock: &authntest.Clock{}, jobs: make(chan error, 16), ctx: ctx,
		queue: &editQueue{MemoryQueue: invoicing.NewMemoryQueue(16)}}
	dir := t.TempDir()
	uri, err := keys.InitLocalKEK(filepath.Join(dir, "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	owner := pgtest.Conn(t, e.d.OwnerDSN)
	admin := pgstore.NewAdmin(owner, kek)
	for _, tn := range []struct {
		name string
		id   *tenantseal.TenantID
	}{{"acme", &e.acme}, {"globex", &e.globex}} {
		created, err := tenants.Create(ctx, owner, tn.name, admin.CreateKeysetsIn)
		if err != nil {
			t.Fatal(err)
		}
		*tn.id = created.ID
	}

	idp, err := authntest.NewServer("127.0.0.1:0", authntest.Options{Issuers: []string{"customers", "globex-sso", "staff"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	e.customers, e.globexSSO, e.staff = idp.Issuer("customers"), idp.Issuer("globex-sso"), idp.Issuer("staff")
	for _, iss := range []*authntest.Issuer{e.customers, e.globexSSO, e.staff} {
		iss.Now = e.clock.Now
	}
	// The bindings live in the database, as the owner binds them; the service reads them as the app role.
	for _, b := range []struct {
		tenant        tenantseal.TenantID
		issuer, claim string
	}{{e.acme, e.customers.URL(), "org_acme"}, {e.globex, e.customers.URL(), "org_globex"}, {e.globex, e.globexSSO.URL(), "globex"}} {
		if err := tenants.Bind(ctx, owner, b.tenant, b.issuer, b.claim); err != nil {
			t.Fatal(err)
		}
	}
	envKey, err := authn.GenerateEnvelopeKey("jobs-1")
	if err != nil {
		t.Fatal(err)
	}
	e.settings = invoicing.Settings{
		AppDSN: e.d.AppDSN, AuditDSN: writerDSN(t, e.d), RolePrefix: e.d.RolePrefix(), ContextKey: e.d.ContextKey, KEK: kek,
		Issuers:     testIssuers(e.customers.URL(), e.globexSSO.URL(), e.staff.URL()),
		EnvelopeKey: envKey,
		AuditSpool:  filepath.Join(dir, "audit.spool"),
		Queue:       e.queue,
		JobDone:     func(_ invoicing.Job, err error) { e.jobs <- err },
		Now:         e.clock.Now,
	}
	e.svc, e.srv = e.serve(t, e.settings)
	return e
}

// serve starts a service of st and serves it on loopback until the test ends.
func (e *env) serve(t testing.TB, st invoicing.Settings) (*invoicing.Service, *httptest.Server) {
	t.Helper()
	svc, err := invoicing.New(e.ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return svc, srv
}

// second returns a view of e whose requests go to a second instance of the service, on the same
// database, with a queue and spool of its own.
func (e *env) second(t testing.TB) *env {
	t.Helper()
	st := e.settings
	st.Queue, st.JobDone, st.AuditSpool = invoicing.NewMemoryQueue(16), nil, filepath.Join(t.TempDir(), "audit.spool")
	other := *e
	other.svc, other.srv = e.serve(t, st)
	return &other
}

// testIssuers is the authentication configuration of the test world, as cmd/invoicing-dev has it.
func testIssuers(customers, globexSSO, staff string) []authn.Issuer {
	return []authn.Issuer{
		{URL: customers, Audiences: []string{apiAud}, TypedTokens: true,
			Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"org_id"}, Roles: authn.ClaimPath{"roles"}}},
		{URL: globexSSO, Audiences: []string{apiAud},
			Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"tid"}, Roles: authn.ClaimPath{"roles"}}},
		{URL: staff, StaffAudiences: []string{staffAud}, TypedTokens: true,
			Claims: authn.ClaimMapping{Roles: authn.ClaimPath{"roles"}}},
	}
}

// userToken is a token of a user of tenant org ("org_acme", "org_globex") from the customers issuer.
func (e *env) userToken(sub, org string, extra map[string]any) string {
	c := map[string]any{"org_id": org, "roles": []string{"clerk"}}
	for k, v := range extra {
		c[k] = v
	}
	return e.customers.Token(sub, apiAud, c)
}

// staffToken is a staff member's token with MFA and a fresh login, unless extra says otherwise.
func (e *env) staffToken(extra map[string]any) string {
	c := map[string]any{"amr": []string{"pwd", "mfa"}, "auth_time": e.clock.Now().Unix(), "roles": []string{"support"}}
	for k, v := range extra {
		c[k] = v
	}
	return e.staff.Token("sam", staffAud, c)
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// items returns the ids of a list response.
func (r response) ids(t testing.TB) []string {
	t.Helper()
	var p struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	ids := []string{}
	for _, i := range p.Items {
		ids = append(ids, i.ID)
	}
	return ids
}

// do sends a request over HTTP: body (if not nil) as JSON, header as name, value pairs.
func (e *env) do(t testing.TB, method, path, token string, body any, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// mustDo is do that requires status want and returns the decoded body.
func (e *env) mustDo(t testing.TB, want int, method, path, token string, body any, header ...string) response {
	t.Helper()
	r := e.do(t, method, path, token, body, header...)
	if r.status != want {
		t.Fatalf("%s %s: got %d %s, want %d", method, path, r.status, r.body, want)
	}
	return r
}

// events returns the audit log's entries of kind (all kinds when empty), as the auditor reads them.
func (e *env) events(t testing.TB, kind tenantseal.EventKind) []audit.Entry {
	t.Helper()
	ctx := pgtest.Context(t)
	if err := e.svc.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := audit.Query(ctx, pgtest.Conn(t, e.d.AuditorDSN), audit.Filter{Kind: kind, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// writerDSN connects as the audit writer role to d.
func writerDSN(t testing.TB, d *pgtest.Database) string {
	return pgtest.WithDatabase(pgtest.SharedCluster(t).Template.AuditWriterDSN, d.Name)
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
