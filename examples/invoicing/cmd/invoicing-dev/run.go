package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/metric"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/authn/authntest"
	"github.com/tenantseal/tenantseal/examples/invoicing"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/internal/telemetry"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
	"github.com/tenantseal/tenantseal/tenants"
)

// run parses the flags and serves until SIGINT or SIGTERM; exit codes 0, 1 (failure), 2 (usage).
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, args, stdout, stderr, nil)
}

// serve is run until ctx is done; ready, if set, is called with the URLs of the API, the identity
// provider and the metrics ("" without) once they serve.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(api, idp, metrics string)) int {
	f := flag.NewFlagSet("invoicing-dev", flag.ContinueOnError)
	f.SetOutput(stderr)
	addr := f.String("addr", "127.0.0.1:8080", "address of the API")
	idpAddr := f.String("idp-addr", "127.0.0.1:8081", "loopback address of the test identity provider")
	metricsAddr := f.String("metrics-addr", "127.0.0.1:9464", "address of the Prometheus metrics (/metrics), a listener apart from the API's; empty: none")
	if err := f.Parse(args); err != nil {
		return 2
	}
	if f.NArg() > 0 {
		fmt.Fprintf(stderr, "invoicing-dev: unexpected argument %q\n", f.Arg(0))
		return 2
	}
	w := &world{out: stdout, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	err := w.start(ctx, *addr, *idpAddr, *metricsAddr)
	if err == nil {
		if ready != nil {
			ready(w.apiURL, w.idp.URL(), w.metricsURL())
		}
		<-ctx.Done()
		fmt.Fprintln(stdout, "\nstopping")
	}
	if cerr := w.stop(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "invoicing-dev:", err)
		return 1
	}
	return 0
}

// world is everything the command starts, in the order stop undoes it.
type world struct {
	out     io.Writer
	log     *slog.Logger
	server  *pgtest.Server
	cluster *pgtest.Cluster
	db      *pgtest.Database
	kekDir  string
	idp     *authntest.Server
	svc     *invoicing.Service
	http    *http.Server
	served  chan error
	apiURL  string
	metrics *telemetry.Server
}

func (w *world) metricsURL() string {
	if w.metrics == nil {
		return ""
	}
	return w.metrics.URL()
}

func (w *world) start(ctx context.Context, addr, idpAddr, metricsAddr string) (err error) {
	fmt.Fprintln(w.out, "invoicing-dev: starting PostgreSQL ...")
	if w.server, err = pgtest.StartServer(ctx); err != nil {
		return err
	}
	if w.cluster, err = pgtest.NewCluster(ctx, w.server); err != nil { // roles, tenantseal's and the reference migrations
		return err
	}
	if w.db, err = w.cluster.CreateDatabase(ctx); err != nil {
		return err
	}
	if w.kekDir, err = os.MkdirTemp("", "invoicing-dev-"); err != nil {
		return err
	}
	uri, err := keys.InitLocalKEK(filepath.Join(w.kekDir, "kek.json")) // a key file in clear: development only
	if err != nil {
		return err
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		return err
	}
	if w.idp, err = authntest.NewServer(idpAddr, authntest.Options{Issuers: []string{"customers", "globex-sso", "staff"}, DevTokens: true}); err != nil {
		return err
	}
	customers, globexSSO, staff := w.idp.Issuer("customers").URL(), w.idp.Issuer("globex-sso").URL(), w.idp.Issuer("staff").URL()
	acme, globex, err := createTenants(ctx, w.db.OwnerDSN, kek, customers, globexSSO)
	if err != nil {
		return err
	}
	// The libraries use the OpenTelemetry metric API; the application installs the SDK and an
	// exporter: here Prometheus's, on a listener apart from the API's, so that the API's clients
	// cannot read the metrics.
	var meters metric.MeterProvider
	if metricsAddr != "" {
		if w.metrics, err = telemetry.Serve(metricsAddr); err != nil {
			return err
		}
		meters = w.metrics.Provider
	}
	envKey, err := authn.GenerateEnvelopeKey("jobs-1")
	if err != nil {
		return err
	}
	w.svc, err = invoicing.New(ctx, invoicing.Settings{
		AppDSN:     w.db.AppDSN,
		AuditDSN:   pgtest.WithDatabase(w.cluster.Template.AuditWriterDSN, w.db.Name),
		RolePrefix: strings.TrimSuffix(w.db.Roles.Owner, "_owner"),
		ContextKey: w.db.ContextKey,
		KEK:        kek,
		Issuers: []authn.Issuer{
			{URL: customers, Audiences: []string{"invoicing"}, TypedTokens: true,
				Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"org_id"}, Roles: authn.ClaimPath{"roles"}}},
			{URL: globexSSO, Audiences: []string{"invoicing"},
				Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"tid"}, Roles: authn.ClaimPath{"roles"}}},
			{URL: staff, StaffAudiences: []string{"support-console"}, TypedTokens: true,
				Claims: authn.ClaimMapping{Roles: authn.ClaimPath{"roles"}}},
		},
		EnvelopeKey: envKey, // Registry: the bindings in the database

		AuditSpool:    filepath.Join(w.kekDir, "audit.spool"),
		Logger:        w.log,
		MeterProvider: meters,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	w.apiURL = "http://" + ln.Addr().String()
	w.http = &http.Server{Handler: w.svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	w.served = make(chan error, 1)
	go func() { w.served <- w.http.Serve(ln) }()
	where := "the server of $TENANTSEAL_TEST_DSN"
	if w.server.Started() {
		where = w.server.Image + " in a container"
	}
	fmt.Fprintf(w.out, banner, where, w.apiURL, w.idp.URL(), acme, globex, w.apiURL, w.idp.URL(), acme, globex)
	if w.metrics != nil {
		fmt.Fprintf(w.out, "\nMetrics (Prometheus), on a listener of their own: curl -s %s | grep ^tenantseal_\n", w.metrics.URL())
	}
	return nil
}

