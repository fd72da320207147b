package main_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShipsNoTestHarness: the shipped binary links neither the testing package nor testcontainers-go.
// The demo and bench commands that once started containers take --dsn; the container starter lives in
// the development binary, internal/cmd/tenantseal-dev.
func TestShipsNoTestHarness(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("got %d dependencies, want the binary's whole list:\n%s", len(deps), out)
	}
	for _, p := range deps {
		if p == "testing" || strings.HasPrefix(p, "github.com/testcontainers/") ||
			strings.HasPrefix(p, "github.com/tenantseal/tenantseal/internal/pgtest") {
			t.Errorf("cmd/tenantseal links %s, want no test harness in the shipped binary", p)
		}
	}
}
