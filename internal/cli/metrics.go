package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal/internal/telemetry"
)

// metricsFlag serves the metrics of the libraries a command runs (its pool, audit writer and keyring)
// while it runs. It comes before the command name, as it applies to every command.
const metricsFlag = "metrics-addr"

// metricsShutdown bounds how long the metrics server waits for a scrape in flight at the end.
const metricsShutdown = 2 * time.Second

// globalFlags takes the flags before the command name off args: --metrics-addr ADDR (or =ADDR, or with
// one dash).
func globalFlags(args []string) (metricsAddr string, rest []string, err error) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if name != metricsFlag {
			break
		}
		args = args[1:]
		if !hasVal {
			if len(args) == 0 {
				return "", nil, usageErrorf("--%s needs an address, such as 127.0.0.1:9464", metricsFlag)
			}
			val, args = args[0], args[1:]
		}
		if val == "" {
			return "", nil, usageErrorf("--%s needs an address, such as 127.0.0.1:9464", metricsFlag)
		}
		metricsAddr = val
	}
	return metricsAddr, args, nil
}

// serveMetrics starts the Prometheus endpoint at addr and gives its meter provider to the session; the
// returned func stops it.
func (s *session) serveMetrics(addr string) (stop func(), err error) {
	srv, err := telemetry.Serve(addr)
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", metricsFlag, addr, err)
	}
	s.meters = srv.Provider
	fmt.Fprintf(s.stderr, "tenantseal: serving metrics on %s\n", srv.URL())
	return func() {
		if s.opts.beforeMetricsStop != nil {
			s.opts.beforeMetricsStop(srv.URL())
		}
		ctx, cancel := context.WithTimeout(context.Background(), metricsShutdown)
		defer cancel()
		_ = srv.Close(ctx)
	}, nil
}