// createTenants creates acme and globex, each with its keysets, as the owner, and binds them to the
// issuers as `tenantseal tenants bind` does: the customers issuer names both by org_id, globex's own
// identity provider (globex-sso) names globex by tid.
func createTenants(ctx context.Context, ownerDSN string, kek *keys.KEK, customers, globexSSO string) (acme, globex tenantseal.TenantID, err error) {
	owner, err := pgx.Connect(ctx, ownerDSN)
	if err != nil {
		return acme, globex, err
	}
	defer owner.Close(context.WithoutCancel(ctx))
	admin := pgstore.NewAdmin(owner, kek)
	a, err := tenants.Create(ctx, owner, "acme", admin.CreateKeysetsIn)
	if err != nil {
		return acme, globex, err
	}
	g, err := tenants.Create(ctx, owner, "globex", admin.CreateKeysetsIn)
	if err != nil {
		return acme, globex, err
	}
	for _, b := range []struct {
		tenant        tenantseal.TenantID
		issuer, claim string
	}{{a.ID, customers, "org_acme"}, {g.ID, customers, "org_globex"}, {g.ID, globexSSO, "globex"}} {
		if err := tenants.Bind(ctx, owner, b.tenant, b.issuer, b.claim); err != nil {
			return acme, globex, err
		}
	}
	return a.ID, g.ID, nil
}

// stop undoes what start did, as far as it got.
func (w *world) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if w.http != nil {
		errs = append(errs, w.http.Shutdown(ctx))
		if err := <-w.served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if w.svc != nil {
		errs = append(errs, w.showAudit(ctx), w.svc.Close(ctx))
	}
	if w.metrics != nil {
		errs = append(errs, w.metrics.Close(ctx))
	}
	if w.idp != nil {
		errs = append(errs, w.idp.Close())
	}
	if w.kekDir != "" {
		errs = append(errs, os.RemoveAll(w.kekDir))
	}
	if w.cluster != nil && !w.server.Started() {
		errs = append(errs, w.cluster.Close(ctx)) // someone else's server: drop what we made there
	}
	if w.server != nil {
		errs = append(errs, w.server.Stop(ctx))
	}
	return errors.Join(errs...)
}

// showAudit prints the end of the audit log, as the auditor role reads it.
func (w *world) showAudit(ctx context.Context) error {
	if err := w.svc.FlushAudit(ctx); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, w.db.AuditorDSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	entries, head, err := audit.Tail(ctx, conn, audit.Filter{}, 30)
	if err != nil {
		return err
	}
	fmt.Fprintf(w.out, "\nthe audit log's last %d of %d entries:\n", len(entries), head)
	for _, e := range entries {
		fmt.Fprintf(w.out, "  %4d %-17s tenant %-36s %s: %s\n", e.Seq, e.Kind, deref(e.TenantID), deref(e.Subject), deref(e.Detail))
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

const banner = `invoicing-dev: serving, on %s

  API                 %s
  identity provider   %s  (issuers customers, globex-sso, staff; tokens minted at <issuer>/dev-token)
  tenants             acme %s, globex %s

Paste into a shell:

  export API=%s IDP=%s ACME=%s GLOBEX=%s

  # alice works at acme: the customers issuer names acme by org_id "org_acme"
  ALICE=$(curl -s $IDP/customers/dev-token -d sub=alice -d aud=invoicing -d org_id=org_acme -d 'roles[]=clerk')
  curl -s $API/v1/customers -H "Authorization: Bearer $ALICE" \
    -d '{"display_name": "Ada Lovelace", "email": "Ada@Example.com", "phone": "+44 20 7946 0001"}'
  curl -s "$API/v1/customers/search?email=ada@example.com" -H "Authorization: Bearer $ALICE"

  # bob works at globex: he sees none of acme's customers, and may not name acme
  BOB=$(curl -s $IDP/customers/dev-token -d sub=bob -d aud=invoicing -d org_id=org_globex)
  curl -s $API/v1/customers -H "Authorization: Bearer $BOB"
  curl -si "$API/v1/customers?tenant=$ACME" -H "Authorization: Bearer $BOB"        # 403, recorded

  # globex's own identity provider may speak for globex, never for acme
  EVE=$(curl -s $IDP/globex-sso/dev-token -d sub=eve -d aud=invoicing -d tid=org_acme)
  curl -si $API/v1/customers -H "Authorization: Bearer $EVE"                       # 401 invalid_token

  # support staff: a fresh login with MFA for every elevated, read-only, recorded request
  SAM=$(curl -s $IDP/staff/dev-token -d sub=sam -d aud=support-console -d 'roles[]=support' \
    -d 'amr[]=pwd' -d 'amr[]=mfa' -d auth_time=now)
  curl -s $API/admin/tenants/$ACME/v1/customers -H "Authorization: Bearer $SAM" \
    -H 'X-Elevation-Reason: ticket 4711: invoice totals look wrong'
  curl -si $API/admin/tenants/$ACME/v1/customers -H "Authorization: Bearer $SAM" \
    -H 'X-Elevation-Reason: ticket 4711'                                            # 401: token spent

Ctrl-C stops it, shows the end of the audit log and removes the database.
`
