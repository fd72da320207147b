package lint

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
)

// Change classifies a schema change by what it does to isolation.
type Change string

// Changes, from harmless to harmful.
const (
	// ChangeSafe adds no error: at most warnings (performance).
	ChangeSafe Change = "safe"
	// ChangeBreaking adds findings that make the application fail without leaking: a command the app
	// role may run loses its policy (TS003), a protected table loses every policy (TS016).
	ChangeBreaking Change = "breaking"
	// ChangeDangerous adds an error that lets tenants reach each other's rows.
	ChangeDangerous Change = "dangerous"
)

// Diff is what a schema change does to the findings.
type Diff struct {
	Change  Change    `json:"change"`
	Added   []Finding `json:"added"`
	Removed []Finding `json:"removed"`
}

// Compare classifies the change from the findings before to those after: the worst added finding
// decides. Findings are matched as a [Baseline] matches them.
func Compare(before, after []Finding) Diff {
	d := Diff{Change: ChangeSafe}
	d.Added, _ = NewBaseline(before).Filter(after)
	d.Removed, _ = NewBaseline(after).Filter(before)
	if d.Added == nil {
		d.Added = []Finding{}
	}
	if d.Removed == nil {
		d.Removed = []Finding{}
	}
	breaks := map[string]bool{}
	for _, r := range rules {
		breaks[r.ID] = r.breaks
	}
	for _, f := range d.Added {
		switch {
		case f.Severity != SeverityError:
		case breaks[f.Rule]:
			if d.Change == ChangeSafe {
				d.Change = ChangeBreaking
			}
		default:
			d.Change = ChangeDangerous
		}
	}
	return d
}

// CheckMigration lints the schema before and after the SQL of a migration, which it runs in a savepoint
// of tx and rolls back whatever happens: the database is left as it was. Run tx as the role that applies
// migrations (the owner). Options may name what the migration creates (a schema, a registry): if they
// are invalid before it, the schema had none of their findings.
func CheckMigration(ctx context.Context, tx pgx.Tx, opts Options, migration string) (Diff, error) {
	before, err := Run(ctx, tx, opts)
	if errors.Is(err, ErrOptions) {
		before, err = nil, nil
	}
	if err != nil {
		return Diff{}, err
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return Diff{}, fmt.Errorf("lint: migration: %w", err)
	}
	// Rolled back whatever happens; an error of the rollback itself leaves tx failed, which the caller
	// rolls back too.
	defer func() { _ = sp.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := sp.Exec(ctx, migration); err != nil {
		return Diff{}, fmt.Errorf("lint: migration: %w", err)
	}
	after, err := Run(ctx, sp, opts)
	if err != nil {
		return Diff{}, err
	}
	return Compare(before, after), nil
}

// WriteDiffText writes a diff for people: its classification, then the added (+) and removed (-)
// findings, each as [WriteText] writes it.
//
//	dangerous: 1 finding added, 0 removed
//	+ TS005 error notes_select on public.notes: ...
//		fix: ...
func WriteDiffText(w io.Writer, d Diff) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s: %d %s added, %d removed\n", d.Change, len(d.Added), plural(len(d.Added), "finding"), len(d.Removed))
	for _, part := range []struct {
		sign string
		fs   []Finding
	}{{"+", d.Added}, {"-", d.Removed}} {
		for _, f := range part.fs {
			fmt.Fprintf(bw, "%s %s %s %s: %s\n", part.sign, f.Rule, f.Severity, f.Object, f.Message)
			if f.Fix != "" && part.sign == "+" {
				fmt.Fprintf(bw, "\tfix: %s\n", f.Fix)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("lint: write: %w", err)
	}
	return nil
}

// WriteDiffJSON writes a diff as a JSON object with the keys change, added and removed.
func WriteDiffJSON(w io.Writer, d Diff) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return fmt.Errorf("lint: write: %w", err)
	}
	return nil
}
