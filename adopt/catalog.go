package adopt

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// table is what the catalog holds about one ordinary or partitioned table.
type table struct {
	oid            uint32
	schema, name   string
	rls, forceRLS  bool
	cols           []*column
	cons           []*constraint
	indexes        []*index
	policies       []policy
	acl            []grant  // table privileges
	serials        []string // qualified names of the sequences its serial columns' defaults call
	serialAppUsage []bool   // whether the app role has USAGE on each of serials
}

type policy struct {
	name       string
	permissive bool
}

type column struct {
	num        int16
	name, typ  string // typ as format_type prints it
	typname    string // pg_type.typname
	notNull    bool
	statistics int // -1: the default
	acl        []grant
}

// grant is one privilege of one grantee ("PUBLIC" for everyone).
type grant struct {
	grantee, privilege string
	grantable          bool
}

type constraint struct {
	oid               uint32
	name              string
	kind              byte // p, u, f, x
	cols              []int16
	ref               uint32 // referenced table (foreign keys)
	refCols           []int16
	onUpdate          byte
	onDelete          byte
	match             byte
	deferrable        bool
	initiallyDeferred bool
	validated         bool
	def               string // pg_get_constraintdef
	index             uint32 // the index that backs a key
}

type index struct {
	oid        uint32
	name       string
	unique     bool
	cols       []int16 // key columns; 0 is an expression
	partial    bool
	am         string
	def        string // pg_get_indexdef
	constraint bool   // backs a constraint
	// quoted is the index name as pg_get_indexdef quotes it, qualifiedTable the table's.
	quoted, qualifiedTable string
	// dependents are the foreign keys, anywhere in the database, that reference through this index.
	dependents []uint32
}

type catalog struct {
	tables []*table
	byOID  map[uint32]*table
	byName map[string]*table // "schema.table"
}

func (t *table) qualified() string { return t.schema + "." + t.name }

func (t *table) ident() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

