// Package isolationtest runs the isolation suite from Go tests: each case and target becomes a subtest
// that fails on a leak or an error. It lives in its own package so that "testing" stays a test
// dependency: the product, and the tenantseal binary, import only package isolation.
//
//	func TestIsolation(t *testing.T) {
//		isolationtest.Run(t, isolation.Config{SuperDSN: super, AppDSN: app, ContextKey: key})
//	}
package isolationtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal/isolation"
)

// Run runs the isolation suite from a test: each case and target is a subtest that fails
// on a leak or an error. The report is logged in its text form.
func Run(t *testing.T, cfg isolation.Config) *isolation.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := isolation.Check(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Log("\n" + b.String())
	for _, r := range rep.Results {
		if r.Status == isolation.StatusNA {
			continue
		}
		t.Run(r.Case+"/"+r.Target, func(t *testing.T) {
			for _, l := range r.Leaks {
				t.Errorf("leak: %s", l)
			}
			for _, e := range r.Errors {
				t.Errorf("error: %s", e)
			}
		})
	}
	return rep
}
