package audit

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// tree is the RFC 6962 Merkle tree over entries' canonical encodings, computed by the reader from the
// entries it reads, in the stored-hash layout of golang.org/x/mod/sumdb/tlog. A full tree keeps every
// stored hash (about 64 bytes an entry) and proves inclusion and consistency at any size; a frontier
// keeps only the O(log n) hashes that the next append and the current root need.
type tree struct {
	size     int64
	full     bool
	hashes   []tlog.Hash         // full: stored hash i at index i
	frontier map[int64]tlog.Hash // !full: the stored hashes of the perfect subtrees of size
}

func newTree(full bool) *tree {
	if full {
		return &tree{full: true}
	}
	return &tree{frontier: map[int64]tlog.Hash{}}
}

// ReadHashes implements tlog.HashReader.
func (t *tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if t.full {
			if x < 0 || x >= int64(len(t.hashes)) {
				return nil, fmt.Errorf("audit: tree: stored hash %d not computed", x)
			}
			out[i] = t.hashes[x]
			continue
		}
		h, ok := t.frontier[x]
		if !ok {
			return nil, fmt.Errorf("audit: tree: stored hash %d not kept", x)
		}
		out[i] = h
	}
	return out, nil
}

// append adds the entry as the next leaf.
func (t *tree) append(e *Entry) error {
	hs, err := tlog.StoredHashes(t.size, canonical(e), t)
	if err != nil {
		return err
	}
	base := tlog.StoredHashIndex(0, t.size)
	t.size++
	if t.full {
		t.hashes = append(t.hashes, hs...)
		return nil
	}
	for i, h := range hs {
		t.frontier[base+int64(i)] = h
	}
	// Keep the roots of the perfect subtrees that make up the tree: one per bit set in its size.
	keep := map[int64]bool{}
	for level := 0; t.size>>level > 0; level++ {
		if t.size>>level&1 == 1 {
			keep[tlog.StoredHashIndex(level, t.size>>level-1)] = true
		}
	}
	for x := range t.frontier {
		if !keep[x] {
			delete(t.frontier, x)
		}
	}
	return nil
}

// root is the tree hash of the whole tree.
func (t *tree) root() (tlog.Hash, error) { return tlog.TreeHash(t.size, t) }

// leafHash is the Merkle leaf hash of an entry.
func leafHash(e *Entry) tlog.Hash { return tlog.RecordHash(canonical(e)) }
