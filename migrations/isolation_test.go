package migrations_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/token"
	"github.com/tenantseal/tenantseal/internal/uuid"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

// tenantRows are one tenant's rows in every reference table.
type tenantRows struct {
	tenant                      tenantseal.TenantID
	ctx                         context.Context
	customer, invoice, document string
}

func seed(t *testing.T, p *db.Pool, ctx context.Context, tenant tenantseal.TenantID, name string) tenantRows {
	t.Helper()
	r := tenantRows{tenant: tenant, ctx: as(ctx, tenant, name)}
	err := p.Tx(r.ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2) RETURNING id::text", tenant, name+" customer").Scan(&r.customer); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "INSERT INTO invoices (tenant_id, customer_id, amount_minor, currency) VALUES ($1, $2, 100, 'EUR') RETURNING id::text", tenant, r.customer).Scan(&r.invoice); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "INSERT INTO documents (tenant_id, invoice_id, filename, content_type, size) VALUES ($1, $2, 'a.pdf', 'application/pdf', 1) RETURNING id::text", tenant, r.invoice).Scan(&r.document)
	})
	if err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	return r
}

func (r tenantRows) id(table string) string {
	return map[string]string{"customers": r.customer, "invoices": r.invoice, "documents": r.document}[table]
}

// insertSQL inserts a fresh row into table for tenant $1 whose parents are those of r; $2 is the id.
func insertSQL(table string, r tenantRows) string {
	switch table {
	case "customers":
		return "INSERT INTO customers (tenant_id, id, display_name) VALUES ($1, $2, 'x')"
	case "invoices":
		return fmt.Sprintf("INSERT INTO invoices (tenant_id, id, customer_id, amount_minor, currency) VALUES ($1, $2, '%s', 1, 'EUR')", r.customer)
	default:
		return fmt.Sprintf("INSERT INTO documents (tenant_id, id, invoice_id, filename, content_type, size) VALUES ($1, $2, '%s', 'x', 'text/plain', 1)", r.invoice)
	}
}

// touchSQL is a harmless update of one row by id ($1).
var touchSQL = map[string]string{
	"customers": "UPDATE customers SET display_name = 'stolen' WHERE id = $1",
	"invoices":  "UPDATE invoices SET amount_minor = 0 WHERE id = $1",
	"documents": "UPDATE documents SET filename = 'stolen' WHERE id = $1",
}

