package repo

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// field is one mapped struct field.
type field struct {
	index      int    // struct field index
	name       string // Go name, for errors
	column     string
	ident      string // column, quoted for SQL
	encrypted  bool
	blindIndex string // blind index column, "" for none
	normalizer string
	readonly   bool // set by the database (defaults); never written
	updated    bool // set to now() by Update
	kind       encKind
}

// encKind is how an encrypted field's Go value maps to plaintext bytes.
type encKind int

const (
	plainField encKind = iota
	encString
	encBytes
	encStringPtr
)

var (
	idType     = reflect.TypeFor[ID]()
	tenantType = reflect.TypeFor[tenantseal.TenantID]()
	stringType = reflect.TypeFor[string]()
	bytesType  = reflect.TypeFor[[]byte]()
	stringPtr  = reflect.TypeFor[*string]()
	int64Type  = reflect.TypeFor[int64]()
)

// tagError reports a tag that does not fit its field or column.
func tagError(t reflect.Type, sf reflect.StructField, tag, problem string) error {
	return fmt.Errorf("repo: %s.%s: tag %q: %s", t.Name(), sf.Name, tag, problem)
}

// schema is a struct type mapped to a table, checked against the catalog.
type schema struct {
	rel     db.Relation
	table   string // relation name: the table part of encryption's associated data
	fields  []field
	pk      int // index into fields
	tenant  int
	version int // -1 without a version column
}

func (s *schema) pkField() field     { return s.fields[s.pk] }
func (s *schema) tenantField() field { return s.fields[s.tenant] }

func (s *schema) byColumn(col string) (field, bool) {
	for _, f := range s.fields {
		if f.column == col {
			return f, true
		}
	}
	return field{}, false
}

// parseSchema maps the `ts` tags of t and checks them against rel and the registry of encrypted columns,
// whose entries it matches by schema and name: a table of the same name in another schema is another.
//
// Tag: `ts:"column[,option...]"`. Options: pk (the id column, type ID), tenant (the tenant column, type
// tenantseal.TenantID), encrypted (string, []byte or *string; stored as bytea ciphertext), bidx=<column> (a
// blind index column for an encrypted field), normalize=<exact|lower|email>, version (int64, optimistic
// concurrency), readonly (set by the database), updated (set to now() by Update, by its default on Insert).
func parseSchema(t reflect.Type, rel db.Relation, registry []pgstore.Column) (*schema, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("repo: %s is not a struct", t)
	}
	s := &schema{rel: rel, table: rel.Name, pk: -1, tenant: -1, version: -1}
	seen := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("ts")
		if !ok || tag == "-" {
			continue
		}
		if !sf.IsExported() {
			return nil, fmt.Errorf("repo: %s.%s: tagged field is not exported", t.Name(), sf.Name)
		}
		parts := strings.Split(tag, ",")
		f := field{index: i, name: sf.Name, column: parts[0], ident: pgx.Identifier{parts[0]}.Sanitize(), normalizer: "exact"}
		if f.column == "" {
			return nil, tagError(t, sf, tag, "no column name")
		}
		if seen[f.column] {
			return nil, tagError(t, sf, tag, "column mapped twice")
		}
		seen[f.column] = true
		colType, exists := rel.Columns[f.column]
		if !exists {
			return nil, fmt.Errorf("repo: %s.%s: column %q does not exist in %s", t.Name(), sf.Name, f.column, rel.QualifiedName())
		}
		for _, opt := range parts[1:] {
			key, val, _ := strings.Cut(opt, "=")
			switch key {
			case "pk":
				if s.pk >= 0 {
					return nil, tagError(t, sf, tag, "a second pk field")
				}
				if sf.Type != idType || colType != "uuid" {
					return nil, tagError(t, sf, tag, "pk must be a repo.ID field on a uuid column")
				}
				s.pk = len(s.fields)
			case "tenant":
				if s.tenant >= 0 {
					return nil, tagError(t, sf, tag, "a second tenant field")
				}
				if sf.Type != tenantType || colType != "uuid" {
					return nil, tagError(t, sf, tag, "tenant must be a tenantseal.TenantID field on a uuid column")
				}
				s.tenant = len(s.fields)
			case "encrypted":
				f.encrypted = true
			case "bidx":
				f.blindIndex = val
			case "normalize":
				f.normalizer = val
			case "version":
				if s.version >= 0 {
					return nil, tagError(t, sf, tag, "a second version field")
				}
				if sf.Type != int64Type || (colType != "bigint" && colType != "integer") {
					return nil, tagError(t, sf, tag, "version must be an int64 field on an integer column")
				}
				s.version = len(s.fields)
			case "readonly":
				f.readonly = true
			case "updated":
				f.updated = true
			default:
				return nil, tagError(t, sf, tag, "unknown option "+key)
			}
		}
		if f.encrypted {
			switch sf.Type {
			case stringType:
				f.kind = encString
			case bytesType:
				f.kind = encBytes
			case stringPtr:
				f.kind = encStringPtr
			default:
				return nil, tagError(t, sf, tag, "an encrypted field must be string, []byte or *string, not "+sf.Type.String())
			}
			if colType != "bytea" {
				return nil, tagError(t, sf, tag, "an encrypted column must be bytea, not "+colType)
			}
			if _, ok := keys.NormalizerByName(f.normalizer); !ok {
				return nil, tagError(t, sf, tag, "unknown normalizer "+f.normalizer)
			}
			if f.blindIndex != "" {
				if rel.Columns[f.blindIndex] != "bytea" {
					return nil, tagError(t, sf, tag, "blind index column "+f.blindIndex+" must exist and be bytea")
				}
				if f.kind == encBytes {
					return nil, tagError(t, sf, tag, "blind indexes need a string field")
				}
			}
			// Re-encryption and key retirement walk the registry: an unregistered column would be missed.
			i := slices.IndexFunc(registry, func(c pgstore.Column) bool {
				return c.Schema == rel.Schema && c.Name == rel.Name && c.Column == f.column
			})
			if i < 0 {
				return nil, fmt.Errorf("repo: %s.%s: %s.%s is not registered in tenantseal.encrypted_columns (re-encryption would miss it)", t.Name(), sf.Name, rel.QualifiedName(), f.column)
			}
			if r := registry[i]; r.BlindIndex != f.blindIndex || r.Normalizer != f.normalizer {
				return nil, fmt.Errorf("repo: %s.%s: tag says bidx=%q normalize=%q, tenantseal.encrypted_columns says %q and %q", t.Name(), sf.Name, f.blindIndex, f.normalizer, r.BlindIndex, r.Normalizer)
			}
		} else if f.blindIndex != "" || f.normalizer != "exact" {
			return nil, tagError(t, sf, tag, "bidx and normalize need encrypted")
		}
		s.fields = append(s.fields, f)
	}
	if s.pk < 0 || s.tenant < 0 {
		return nil, fmt.Errorf("repo: %s needs a field tagged pk (repo.ID) and one tagged tenant (tenantseal.TenantID)", t.Name())
	}
	for _, i := range []int{s.pk, s.tenant} {
		if f := s.fields[i]; f.encrypted || f.readonly || f.updated {
			return nil, fmt.Errorf("repo: %s.%s: the pk and tenant fields take no other option", t.Name(), f.name)
		}
	}
	if s.pk == s.tenant {
		return nil, fmt.Errorf("repo: %s.%s: one field cannot be both pk and tenant", t.Name(), s.fields[s.pk].name)
	}
	return s, nil
}
