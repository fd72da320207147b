package adopt_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/adopt"
)

// Generate the migrations that put a Rails-style schema under tenantseal, or say why not.
func ExampleGenerate() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("TENANTSEAL_OWNER_DSN"))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx)

	plan, err := adopt.Generate(ctx, tx, adopt.Options{Declaration: adopt.Declaration{
		TenantColumn: "company_id",
		Registry:     &adopt.Registry{Table: "public.companies", Key: "id", Name: "name"},
		Global:       []string{"public.plans"},
		Exclude:      []string{"public.schema_migrations", "public.ar_internal_metadata"},
	}})
	var refused *adopt.RefusalError
	if errors.As(err, &refused) {
		for _, r := range refused.Refusals {
			fmt.Printf("%s: %s\n", r.Table, r.Reason)
		}
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	files, err := plan.Write("db/migrate", "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("review", files.Up, "and", files.Down)
}

// Print the plan instead of writing files, as `tenantseal adopt --dry-run` does.
func ExamplePlan_WriteText() {
	p := &adopt.Plan{Schemas: []string{"public"}, Changes: []adopt.Change{{
		Kind: adopt.KindGrant, Table: "public.plans", Reason: "global table: every tenant reads it",
		Up: []string{`GRANT SELECT ON "public"."plans" TO "tenantseal_app"`}, Down: []string{`REVOKE ALL ON "public"."plans" FROM "tenantseal_app"`},
	}}}
	p.WriteText(os.Stdout)
	// Output:
	// 1 change to schema public:
	//
	// 1. grant public.plans: global table: every tenant reads it
	//	GRANT SELECT ON "public"."plans" TO "tenantseal_app";
}
