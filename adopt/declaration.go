package adopt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// DefaultTenantColumn is the tenant column of a [Declaration] that names none.
const DefaultTenantColumn = "tenant_id"

// Declaration says what adopt cannot read from the catalog: which column holds the tenant, which table
// lists the tenants, and which tables belong to no tenant. Table names are "schema.table" (or "table",
// in the first of Schemas), spelled as the catalog stores them: case-sensitive, unquoted.
type Declaration struct {
	// Schemas to adopt. Default: ["public"].
	Schemas []string `json:"schemas,omitempty"`
	// TenantColumn is the column that names a row's tenant. Default: [DefaultTenantColumn].
	TenantColumn string `json:"tenant_column,omitempty"`
	// TenantColumns overrides TenantColumn per table: {"public.billing": "account_id"}.
	TenantColumns map[string]string `json:"tenant_columns,omitempty"`
	// Registry is the application's own table of tenants, if it has one. Without it the tenants are
	// tenantseal.tenants.
	Registry *Registry `json:"registry,omitempty"`
	// Global tables hold no tenant's rows: every tenant reads them (the app role gets SELECT).
	Global []string `json:"global,omitempty"`
	// Exclude lists tables adopt leaves as they are (the app role gets nothing on them).
	Exclude []string `json:"exclude,omitempty"`
	// KeepPrimaryKeys keeps one-column primary keys as they are and adds (tenant, id) beside them, for
	// applications that cannot address rows by a composite key. The one-column key then still answers,
	// with a duplicate-key error, whether another tenant has an id a tenant inserts: lint reports it
	// (TS008). By default the primary key becomes (tenant, id).
	KeepPrimaryKeys bool `json:"keep_primary_keys,omitempty"`
	// Citus says the database is the coordinator of a Citus cluster: each tenant table is distributed by
	// its tenant column (tenantseal.distribute_table, colocated with the others, every table after the
	// tables its foreign keys reference) and each global table becomes a reference table, on every node.
	Citus bool `json:"citus,omitempty"`
}

// Registry is the application's table of tenants: one row per tenant, keyed by the tenant id.
type Registry struct {
	// Table is "schema.table", e.g. "public.companies".
	Table string `json:"table"`
	// Key is the registry's key column, the tenant id. Default: "id".
	Key string `json:"key,omitempty"`
	// Name is the column that holds the tenant's display name, if any.
	Name string `json:"name,omitempty"`
}

// ErrDeclaration is returned (wrapped) when a declaration is malformed or names a table or column that
// the catalog does not hold. Use errors.Is.
var ErrDeclaration = errors.New("adopt: invalid declaration")

// ErrOptions is returned (wrapped) when [Options] name a role that does not exist. Use errors.Is.
var ErrOptions = errors.New("adopt: invalid options")

// ParseDeclaration reads a JSON declaration. Unknown fields are refused, so a misspelt key cannot be
// silently ignored.
func ParseDeclaration(r io.Reader) (Declaration, error) {
	var d Declaration
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Declaration{}, fmt.Errorf("%w: %w", ErrDeclaration, err)
	}
	if dec.More() {
		return Declaration{}, fmt.Errorf("%w: more than one JSON value", ErrDeclaration)
	}
	return d, d.validate()
}

var tableColumnRE = regexp.MustCompile(`^([^()]+)\(([^()]+)\)$`)

// ParseRegistry parses "schema.table(key)" or "schema.table" (key id), as the command line takes it.
func ParseRegistry(s string) (Registry, error) {
	s = strings.TrimSpace(s)
	if m := tableColumnRE.FindStringSubmatch(s); m != nil {
		return Registry{Table: strings.TrimSpace(m[1]), Key: strings.TrimSpace(m[2])}, nil
	}
	if s == "" || strings.ContainsAny(s, "()") {
		return Registry{}, fmt.Errorf("%w: registry %q: want schema.table(key), e.g. public.companies(id)", ErrDeclaration, s)
	}
	return Registry{Table: s}, nil
}

// normalized returns d with defaults filled in and every table name qualified.
func (d Declaration) normalized() (Declaration, error) {
	if err := d.validate(); err != nil {
		return Declaration{}, err
	}
	n := Declaration{Schemas: d.Schemas, TenantColumn: d.TenantColumn, TenantColumns: map[string]string{}}
	if len(n.Schemas) == 0 {
		n.Schemas = []string{"public"}
	}
	if n.TenantColumn == "" {
		n.TenantColumn = DefaultTenantColumn
	}
	q := func(t string) string {
		if strings.Contains(t, ".") {
			return t
		}
		return n.Schemas[0] + "." + t
	}
	for t, c := range d.TenantColumns {
		n.TenantColumns[q(t)] = c
	}
	if d.Registry != nil {
		r := *d.Registry
		r.Table = q(r.Table)
		if r.Key == "" {
			r.Key = "id"
		}
		n.Registry = &r
	}
	for _, t := range d.Global {
		n.Global = append(n.Global, q(t))
	}
	for _, t := range d.Exclude {
		n.Exclude = append(n.Exclude, q(t))
	}
	n.KeepPrimaryKeys = d.KeepPrimaryKeys
	n.Citus = d.Citus
	return n, nil
}

func (d Declaration) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrDeclaration, fmt.Sprintf(format, a...))
	}
	for _, s := range d.Schemas {
		if strings.TrimSpace(s) == "" || strings.Contains(s, ".") {
			return bad("schema %q: want a schema name", s)
		}
		if s == "tenantseal" || strings.HasPrefix(s, "tenantseal_") || s == "pg_catalog" || s == "information_schema" {
			return bad("schema %q is not the application's", s)
		}
	}
	name := func(what, t string) error {
		if parts := strings.Split(t, "."); strings.TrimSpace(t) == "" || len(parts) > 2 || slicesHasEmpty(parts) {
			return bad("%s %q: want schema.table", what, t)
		}
		return nil
	}
	seen := map[string]string{}
	for _, l := range []struct {
		what   string
		tables []string
	}{{"global table", d.Global}, {"excluded table", d.Exclude}} {
		for _, t := range l.tables {
			if err := name(l.what, t); err != nil {
				return err
			}
			if prev, ok := seen[t]; ok {
				return bad("%s is both %s and %s", t, prev, l.what)
			}
			seen[t] = l.what
		}
	}
	for t, c := range d.TenantColumns {
		if err := name("tenant_columns table", t); err != nil {
			return err
		}
		if strings.TrimSpace(c) == "" {
			return bad("tenant_columns: %s has an empty column name", t)
		}
	}
	if r := d.Registry; r != nil {
		if err := name("registry", r.Table); err != nil {
			return err
		}
		if what, ok := seen[r.Table]; ok {
			return bad("the registry %s cannot also be a %s", r.Table, what)
		}
	}
	return nil
}

func slicesHasEmpty(ss []string) bool {
	for _, s := range ss {
		if strings.TrimSpace(s) == "" {
			return true
		}
	}
	return false
}
