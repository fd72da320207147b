package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Range is the entries with sequence numbers From to To, both included.
type Range struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// AnchoredRange is a range of entries first covered by the signed checkpoint Checkpoint (a file name):
// the entries after the previous checkpoint, up to its size.
type AnchoredRange struct {
	Range
	Checkpoint string `json:"checkpoint"`
}

// AnchorResult is the outcome of [VerifyCheckpoints]: the chain's, and what the checkpoints say of it.
type AnchorResult struct {
	VerifyResult
	// Checkpoints are the checkpoints that verified against the entries, by size.
	Checkpoints []Checkpoint
	// Anchored are the ranges of entries under a verified checkpoint, in order from seq 1.
	Anchored []AnchoredRange
	// Unanchored are the entries after the last verified checkpoint (nil when there are none): they
	// hold as a chain, but nothing outside the database vouches for them yet.
	Unanchored *Range
	// BadCheckpoint is the first checkpoint that does not verify by itself: a bad signature, another
	// log's, malformed, or contradicting another of the same size. Nil when they all do.
	BadCheckpoint *CheckpointError
}

// OK reports whether the log and every checkpoint hold. Unanchored entries do not make it fail.
func (r *AnchorResult) OK() bool { return r.Break == nil && r.BadCheckpoint == nil }

// named is a checkpoint that opened, and its file.
type named struct {
	Checkpoint
	name string
}

// VerifyCheckpoints is [Verify] that also checks the log against signed checkpoints kept outside the
// database. It checks each checkpoint's signature and origin with v; recomputes the Merkle tree from the
// entries it reads itself (it trusts no root or proof from the database); requires the root of the first
// Size entries to equal each checkpoint's signed root; and checks a consistency proof, computed from the
// entries, between each checkpoint and the one before with tlog.CheckTree against the two signed roots.
//
// It reports the first failure by the first sequence number no longer vouched for: with a rewritten,
// re-hashed chain the tree can only say which checkpoint's range changed, so Break.Seq is then the first
// entry of that range (checkpoints signed often make it narrow). A log shorter than a checkpoint breaks
// at the first missing entry. A checkpoint that does not verify is reported in BadCheckpoint and the
// others still checked. The entries after the last checkpoint are reported Unanchored, not failed.
// It keeps the whole tree in memory, about 64 bytes an entry.
func VerifyCheckpoints(ctx context.Context, q Querier, v note.Verifier, signed []SignedCheckpoint) (AnchorResult, error) {
	var res AnchorResult
	cps, bad := openCheckpoints(v, signed)
	res.BadCheckpoint = bad
	t := newTree(true)
	next := 0       // the next checkpoint to reach
	prev := named{} // the last verified one, size 0 at first
	for next < len(cps) && cps[next].Size == 0 {
		next++ // an empty log's root is the empty tree's: nothing to check
	}
	check := func(c named) *Break {
		from := prev.Size + 1
		root, err := t.root()
		if err != nil {
			return &Break{Seq: from, Reason: err.Error()}
		}
		if root != c.Root {
			return &Break{Seq: from, Reason: fmt.Sprintf("entries %d..%d do not match checkpoint %s (the signed root of %d entries): an entry in that range was edited, deleted, inserted or reordered, or the chain rewritten and re-hashed",
				from, c.Size, c.name, c.Size)}
		}
		if prev.Size > 0 {
			proof, err := tlog.ProveTree(c.Size, prev.Size, t)
			if err == nil {
				err = tlog.CheckTree(proof, c.Size, c.Root, prev.Size, prev.Root)
			}
			if err != nil {
				return &Break{Seq: from, Reason: fmt.Sprintf("checkpoints %s and %s are not consistent: %v", prev.name, c.name, err)}
			}
		}
		res.Checkpoints = append(res.Checkpoints, c.Checkpoint)
		res.Anchored = append(res.Anchored, AnchoredRange{Range: Range{From: from, To: c.Size}, Checkpoint: c.name})
		prev = c
		return nil
	}
	vr, err := walk(ctx, q, func(e *Entry) *Break {
		if err := t.append(e); err != nil {
			return &Break{Seq: e.Seq, Reason: err.Error()}
		}
		for next < len(cps) && cps[next].Size == t.size {
			if b := check(cps[next]); b != nil {
				return b
			}
			next++
		}
		return nil
	})
	res.VerifyResult = vr
	if err != nil {
		return res, err
	}
	if res.Break == nil && next < len(cps) {
		last := cps[len(cps)-1]
		res.Break = &Break{Seq: t.size + 1, Reason: fmt.Sprintf("the log ends at %d but checkpoint %s signs %d entries: entries %d..%d deleted (the tail truncated below a checkpoint)",
			t.size, last.name, last.Size, t.size+1, last.Size)}
	}
	if res.Break == nil && res.Rows > prev.Size {
		res.Unanchored = &Range{From: prev.Size + 1, To: res.Rows}
	}
	return res, nil
}

// openCheckpoints opens every signed checkpoint with v and returns those that verify, by size, one per
// size, and the first that does not (or that contradicts another of its size).
func openCheckpoints(v note.Verifier, signed []SignedCheckpoint) ([]named, *CheckpointError) {
	var bad *CheckpointError
	fail := func(e *CheckpointError) {
		if bad == nil {
			bad = e
		}
	}
	var cps []named
	for _, s := range signed {
		c, err := OpenCheckpoint(s.Name, s.Note, v)
		if err != nil {
			fail(err.(*CheckpointError))
			continue
		}
		cps = append(cps, named{c, s.Name})
	}
	// Files first, then latest: a range names the checkpoint's own file.
	slices.SortStableFunc(cps, func(a, b named) int {
		return cmp.Or(cmp.Compare(a.Size, b.Size), compareBool(a.name == LatestName, b.name == LatestName))
	})
	out := cps[:0]
	for _, c := range cps {
		if n := len(out); n > 0 && out[n-1].Size == c.Size {
			if out[n-1].Root != c.Root {
				fail(&CheckpointError{Name: c.name, Reason: fmt.Sprintf("signs %d entries with another root than %s: two histories were signed (the signing key is misused or stolen)", c.Size, out[n-1].name)})
			}
			continue
		}
		out = append(out, c)
	}
	return out, bad
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
