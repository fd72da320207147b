package reference_test

import (
	"context"
	"log"

	"github.com/tenantseal/tenantseal/examples/reference"
)

// Applying the reference migrations after tenantseal's own, as the owner role. It needs a database, so it
// has no output here.
func ExampleMigrate() {
	ctx := context.Background()
	if err := reference.Migrate(ctx, "postgres://tenantseal_owner@localhost/tenantseal"); err != nil {
		log.Print(err)
	}
}
