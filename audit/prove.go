package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// InclusionSchema names the JSON form of an [InclusionProof].
const InclusionSchema = "tenantseal/audit-inclusion/v1"

// InclusionProof proves that one entry is in the log that a signed checkpoint covers: anyone with the
// verifier key checks it with [CheckInclusion], without the database.
type InclusionProof struct {
	Schema string `json:"schema"`
	Seq    int64  `json:"seq"`
	// Entry is the entry as stored; Canonical its canonical encoding, the Merkle leaf's data.
	Entry     Entry  `json:"entry"`
	Canonical []byte `json:"canonical"`
	// Proof is the RFC 6962 inclusion proof of leaf Seq-1 in the tree of the checkpoint's size.
	Proof [][]byte `json:"proof"`
	// Checkpoint is the signed checkpoint, as published.
	Checkpoint string `json:"checkpoint"`
}

// ProveEntry reads the log, recomputes the Merkle tree from its entries, checks it against the signed
// checkpoint cp (as [VerifyCheckpoints] would) and returns the inclusion proof of entry seq in it. It
// fails when the checkpoint does not verify, does not cover seq, or does not match the entries.
func ProveEntry(ctx context.Context, q Querier, v note.Verifier, cp SignedCheckpoint, seq int64) (*InclusionProof, error) {
	c, err := OpenCheckpoint(cp.Name, cp.Note, v)
	if err != nil {
		return nil, err
	}
	if seq < 1 || seq > c.Size {
		return nil, fmt.Errorf("audit: prove: entry %d is not under checkpoint %s (entries 1..%d)", seq, cp.Name, c.Size)
	}
	t := newTree(true)
	var entry *Entry
	res, err := walk(ctx, q, func(e *Entry) *Break {
		if t.size < c.Size {
			if err := t.append(e); err != nil {
				return &Break{Seq: e.Seq, Reason: err.Error()}
			}
		}
		if e.Seq == seq {
			en := *e
			entry = &en
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("audit: prove: %w", err)
	case res.Break != nil:
		return nil, fmt.Errorf("audit: prove: %w", res.Break)
	case t.size < c.Size:
		return nil, fmt.Errorf("audit: prove: the log ends at %d but checkpoint %s signs %d entries", t.size, cp.Name, c.Size)
	}
	root, err := t.root()
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	if root != c.Root {
		return nil, fmt.Errorf("audit: prove: the entries do not match checkpoint %s: run 'tenantseal audit verify'", cp.Name)
	}
	proof, err := tlog.ProveRecord(c.Size, seq-1, t)
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	p := &InclusionProof{Schema: InclusionSchema, Seq: seq, Entry: *entry, Canonical: canonical(entry), Checkpoint: string(cp.Note)}
	for _, h := range proof {
		p.Proof = append(p.Proof, bytes.Clone(h[:]))
	}
	return p, nil
}

// CheckInclusion checks an inclusion proof with the verifier key v: the checkpoint's signature and
// origin, that Canonical is the encoding of Entry and names Seq, and the proof against the signed root.
// It returns the checkpoint.
func CheckInclusion(p *InclusionProof, v note.Verifier) (Checkpoint, error) {
	if p == nil || p.Schema != InclusionSchema {
		return Checkpoint{}, fmt.Errorf("audit: not an inclusion proof (schema %s)", InclusionSchema)
	}
	c, err := OpenCheckpoint("in the proof", []byte(p.Checkpoint), v)
	if err != nil {
		return Checkpoint{}, err
	}
	if p.Seq < 1 || p.Seq > c.Size {
		return Checkpoint{}, fmt.Errorf("audit: inclusion proof: entry %d is not under its checkpoint (entries 1..%d)", p.Seq, c.Size)
	}
	if len(p.Canonical) < 8 || int64(binary.BigEndian.Uint64(p.Canonical)) != p.Seq || p.Entry.Seq != p.Seq {
		return Checkpoint{}, fmt.Errorf("audit: inclusion proof: its entry is not entry %d", p.Seq)
	}
	if !bytes.Equal(canonical(&p.Entry), p.Canonical) {
		return Checkpoint{}, errors.New("audit: inclusion proof: the entry does not match its canonical encoding")
	}
	proof := make(tlog.RecordProof, len(p.Proof))
	for i, h := range p.Proof {
		if len(h) != tlog.HashSize {
			return Checkpoint{}, errors.New("audit: inclusion proof: a proof hash is not a SHA-256 hash")
		}
		copy(proof[i][:], h)
	}
	if err := tlog.CheckRecord(proof, c.Size, c.Root, p.Seq-1, leafHash(&p.Entry)); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: inclusion proof: entry %d is not in the log of the checkpoint: %w", p.Seq, err)
	}
	return c, nil
}