func TestTenantTablesIsolateAsAppRole(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	p := mustPool(t, d)
	ctx := testContext(t)
	a := seed(t, p, ctx, mustTenant(t, d, "a"), "a")
	b := seed(t, p, ctx, mustTenant(t, d, "b"), "b")

	// unchanged reports whether b's row in table still holds exactly what it held after seeding, as the
	// superuser (who bypasses RLS) sees it.
	super := mustConn(t, d.SuperDSN)
	snapshot := func(table string) string {
		var s string
		if err := super.QueryRow(ctx, fmt.Sprintf("SELECT coalesce((SELECT t::text FROM %s t WHERE tenant_id = $1 AND id = $2), 'gone')", table), b.tenant, b.id(table)).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	for _, table := range []string{"customers", "invoices", "documents"} {
		t.Run(table, func(t *testing.T) {
			before := snapshot(table)
			foreign := b.id(table)

			var n int
			err := p.QueryRow(a.ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id = $1", table), foreign).Scan(&n)
			if err != nil || n != 0 {
				t.Errorf("select foreign row by id: got %d rows (%v), want 0", n, err)
			}
			var others int
			err = p.QueryRow(a.ctx, fmt.Sprintf("SELECT count(*) FILTER (WHERE tenant_id <> $1), count(*) FROM %s", table), a.tenant).Scan(&others, &n)
			if err != nil || others != 0 || n != 1 {
				t.Errorf("scan: got %d foreign of %d rows (%v), want 0 of 1", others, n, err)
			}

			tag, err := p.Exec(a.ctx, touchSQL[table], foreign)
			if err != nil || tag.RowsAffected() != 0 {
				t.Errorf("update foreign row: got %d rows (%v), want 0", tag.RowsAffected(), err)
			}
			tag, err = p.Exec(a.ctx, fmt.Sprintf("DELETE FROM %s WHERE id = $1", table), foreign)
			if err != nil || tag.RowsAffected() != 0 {
				t.Errorf("delete foreign row: got %d rows (%v), want 0", tag.RowsAffected(), err)
			}
			rows, err := p.Query(a.ctx, fmt.Sprintf("UPDATE %s SET tenant_id = tenant_id WHERE id = $1 RETURNING id::text", table), foreign)
			if err == nil {
				var got []string
				got, err = pgx.CollectRows(rows, pgx.RowTo[string])
				if len(got) != 0 {
					t.Errorf("update ... returning foreign row: got %v, want nothing", got)
				}
			}
			if err != nil {
				t.Errorf("update ... returning: %v", err)
			}

			// Insert into the other tenant: refused by WITH CHECK.
			_, err = p.Exec(a.ctx, insertSQL(table, b), b.tenant, newUUID())
			if got := sqlState(err); got != "42501" {
				t.Errorf("insert with foreign tenant_id: got %v (SQLSTATE %q), want 42501", err, got)
			}
			// Move own row to the other tenant: refused by WITH CHECK.
			_, err = p.Exec(a.ctx, fmt.Sprintf("UPDATE %s SET tenant_id = $1 WHERE id = $2", table), b.tenant, a.id(table))
			if got := sqlState(err); got != "42501" {
				t.Errorf("move row to foreign tenant: got %v (SQLSTATE %q), want 42501", err, got)
			}
			// Upsert over the foreign row, claiming its tenant: refused.
			_, err = p.Exec(a.ctx, insertSQL(table, b)+" ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = excluded.tenant_id", b.tenant, foreign)
			if got := sqlState(err); got != "42501" {
				t.Errorf("upsert over foreign row: got %v (SQLSTATE %q), want 42501", err, got)
			}
			// Upsert with own tenant and the foreign id: the composite key makes it a new row of a's,
			// never a conflict with b's.
			tag, err = p.Exec(a.ctx, insertSQL(table, a)+" ON CONFLICT (tenant_id, id) DO NOTHING", a.tenant, foreign)
			if err != nil || tag.RowsAffected() != 1 {
				t.Errorf("upsert with own tenant and foreign id: got %d rows (%v), want a new own row", tag.RowsAffected(), err)
			}

			if after := snapshot(table); after != before {
				t.Errorf("foreign row changed: got %s, want %s", after, before)
			}
		})
	}

	t.Run("foreign keys stay within the tenant", func(t *testing.T) {
		// A fresh tenant: a now holds rows that reuse b's ids (the upsert cases above).
		c := seed(t, p, ctx, mustTenant(t, d, "c"), "c")
		_, err := p.Exec(c.ctx, "INSERT INTO invoices (tenant_id, customer_id, amount_minor, currency) VALUES ($1, $2, 1, 'EUR')", c.tenant, b.customer)
		if got := sqlState(err); got != "23503" {
			t.Errorf("invoice for foreign customer: got %v (SQLSTATE %q), want 23503", err, got)
		}
		_, err = p.Exec(c.ctx, "INSERT INTO documents (tenant_id, invoice_id, filename, content_type, size) VALUES ($1, $2, 'x', 'x', 1)", c.tenant, b.invoice)
		if got := sqlState(err); got != "23503" {
			t.Errorf("document for foreign invoice: got %v (SQLSTATE %q), want 23503", err, got)
		}
	})

	t.Run("joins and aggregates see one tenant", func(t *testing.T) {
		var n, total int
		err := p.QueryRow(a.ctx, `SELECT count(*), (SELECT count(*) FROM customers) + (SELECT count(*) FROM documents)
			FROM invoices i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id`).Scan(&n, &total)
		if err != nil {
			t.Fatal(err)
		}
		// a has 1 seeded invoice plus 1 from the upsert case above; a's own customers and documents
		// number 2 each by now.
		var want int
		if err := super.QueryRow(ctx, `SELECT (SELECT count(*) FROM customers WHERE tenant_id = $1) + (SELECT count(*) FROM documents WHERE tenant_id = $1)`, a.tenant).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if total != want {
			t.Errorf("got %d rows across tables, want a's own %d", total, want)
		}
	})

	t.Run("tenants table shows only the own tenant", func(t *testing.T) {
		rows, err := p.Query(a.ctx, "SELECT id FROM tenantseal.tenants")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[tenantseal.TenantID])
		if err != nil || len(ids) != 1 || ids[0] != a.tenant {
			t.Errorf("got %v (%v), want only %s", ids, err, a.tenant)
		}
		_, err = p.Exec(a.ctx, "UPDATE tenantseal.tenants SET name = 'x'")
		if got := sqlState(err); got != "42501" {
			t.Errorf("update tenantseal.tenants: got %v, want 42501 (no grant)", err)
		}
	})
}

func TestNoContextMeansNoRowsAndFailedWrites(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	p := mustPool(t, d)
	ctx := testContext(t)
	a := seed(t, p, ctx, mustTenant(t, d, "a"), "a")
	app := mustConn(t, d.AppDSN) // raw app role connection: no tenant context at all
	for _, table := range []string{"customers", "invoices", "documents", "tenantseal.tenants"} {
		var n int
		if err := app.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: got %d rows (%v), want 0", table, n, err)
		}
	}
	for _, table := range []string{"customers", "invoices", "documents"} {
		tag, err := app.Exec(ctx, touchSQL[table], a.id(table))
		if err != nil || tag.RowsAffected() != 0 {
			t.Errorf("%s update: got %d rows (%v), want 0", table, tag.RowsAffected(), err)
		}
		tag, err = app.Exec(ctx, "DELETE FROM "+table)
		if err != nil || tag.RowsAffected() != 0 {
			t.Errorf("%s delete: got %d rows (%v), want 0", table, tag.RowsAffected(), err)
		}
		// With no context the tenant_id default is NULL: the insert fails whether or not it names a tenant.
		_, err = app.Exec(ctx, insertSQL(table, a), a.tenant, newUUID())
		if got := sqlState(err); got != "42501" {
			t.Errorf("%s insert naming a tenant: got %v, want 42501", table, err)
		}
		_, err = app.Exec(ctx, strings.Replace(insertSQL(table, a), "tenant_id, ", "", 1), newUUID())
		if err == nil {
			t.Errorf("%s insert relying on the tenant_id default: succeeded, want a failure", table)
		}
	}
}

func newUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return uuid.Format(u)
}

func TestForgedContextsAreRefused(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	p := mustPool(t, d)
	ctx := testContext(t)
	a := seed(t, p, ctx, mustTenant(t, d, "a"), "a")
	b := seed(t, p, ctx, mustTenant(t, d, "b"), "b")
	key := d.ContextKey
	sign := func(kid string, secret []byte, c token.Claims) string {
		tok, err := token.Sign(kid, secret, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	soon := time.Now().Add(time.Minute)
	valid := sign(key.ID, key.Secret, token.Claims{Tenant: a.tenant.Handle(), Subject: "alice", Expires: soon})
	wrongKey := make([]byte, 32)
	rand.Read(wrongKey)
	aStr, bStr := a.tenant.String(), b.tenant.String()

	tests := []struct {
		name, token string
	}{
		{"made up", "v1." + key.ID + "." + bStr + ".9999999999..616c696365." + strings.Repeat("ab", 32)},
		{"altered tenant", strings.Replace(valid, aStr, bStr, 1)},
		{"altered expiry", strings.Replace(valid, fmt.Sprint(soon.Unix()), fmt.Sprint(soon.Unix()+3600), 1)},
		{"altered flags", strings.Replace(valid, fmt.Sprintf("%d..", soon.Unix()), fmt.Sprintf("%d.e.", soon.Unix()), 1)},
		{"truncated", valid[:len(valid)-1]},
		{"truncated field", valid[:strings.LastIndex(valid, ".")]},
		{"expired", sign(key.ID, key.Secret, token.Claims{Tenant: b.tenant.Handle(), Subject: "x", Expires: time.Now().Add(-time.Second)})},
		{"expired elevation", sign(key.ID, key.Secret, token.Claims{Tenant: a.tenant.Handle(), Subject: "sam", Expires: time.Now().Add(-time.Second), Elevated: true})},
		{"elevation with wrong key", sign(key.ID, wrongKey, token.Claims{Tenant: a.tenant.Handle(), Subject: "sam", Expires: soon, Elevated: true})},
		{"wrong key", sign(key.ID, wrongKey, token.Claims{Tenant: b.tenant.Handle(), Subject: "x", Expires: soon})},
		{"unknown key id", sign("nokey", key.Secret, token.Claims{Tenant: b.tenant.Handle(), Subject: "x", Expires: soon})},
		{"unsigned while unsigned mode is off", token.Unsigned(b.tenant.Handle())},
		{"plain tenant id", bStr},
		{"garbage", "'; SELECT 1; --"},
	}
	app := mustConn(t, d.AppDSN)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, how := range []string{"set_config local", "set_config session", "SET"} {
				err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
					var err error
					switch how {
					case "set_config local":
						_, err = tx.Exec(ctx, "SELECT set_config('tenantseal.context', $1, true)", tc.token)
					case "set_config session":
						_, err = tx.Exec(ctx, "SELECT set_config('tenantseal.context', $1, false)", tc.token)
					default:
						_, err = tx.Exec(ctx, "SET tenantseal.context = "+quote(tc.token))
					}
					if err != nil {
						return err
					}
					rows, err := tx.Query(ctx, "SELECT display_name FROM customers")
					if err != nil {
						return err
					}
					names, err := pgx.CollectRows(rows, pgx.RowTo[string])
					if err == nil {
						t.Errorf("%s: read %v, want a refusal", how, names)
					}
					return err
				})
				if got := sqlState(err); got != db.SQLStateInvalidContext {
					t.Errorf("%s: got %v (SQLSTATE %q), want %s", how, err, got, db.SQLStateInvalidContext)
				}
			}
		})
	}
	t.Run("valid token reads only its tenant", func(t *testing.T) {
		var names []string
		err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('tenantseal.context', $1, true)", valid); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, "SELECT display_name FROM customers")
			if err != nil {
				return err
			}
			names, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil || len(names) != 1 || names[0] != "a customer" {
			t.Errorf("got %v (%v), want [a customer]", names, err)
		}
	})
	t.Run("pool reports ErrInvalidContext", func(t *testing.T) {
		// A pool signing with a key the database does not know.
		bad := mustPool(t, d, func(c *db.Config) { c.SigningKey = db.ContextKey{ID: key.ID, Secret: wrongKey} })
		_, err := bad.Exec(a.ctx, "SELECT count(*) FROM customers")
		if !errors.Is(err, db.ErrInvalidContext) || sqlState(err) != db.SQLStateInvalidContext {
			t.Errorf("got %v, want ErrInvalidContext wrapping SQLSTATE %s", err, db.SQLStateInvalidContext)
		}
	})
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func TestAppRoleCannotReachSecretsOrOwner(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	app := mustConn(t, d.AppDSN)
	ctx := testContext(t)
	tests := []struct{ name, sql string }{
		{"read the signing keys", "SELECT * FROM tenantseal.context_keys"},
		{"turn on unsigned mode", "UPDATE tenantseal.settings SET allow_unsigned = true"},
		{"add a signing key", "INSERT INTO tenantseal.context_keys (kid, ipad, opad) VALUES ('evil', '\\x00', '\\x00')"},
		{"call the verifier's internals", "SELECT tenantseal.verify_token('x')"},
		{"call the role lookup", "SELECT tenantseal.role_name('owner')"},
		{"protect (or re-policy) a table", "SELECT tenantseal.protect_table('customers')"},
		{"SET ROLE to the owner", "SET ROLE " + d.Roles.Owner},
		{"SET SESSION AUTHORIZATION to the owner", "SET SESSION AUTHORIZATION " + d.Roles.Owner},
		{"disable RLS", "ALTER TABLE customers DISABLE ROW LEVEL SECURITY"},
		{"drop a policy", "DROP POLICY customers_select ON customers"},
		{"create a function in the product schema", "CREATE FUNCTION tenantseal.current_tenant2() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid'"},
		{"create a table in public", "CREATE TABLE public.evil (id int)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := app.Exec(ctx, tc.sql)
			if got := sqlState(err); got != "42501" && got != "42883" {
				t.Errorf("got %v (SQLSTATE %q), want a permission error (42501)", err, got)
			}
		})
	}
}
