package cli_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/internal/cli"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestMetricsAddrServesTheCommandsMetrics(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	var body string
	var scrapeErr error
	opts := cli.WithMetricsScrape(cli.Options{}, func(url string) {
		resp, err := http.Get(url)
		if err != nil {
			scrapeErr = err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body, scrapeErr = string(b), err
	})
	r := mustRunWith(t, opts, "--metrics-addr", "127.0.0.1:0", "tenants", "create", "--secrets", secrets, "--name", "acme", "--no-keys")
	if scrapeErr != nil {
		t.Fatalf("scrape: %v", scrapeErr)
	}
	wantContains(t, "stderr", r.stderr, "tenantseal: serving metrics on http://127.0.0.1:")
	for _, want := range []string{
		`tenantseal_audit_recorded_total{otel_scope_name="github.com/tenantseal/tenantseal/audit",otel_scope_schema_url="",otel_scope_version="",tenantseal_event_kind="tenant_change"} 1`,
		`tenantseal_audit_appended_total{otel_scope_name="github.com/tenantseal/tenantseal/audit",otel_scope_schema_url="",otel_scope_version=""} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the metrics lack %s; got\n%s", want, body)
		}
	}
	if strings.Contains(body, "acme") {
		t.Error("the metrics name the tenant")
	}
}

func TestMetricsAddrBadInput(t *testing.T) {
	t.Parallel()
	wantFailure(t, run(t, "--metrics-addr"), 2, "--metrics-addr needs an address, such as 127.0.0.1:9464")
	wantFailure(t, run(t, "--metrics-addr="), 2, "--metrics-addr needs an address")
	wantFailure(t, run(t, "--metrics-addr", "127.0.0.1:0"), 2, "missing command")
	wantFailure(t, run(t, "--metrics-addr", "127.0.0.1:99999", "version"), 1, "--metrics-addr 127.0.0.1:99999", "metrics listener")
}
