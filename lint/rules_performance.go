package lint

import (
	"fmt"
	"slices"
	"strings"
)

// Rules about cost: indexes that foreign keys need (TS030) and indexes that duplicate others (TS031).

func checkUnindexedForeignKeys(c *catalog) []Finding {
	var out []Finding
	for _, fk := range c.fks {
		from := c.byOID[fk.from]
		if from == nil || from.kind == "f" {
			continue
		}
		covered := slices.ContainsFunc(c.indexes, func(ix index) bool {
			if ix.table != fk.from || !ix.valid || ix.partial || len(ix.keys) < len(fk.fromKeys) {
				return false
			}
			for _, k := range ix.keys[:len(fk.fromKeys)] {
				if !slices.Contains(fk.fromKeys, k) {
					return false
				}
			}
			return true
		})
		if covered {
			continue
		}
		out = append(out, Finding{Object: fk.name + " on " + from.name,
			Message: fmt.Sprintf("no index leads with the foreign key's columns (%s): every delete or key change in %s scans %s",
				strings.Join(fk.fromColumns, ", "), c.byOIDName(fk.to), from.name),
			Fix: fmt.Sprintf("CREATE INDEX ON %s (%s)", from.name, strings.Join(fk.fromColumns, ", "))})
	}
	return out
}

func (c *catalog) byOIDName(oid uint32) string {
	if t := c.byOID[oid]; t != nil {
		return t.name
	}
	return "the referenced table"
}

// checkDuplicateIndexes reports every index with the definition of another on the same table (UNIQUE
// aside: a unique index serves every query a plain one does). Of a group, the one kept is a primary key,
// else one that backs a constraint, else a unique one, else the first by name.
func checkDuplicateIndexes(c *catalog) []Finding {
	groups := map[string][]index{}
	var keys []string
	for _, ix := range c.indexes {
		if ix.attached || !ix.valid {
			continue
		}
		if _, ok := groups[ix.def]; !ok {
			keys = append(keys, ix.def)
		}
		groups[ix.def] = append(groups[ix.def], ix)
	}
	rank := func(ix index) int {
		switch {
		case ix.primary:
			return 0
		case ix.constraint != "":
			return 1
		case ix.unique:
			return 2
		}
		return 3
	}
	var out []Finding
	for _, k := range keys {
		g := groups[k]
		if len(g) < 2 {
			continue
		}
		slices.SortFunc(g, func(a, b index) int {
			if d := rank(a) - rank(b); d != 0 {
				return d
			}
			return strings.Compare(a.name, b.name)
		})
		for _, ix := range g[1:] {
			fix := "DROP INDEX " + ix.qualified
			if ix.constraint != "" {
				fix = fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", c.byOIDName(ix.table), ix.constraint)
			}
			out = append(out, Finding{Object: ix.name + " on " + c.byOIDName(ix.table),
				Message: fmt.Sprintf("duplicates index %s (%s): every write maintains both, no read needs the second", g[0].name, strings.Join(ix.keyDefs, ", ")),
				Fix:     fix})
		}
	}
	return out
}
