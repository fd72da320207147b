package telemetry_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/internal/telemetry"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s (%v)", url, resp.Status, err)
	}
	return string(body)
}

// value returns the value of the sample of metric whose labels include every one of labels, or "".
func value(body, metric string, labels ...string) string {
	for _, line := range strings.Split(body, "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || name != metric {
			continue
		}
		lbls, v, _ := strings.Cut(rest, "} ")
		all := true
		for _, l := range labels {
			all = all && strings.Contains(","+lbls+",", ","+l+",")
		}
		if all {
			return v
		}
	}
	return ""
}

func TestServesTheLibrarysMetricsOverLoopback(t *testing.T) {
	t.Parallel()
	ctx := pgtest.Context(t)
	s, err := telemetry.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/metrics$`).MatchString(s.URL()) {
		t.Fatalf("URL: got %q, want http://127.0.0.1:<port>/metrics", s.URL())
	}

	d := pgtest.NewDatabase(t)
	acfg, err := audit.ParseConfig(d.AuditWriterDSN)
	if err != nil {
		t.Fatal(err)
	}
	acfg.SpoolPath, acfg.MeterProvider = filepath.Join(t.TempDir(), "audit.spool"), s.Provider
	w, err := audit.NewWriter(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	p := d.Pool(t, func(c *db.Config) { c.MeterProvider, c.Recorder = s.Provider, w })
	var a, b tenantseal.TenantID
	owner := pgtest.Conn(t, d.OwnerDSN)
	for _, id := range []*tenantseal.TenantID{&a, &b} {
		if err := owner.QueryRow(ctx, "INSERT INTO tenantseal.tenants (name) VALUES (gen_random_uuid()::text) RETURNING id").Scan(id); err != nil {
			t.Fatal(err)
		}
	}
	ctxA := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: a, Subject: "alice"})
	if _, err := p.Exec(ctxA, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, 'x')", b); err == nil {
		t.Fatal("cross-tenant insert succeeded")
	}
	if ok, err := w.Flush(ctx); !ok || err != nil {
		t.Fatalf("flush: %v %v", ok, err)
	}

	body := scrape(t, s.URL())
	for _, tc := range []struct {
		metric string
		labels []string
		want   string
	}{
		{"tenantseal_db_refusals_total", []string{`tenantseal_refusal="rls_violation"`, `db_response_status_code="42501"`}, "1"},
		{"tenantseal_audit_recorded_total", []string{`tenantseal_event_kind="refused_write"`}, "1"},
		{"tenantseal_audit_appended_total", nil, "1"},
		{"tenantseal_audit_queue_length", nil, "0"},
	} {
		if got := value(body, tc.metric, tc.labels...); got != tc.want {
			t.Errorf("%s%v: got %q, want %q", tc.metric, tc.labels, got, tc.want)
		}
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Error("no Go runtime metrics")
	}
	pc, err := pgconn.ParseConfig(d.AppDSN)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{a.String(), b.String(), pc.Password, hex.EncodeToString(d.ContextKey.Secret)} {
		if secret != "" && strings.Contains(body, secret) {
			t.Errorf("the metrics contain %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("scraped:\n%s", body)
	}
}
