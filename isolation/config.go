package isolation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// FileConfig is what a small JSON file tells the suite about a schema of your own, on top of what the
// catalog says:
//
//	{
//	  "exclude": {"audit.events": "append-only, written by triggers only"},
//	  "accept_global": ["public.countries"],
//	  "accept_oracles": ["public.slug_taken"],
//	  "tables": {"public.invoices": {"values": {"currency": "EUR"}}}
//	}
//
// exclude names tables (schema.name, or name for public) the suite neither seeds nor attacks, each with
// the reason the report repeats; accept_global names tables without a tenant column that every tenant
// is meant to read (reference data); accept_oracles are as [Config.AcceptOracles]; tables gives seeding
// hints: a value, in text form, for a column that the suite cannot guess (a CHECK that calls a
// function, a trigger's expectations).
type FileConfig struct {
	Exclude       map[string]string    `json:"exclude"`
	AcceptGlobal  []string             `json:"accept_global"`
	AcceptOracles []string             `json:"accept_oracles"`
	Tables        map[string]TableHint `json:"tables"`
}

// TableHint is how to seed one table.
type TableHint struct {
	// Values fixes columns of every seeded row, in text form (cast to the column's type).
	Values map[string]string `json:"values"`
}

// Skipped is a table the suite left alone, and why.
type Skipped struct {
	Table  string `json:"table"`
	Reason string `json:"reason"`
}

// LoadConfigFile reads a [FileConfig] from path and merges it into cfg: its lists are added to cfg's,
// its hints and exclusions to cfg's. Unknown fields are an error, so that a misspelt key is not a
// silently ignored exclusion.
func LoadConfigFile(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("isolation: config file: %w", err)
	}
	var fc FileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fmt.Errorf("isolation: config file %s: %w", path, err)
	}
	for name, why := range fc.Exclude {
		if why == "" {
			return fmt.Errorf("isolation: config file %s: exclude %q: say why (the report repeats it)", path, name)
		}
		if cfg.Exclude == nil {
			cfg.Exclude = map[string]string{}
		}
		cfg.Exclude[name] = why
	}
	cfg.AcceptGlobal = append(cfg.AcceptGlobal, fc.AcceptGlobal...)
	cfg.AcceptOracles = append(cfg.AcceptOracles, fc.AcceptOracles...)
	for name, h := range fc.Tables {
		if cfg.Hints == nil {
			cfg.Hints = map[string]TableHint{}
		}
		cfg.Hints[name] = h
	}
	return nil
}

// skip reports whether a table, by any of its names, is excluded, and why.
func (c *Config) skip(names ...string) (string, bool) {
	for _, n := range names {
		if why, ok := c.Exclude[n]; ok {
			return why, true
		}
	}
	return "", false
}

// hint returns the seeding values configured for t.
func (c *Config) hint(t *table) map[string]string {
	for _, n := range []string{t.String(), t.schema + "." + t.name} {
		if h, ok := c.Hints[n]; ok {
			return h.Values
		}
	}
	return nil
}

// acceptedGlobal reports whether t is named in AcceptGlobal.
func (c *Config) acceptedGlobal(t *table) bool {
	return slices.Contains(c.AcceptGlobal, t.String()) || slices.Contains(c.AcceptGlobal, t.schema+"."+t.name)
}