func (t *table) column(name string) *column {
	for _, c := range t.cols {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (t *table) columnByNum(n int16) *column {
	for _, c := range t.cols {
		if c.num == n {
			return c
		}
	}
	return nil
}

func (t *table) names(nums []int16) []string {
	out := make([]string, len(nums))
	for i, n := range nums {
		if c := t.columnByNum(n); c != nil {
			out[i] = c.name
		}
	}
	return out
}

// readCatalog reads the tables of schemas, their columns, keys, indexes, policies and privileges. The
// caller has set search_path to pg_catalog, so that every name the deparsing functions print is
// qualified.
func readCatalog(ctx context.Context, q querier, schemas []string) (*catalog, error) {
	cat := &catalog{byOID: map[uint32]*table{}, byName: map[string]*table{}}
	rows, err := q.Query(ctx, `
		SELECT c.oid, n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		 ORDER BY n.nspname, c.relname`, schemas)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		t := &table{}
		if err := rows.Scan(&t.oid, &t.schema, &t.name, &t.rls, &t.forceRLS); err != nil {
			rows.Close()
			return nil, err
		}
		cat.tables = append(cat.tables, t)
		cat.byOID[t.oid] = t
		cat.byName[t.qualified()] = t
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	oids := make([]uint32, len(cat.tables))
	for i, t := range cat.tables {
		oids[i] = t.oid
	}
	for _, step := range []func(context.Context, querier, []uint32) error{
		cat.readColumns, cat.readACLs, cat.readConstraints, cat.readIndexes, cat.readPolicies,
	} {
		if err := step(ctx, q, oids); err != nil {
			return nil, err
		}
	}
	return cat, nil
}

func (cat *catalog) readColumns(ctx context.Context, q querier, oids []uint32) error {
	rows, err := q.Query(ctx, `
		SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.attnotnull,
		       coalesce(a.attstattarget, -1)::int
		  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		 WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
		 ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return err
	}
	var rel uint32
	c := &column{}
	_, err = pgx.ForEachRow(rows, []any{&rel, &c.num, &c.name, &c.typ, &c.typname, &c.notNull, &c.statistics}, func() error {
		col := *c
		cat.byOID[rel].cols = append(cat.byOID[rel].cols, &col)
		return nil
	})
	return err
}

func (cat *catalog) readACLs(ctx context.Context, q querier, oids []uint32) error {
	rows, err := q.Query(ctx, `
		SELECT c.oid, 0::int2, coalesce(r.rolname, 'PUBLIC'), e.privilege_type, e.is_grantable
		  FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) e LEFT JOIN pg_roles r ON r.oid = e.grantee
		 WHERE c.oid = ANY($1)
		UNION ALL
		SELECT a.attrelid, a.attnum, coalesce(r.rolname, 'PUBLIC'), e.privilege_type, e.is_grantable
		  FROM pg_attribute a CROSS JOIN LATERAL aclexplode(a.attacl) e LEFT JOIN pg_roles r ON r.oid = e.grantee
		 WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
		 ORDER BY 1, 2, 3, 4`, oids)
	if err != nil {
		return err
	}
	var rel uint32
	var num int16
	var g grant
	_, err = pgx.ForEachRow(rows, []any{&rel, &num, &g.grantee, &g.privilege, &g.grantable}, func() error {
		t := cat.byOID[rel]
		if num == 0 {
			t.acl = append(t.acl, g)
		} else if c := t.columnByNum(num); c != nil {
			c.acl = append(c.acl, g)
		}
		return nil
	})
	return err
}

func (cat *catalog) readConstraints(ctx context.Context, q querier, oids []uint32) error {
	rows, err := q.Query(ctx, `
		SELECT oid, conrelid, conname, contype::text, conkey, confrelid, coalesce(confkey, '{}'), confupdtype::text,
		       confdeltype::text, confmatchtype::text, condeferrable, condeferred, convalidated,
		       pg_get_constraintdef(oid), conindid
		  FROM pg_constraint
		 WHERE conrelid = ANY($1) AND contype IN ('p', 'u', 'f', 'x')
		 ORDER BY conrelid, conname`, oids)
	if err != nil {
		return err
	}
	var rel uint32
	var kind, upd, del, match string
	c := &constraint{}
	_, err = pgx.ForEachRow(rows, []any{&c.oid, &rel, &c.name, &kind, &c.cols, &c.ref, &c.refCols, &upd, &del, &match,
		&c.deferrable, &c.initiallyDeferred, &c.validated, &c.def, &c.index}, func() error {
		con := *c
		con.kind, con.onUpdate, con.onDelete, con.match = kind[0], first(upd), first(del), first(match)
		cat.byOID[rel].cons = append(cat.byOID[rel].cons, &con)
		return nil
	})
	return err
}

func first(s string) byte {
	if s == "" {
		return ' '
	}
	return s[0]
}

func (cat *catalog) readIndexes(ctx context.Context, q querier, oids []uint32) error {
	rows, err := q.Query(ctx, `
		SELECT i.indrelid, ic.relname, i.indisunique, (i.indkey::int2[])[0:i.indnkeyatts - 1], i.indpred IS NOT NULL,
		       am.amname, pg_get_indexdef(i.indexrelid), i.indexrelid,
		       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')),
		       quote_ident(ic.relname), i.indrelid::regclass::text,
		       ARRAY(SELECT f.oid FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid ORDER BY 1)
		  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
		 WHERE i.indrelid = ANY($1)
		 ORDER BY i.indrelid, ic.relname`, oids)
	if err != nil {
		return err
	}
	var rel uint32
	x := &index{}
	_, err = pgx.ForEachRow(rows, []any{&rel, &x.name, &x.unique, &x.cols, &x.partial, &x.am, &x.def, &x.oid,
		&x.constraint, &x.quoted, &x.qualifiedTable, &x.dependents}, func() error {
		ix := *x
		cat.byOID[rel].indexes = append(cat.byOID[rel].indexes, &ix)
		return nil
	})
	return err
}

func (cat *catalog) readPolicies(ctx context.Context, q querier, oids []uint32) error {
	rows, err := q.Query(ctx, `SELECT polrelid, polname, polpermissive FROM pg_policy WHERE polrelid = ANY($1) ORDER BY 1, 2`, oids)
	if err != nil {
		return err
	}
	var rel uint32
	var p policy
	_, err = pgx.ForEachRow(rows, []any{&rel, &p.name, &p.permissive}, func() error {
		cat.byOID[rel].policies = append(cat.byOID[rel].policies, p)
		return nil
	})
	return err
}

// readSerials finds, for each table in tables, the sequences that its columns' defaults own (serial
// columns: identity columns need no privilege on theirs), and whether role app may use them.
func (cat *catalog) readSerials(ctx context.Context, q querier, tables []*table, app string) error {
	oids := make([]uint32, len(tables))
	for i, t := range tables {
		oids[i] = t.oid
	}
	rows, err := q.Query(ctx, `
		SELECT d.refobjid, s.oid::regclass::text, has_sequence_privilege($2, s.oid, 'USAGE')
		  FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
		 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
		   AND d.refobjid = ANY($1)
		 ORDER BY 1, 2`, oids, app)
	if err != nil {
		return err
	}
	var rel uint32
	var seq string
	var usage bool
	_, err = pgx.ForEachRow(rows, []any{&rel, &seq, &usage}, func() error {
		t := cat.byOID[rel]
		if !slices.Contains(t.serials, seq) {
			t.serials = append(t.serials, seq)
			t.serialAppUsage = append(t.serialAppUsage, usage)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sequences: %w", err)
	}
	return nil
}
