package repo

import (
	"context"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

// protection is what the catalog says about a table beyond its columns: its row-level security, the
// tenant column protect_table recorded for it, its row key column as the audit writer's probe finds it,
// and how the database fills each column that an INSERT leaves out.
type protection struct {
	rls, forced  bool
	tenantColumn string // from tenantseal.tenant_tables; "" when protect_table did not protect it
	rowKey       string // the probe's row key column; "" when there is none
	defaults     map[string]pkDefault
}

// describeProtection reads the protection of rel. The row key column is tenantseal.row_key_column's
// (which the app role may not call): id when the table has one, else the one column of its primary
// key beside the tenant column.
func describeProtection(ctx context.Context, pool *db.Pool, rel db.Relation) (protection, error) {
	p := protection{defaults: map[string]pkDefault{}}
	rows, err := pool.Unscoped().Query(ctx, `SELECT c.relrowsecurity, c.relforcerowsecurity, coalesce(t.tenant_column::text, ''),
		coalesce((SELECT 'id' FROM pg_attribute WHERE attrelid = c.oid AND attname = 'id' AND attnum > 0 AND NOT attisdropped),
			(SELECT min(k.attname::text) FROM pg_index i JOIN pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = ANY (i.indkey)
			  WHERE i.indrelid = c.oid AND i.indisprimary AND k.attname <> t.tenant_column HAVING count(*) = 1), ''),
		a.attname, a.attidentity = 'a' OR a.attgenerated <> '', a.attidentity = 'd' OR a.atthasdef
		FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		LEFT JOIN tenantseal.tenant_tables t ON t.relid = c.oid
		WHERE c.oid = to_regclass($1)`, rel.QualifiedName())
	if err != nil {
		return p, fmt.Errorf("repo: describe %s: %w", rel.QualifiedName(), err)
	}
	var col string
	var always, byDefault bool
	_, err = pgx.ForEachRow(rows, []any{&p.rls, &p.forced, &p.tenantColumn, &p.rowKey, &col, &always, &byDefault}, func() error {
		switch {
		case always:
			p.defaults[col] = alwaysDefault
		case byDefault:
			p.defaults[col] = defaultValue
		}
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("repo: describe %s: %w", rel.QualifiedName(), err)
	}
	return p, nil
}

// check refuses a table that row-level security does not hold and a tenant field on another column
// than the one protect_table protected by, and notes in s how the pk is filled and whether misses can
// be told apart.
func (p protection) check(t reflect.Type, s *schema) error {
	name := s.rel.QualifiedName()
	if !p.rls || !p.forced {
		return fmt.Errorf("repo: %s is not under forced row-level security: protect it with tenantseal.protect_table", name)
	}
	tenant := s.tenantField()
	if p.tenantColumn != "" && p.tenantColumn != tenant.column {
		return fmt.Errorf("repo: %s.%s: tag names %q as the tenant column, tenantseal.tenant_tables says %s's is %q",
			t.Name(), tenant.name, tenant.column, name, p.tenantColumn)
	}
	pk := s.pkField()
	s.gen = p.defaults[pk.column]
	s.probe = p.tenantColumn != "" && p.rowKey == pk.column
	return nil
}
