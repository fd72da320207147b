// Package telemetry serves tenantseal's OpenTelemetry metrics to Prometheus: the SDK's meter provider
// with the Prometheus exporter, and an HTTP listener of its own for /metrics. The library packages use
// the metric API only; the tenantseal CLI (--metrics-addr) and the examples install this.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Path is where a Server serves the metrics.
const Path = "/metrics"

// Server serves the metrics of its Provider, and the Go runtime's and the process's, in the Prometheus
// text format.
type Server struct {
	// Provider is the meter provider to give to db.Config, audit.Config, keys.Config and authn.Config.
	Provider *sdkmetric.MeterProvider
	ln       net.Listener
	http     *http.Server
	served   chan error
}

// Serve listens on addr (host:port; port 0 picks a free one) and serves Path there until Close. Give
// it a loopback address, or one that only the metrics scraper reaches: the metrics name no tenant and
// no secret, but they tell the volume of refusals and events.
func Serve(addr string) (*Server, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("telemetry: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s := &Server{Provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)), ln: ln,
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, served: make(chan error, 1)}
	go func() { s.served <- s.http.Serve(ln) }()
	return s, nil
}

// URL is the address of the metrics, http://host:port/metrics.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + Path }

// Close stops serving, waiting for scrapes in flight until ctx is done, and shuts the provider down.
func (s *Server) Close(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, s.Provider.Shutdown(ctx))
}
