package migrations_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/migrations"
)

// Reverting 0024 drops the retention policies and the tenants' regions: refused until confirmed, then
// done, and the schema of 0023 holds the tenants as they were.
func TestRevertingRetentionNeedsConfirmation(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	ctx := operator(t)
	owner := pgtest.Conn(t, d.OwnerDSN)
	for _, sql := range []string{
		"INSERT INTO tenantseal.retention_policies (name, shred_after) VALUES ('standard', interval '30 days')",
		"INSERT INTO tenantseal.tenants (name) VALUES ('a')",
		"INSERT INTO tenantseal.tenant_governance (tenant_id, region, retention_policy) SELECT id, 'eu-west-1', 'standard' FROM tenantseal.tenants",
	} {
		if _, err := owner.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	err := migrator(t, d, migrations.Options{}).Goto(ctx, 23)
	var le *migrations.LossError
	if !errors.As(err, &le) || len(le.Unconfirmed) != 1 || le.Unconfirmed[0].Loss != migrations.LossRetention ||
		!strings.Contains(err.Error(), "reverting 0024 drops the retention policies and the tenants' regions (2 policies and tenants with a region or policy)") {
		t.Fatalf("got %v, want the retention loss counted and unconfirmed", err)
	}
	if l, ok := migrations.ParseLoss("retention"); !ok || l != migrations.LossRetention {
		t.Errorf("ParseLoss(retention) = %v, %v", l, ok)
	}
	mg := migrator(t, d, migrations.Options{ConfirmLoss: []migrations.Loss{migrations.LossRetention}, Recorder: auditWriter(t, writerDSN(d))})
	if err := mg.Goto(ctx, 23); err != nil {
		t.Fatal(err)
	}
	var cols []string
	rows, err := owner.Query(ctx, "SELECT attname FROM pg_attribute WHERE attrelid = 'tenantseal.tenants'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if diff := cmp.Diff([]string{"id", "name", "status", "created_at", "shredded_at", "key"}, cols); diff != "" {
		t.Errorf("tenants columns after the revert (-want +got):\n%s", diff)
	}
	var n int
	if err := owner.QueryRow(ctx, "SELECT count(*) FROM tenantseal.tenants WHERE name = 'a'").Scan(&n); err != nil || n != 1 {
		t.Errorf("got %d tenants named a (%v), want the tenant kept", n, err)
	}
}
