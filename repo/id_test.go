package repo_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/repo"
)

func TestNewIDIncreasesAndIsVersion7(t *testing.T) {
	prev := repo.NewID()
	for i := 0; i < 20000; i++ {
		id := repo.NewID()
		u, ok := id.UUID()
		p, _ := prev.UUID()
		if !ok || bytes.Compare(u[:], p[:]) <= 0 || id.Compare(prev) <= 0 {
			t.Fatalf("id %d: %s not after %s", i, id, prev)
		}
		if u[6]>>4 != 7 || u[8]>>6 != 2 {
			t.Fatalf("id %s: not a version 7, variant 10 UUID", id)
		}
		prev = id
	}
	back, err := repo.ParseID(strings.ToUpper(prev.String()))
	if err != nil || back != prev {
		t.Errorf("ParseID(String()) = %v (%v), want %v", back, err, prev)
	}
	if _, err := repo.ParseID("nope"); err == nil {
		t.Error("ParseID(\"nope\"): got no error")
	}
}
