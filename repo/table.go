package repo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// DBTX is what a repository runs statements on: a *db.Pool (each statement one round trip under the
// Principal's tenant context) or a pgx.Tx begun by db.Pool.Tx (the transaction's context).
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Table is a typed, tenant-scoped repository over one table, described by the `ts` tags of T (see
// [New]). Every method takes the tenant from the Principal in ctx, and every query carries an explicit
// predicate on the tenant column besides row-level security. Encrypted fields are encrypted before they
// leave the process and decrypted after they arrive. A Table is safe for concurrent use.
type Table[T any] struct {
	q   DBTX
	tx  pgx.Tx // set by With: keyset loads go through it too
	kr  *keys.Keyring
	s   *schema
	st  *statements
	rec tenantseal.Recorder
}

// New describes T against table and returns its repository. Errors in the description (a tag naming a
// missing column, an encrypted field of an unsupported type or on a non-bytea column, an encrypted column
// not registered in tenantseal.encrypted_columns, a tenant field on another column than the one
// tenantseal.tenant_tables records for the table) and a table not under forced row-level security are
// reported here, not at the first query: every statement is built here, from the columns tagged tenant
// and pk.
func New[T any](ctx context.Context, pool *db.Pool, kr *keys.Keyring, table string) (*Table[T], error) {
	if pool == nil || kr == nil {
		return nil, errors.New("repo: New needs a *db.Pool and a *keys.Keyring")
	}
	rel, err := pool.Describe(ctx, table)
	if err != nil {
		return nil, err
	}
	registry, err := pgstore.Columns(ctx, pool.Unscoped())
	if err != nil {
		return nil, err
	}
	prot, err := describeProtection(ctx, pool, rel)
	if err != nil {
		return nil, err
	}
	s, err := parseSchema(reflect.TypeFor[T](), rel, prot, registry)
	if err != nil {
		return nil, err
	}
	return &Table[T]{q: pool, kr: kr, s: s, st: buildStatements(s), rec: pool}, nil
}

// With returns a copy of the repository that runs on tx, to combine repository calls and custom SQL in
// one transaction of db.Pool.Tx.
func (t *Table[T]) With(tx pgx.Tx) *Table[T] {
	c := *t
	c.q, c.tx = tx, tx
	return &c
}

// keyCtx makes keyset loads run on the repository's transaction, if it has one, instead of waiting for
// another connection of the pool.
func (t *Table[T]) keyCtx(ctx context.Context) context.Context {
	if t.tx != nil {
		return pgstore.WithQuerier(ctx, t.tx)
	}
	return ctx
}

// dbErr wraps an error of the database (which carries no prefix of ours) with what was being done.
// Errors of tenantseal's packages and sentinels already carry one: they are returned as they are.
func (t *Table[T]) dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("repo: %s %s: %w", op, t.s.table, err)
}

// tenantOf returns the Principal's tenant and checks v's tenant field against it, filling it when zero.
func (t *Table[T]) tenantOf(ctx context.Context, op string, v *T) (tenantseal.TenantID, error) {
	tenant, err := tenantseal.TenantFrom(ctx)
	if err != nil {
		return tenant, err
	}
	if v == nil {
		return tenant, errors.New("repo: nil row")
	}
	tf := t.s.tenantOfRow(unsafe.Pointer(v))
	given := *tf
	switch {
	case given.IsZero():
		*tf = tenant
	case given != tenant:
		ev := tenantseal.Event{Kind: tenantseal.EventTenantMismatch, TargetTenant: given, Table: t.s.table, Operation: op}
		if id := t.keyOf(v); !id.IsZero() {
			ev.RowKey = id.String() // a new row may have no id yet
		}
		t.rec.Record(ctx, ev)
		return tenant, &MismatchError{Table: t.s.table, Given: given, Principal: tenant}
	}
	return tenant, nil
}

// notFound answers a miss by id with ErrNotFound and reports the miss, without asking the database
// anything: the caller's request costs the same whether the id is another tenant's or nobody's. The audit
// writer has the database tell the two apart on its own role, out of the request's path, and stores the
// first as a foreign_id attempt (see tenantseal.EventLookupMiss).
//
// tenantseal.exists_elsewhere, which answers there, reads the tenant column tenantseal.tenant_tables
// records and the table's row key column (id, else the one pk column beside the tenant's): for a table
// protect_table did not protect, or whose pk is not that column, it cannot answer, so no miss is
// reported.
func (t *Table[T]) notFound(ctx context.Context, op string, id ID) error {
	if t.s.probe {
		t.rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventLookupMiss, Table: t.s.rel.QualifiedName(), Operation: op, RowKey: id.String()})
	}
	return ErrNotFound
}

// MismatchError reports a struct whose tenant id differs from the Principal's. It matches
// ErrTenantMismatch with errors.Is.
type MismatchError struct {
	Table            string
	Given, Principal tenantseal.TenantID
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%v: %s row names tenant %s, principal's tenant is %s; nothing was written", ErrTenantMismatch, e.Table, e.Given, e.Principal)
}

// Unwrap makes errors.Is(err, ErrTenantMismatch) true.
func (e *MismatchError) Unwrap() error { return ErrTenantMismatch }

// keyOf returns the key of the row v as an ID.
func (t *Table[T]) keyOf(v *T) ID { return t.s.keyOfRow(unsafe.Pointer(v)) }
