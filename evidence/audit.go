package evidence

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
)

// Audit is audit.json: the state of the audit log and what it recorded in the range.
type Audit struct {
	Schema string `json:"schema"`
	// Verify is the hash chain checked whole by [audit.Verify].
	Verify ChainVerify `json:"verify"`
	// Checkpoints is the chain checked against signed checkpoints, when Config.Checkpoints is set.
	Checkpoints Checkpoints `json:"checkpoints"`
	// ContextRefusals counts the tenant contexts the database refused since it was migrated.
	ContextRefusals int64      `json:"context_refusals"`
	Since           *time.Time `json:"since"` // nil: from the first entry
	Until           time.Time  `json:"until"`
	// Kinds counts the entries of each kind in the range.
	Kinds []KindCount `json:"kinds"`
	// Elevations are the elevated uses in the range, each with its reason in Detail.
	Elevations EntryList `json:"elevations"`
	// OperatorActions are the entries of operator kinds in the range (tenantseal.EventKind.Operator).
	OperatorActions EntryList `json:"operator_actions"`
}

// ChainVerify is the outcome of [audit.Verify].
type ChainVerify struct {
	Intact   bool    `json:"intact"`
	Verified int64   `json:"verified"` // entries that hold before any break
	BrokenAt *int64  `json:"broken_at"`
	Reason   *string `json:"reason"`
}

// Checkpoints is the outcome of Config.Checkpoints.
type Checkpoints struct {
	Checked bool   `json:"checked"`
	OK      bool   `json:"ok"`
	Summary string `json:"summary"`
	Details any    `json:"details,omitempty"`
}

// KindCount is how many entries of a kind the range holds.
type KindCount struct {
	Kind  string `json:"kind"`
	Count int64  `json:"count"`
}

// EntryList is a list of entries, cut at Config.MaxEntries.
type EntryList struct {
	Count     int64         `json:"count"`
	Truncated bool          `json:"truncated"`
	Entries   []audit.Entry `json:"entries"`
}

// readAudit reads audit.json as the auditor: the chain, then what the range holds.
func readAudit(ctx context.Context, q pgx.Tx, cfg Config, sec *secrets) (*Audit, error) {
	out := &Audit{Schema: SchemaAudit, Until: cfg.Until.UTC(), Kinds: []KindCount{}}
	if !cfg.Since.IsZero() {
		s := cfg.Since.UTC()
		out.Since = &s
	}
	res, err := audit.Verify(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	out.Verify = ChainVerify{Intact: res.Break == nil, Verified: res.Rows}
	if res.Break != nil {
		out.Verify.BrokenAt, out.Verify.Reason = &res.Break.Seq, &res.Break.Reason
	}
	// The seam for signed checkpoints: checked through the same snapshot as the chain.
	out.Checkpoints.Summary = "not checked: no checkpoint verifier configured"
	if cfg.Checkpoints != nil {
		cp, err := cfg.Checkpoints(ctx, q)
		if err != nil {
			out.Checkpoints = Checkpoints{Checked: true, Summary: "the checkpoints could not be checked: " + sec.scrub.Redact(err.Error())}
		} else {
			out.Checkpoints = Checkpoints{Checked: true, OK: cp.OK, Summary: cp.Summary, Details: cp.Details}
		}
	}
	if out.ContextRefusals, err = audit.ContextRefusals(ctx, q); err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}

	var since any
	if out.Since != nil {
		since = *out.Since
	}
	rows, err := q.Query(ctx, `SELECT kind, count(*) FROM tenantseal.audit_log
		WHERE ($1::timestamptz IS NULL OR at >= $1) AND at < $2 GROUP BY kind ORDER BY kind`, since, out.Until)
	if err != nil {
		return nil, fmt.Errorf("evidence: count audit entries: %w", err)
	}
	if out.Kinds, err = pgx.CollectRows(rows, pgx.RowToStructByPos[KindCount]); err != nil {
		return nil, fmt.Errorf("evidence: count audit entries: %w", err)
	}
	var operator []tenantseal.EventKind
	for _, k := range tenantseal.EventKinds() {
		if k.Operator() {
			operator = append(operator, k)
		}
	}
	if out.Elevations, err = entries(ctx, q, cfg, []tenantseal.EventKind{tenantseal.EventElevation}); err != nil {
		return nil, err
	}
	if out.OperatorActions, err = entries(ctx, q, cfg, operator); err != nil {
		return nil, err
	}
	return out, nil
}

// entries lists the first cfg.MaxEntries entries of kinds in the range, in sequence order, and counts
// them all.
func entries(ctx context.Context, q pgx.Tx, cfg Config, kinds []tenantseal.EventKind) (EntryList, error) {
	l := EntryList{Entries: []audit.Entry{}}
	for _, k := range kinds {
		// The first MaxEntries of each kind hold the first MaxEntries of all.
		kept := 0
		f := audit.Filter{Kind: k, Since: cfg.Since}
		for {
			page, err := audit.Query(ctx, q, f)
			if err != nil {
				return l, fmt.Errorf("evidence: %w", err)
			}
			for _, e := range page {
				if !e.At.Before(cfg.Until) {
					continue
				}
				l.Count++
				if kept < cfg.MaxEntries {
					e.PrevHash, e.Hash = nil, nil // audit verify covers them; the lists are for reading
					l.Entries = append(l.Entries, e)
					kept++
				}
			}
			if len(page) < audit.DefaultPageSize {
				break
			}
			f.AfterSeq = page[len(page)-1].Seq
		}
	}
	slices.SortFunc(l.Entries, func(a, b audit.Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(l.Entries) > cfg.MaxEntries {
		l.Entries = l.Entries[:cfg.MaxEntries]
	}
	l.Truncated = l.Count > int64(len(l.Entries))
	return l, nil
}
