package evidence_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/tenantseal/tenantseal/evidence"
)

// The bundle of the last 90 days, read as the auditor and, where it must, as the owner.
func ExampleExport() {
	ctx := context.Background()
	res, err := evidence.Export(ctx, "evidence-2026-q4", evidence.Config{
		OwnerDSN:    os.Getenv("TENANTSEAL_OWNER_DSN"),
		AuditorDSN:  os.Getenv("TENANTSEAL_AUDITOR_DSN"),
		Since:       time.Now().Add(-90 * 24 * time.Hour),
		ToolVersion: "v1.4.0",
	})
	if err != nil {
		log.Fatal(err) // nothing was written
	}
	for _, c := range res.Failed() {
		fmt.Printf("%s failed: %s\n", c.Name, c.Summary)
	}
}
