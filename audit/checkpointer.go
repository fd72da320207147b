package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"
)

// CheckpointerConfig configures a [Checkpointer].
type CheckpointerConfig struct {
	// Querier reads the log: connect as the auditor role (the writer role reads nothing). It only
	// reads. A *pgxpool.Pool, or a *pgx.Conn that nothing else uses meanwhile. Required.
	Querier Querier
	// Signer signs the checkpoints; its key never lives in the database. Required.
	Signer *Signer
	// Publisher stores them outside the database. Required. One that implements [LatestPublisher]
	// (a [Dir] does) is checked before the first signature: the log must match the last checkpoint
	// published.
	Publisher Publisher
}

// Checkpointer signs the audit log's head now and then and publishes the checkpoint. It computes the
// Merkle tree from the entries it reads, reads only the new ones after its first checkpoint, and keeps
// O(log n) hashes. It refuses to sign a log that no longer matches what it signed before or the last
// published checkpoint, or whose chain does not hold: signing a rewritten history would vouch for it.
// Give it to Config.Checkpointer of a [Writer] to sign after writes land, or call
// [Checkpointer.Checkpoint] (`tenantseal audit checkpoint`). Safe for concurrent use.
type Checkpointer struct {
	cfg CheckpointerConfig

	mu      sync.Mutex
	started bool
	tree    *tree
	head    []byte // chain hash of the last entry in tree
	last    Checkpoint
	signed  bool // last was signed and published
}

// NewCheckpointer returns a Checkpointer; it reads nothing until the first checkpoint.
func NewCheckpointer(cfg CheckpointerConfig) (*Checkpointer, error) {
	switch {
	case cfg.Querier == nil:
		return nil, errors.New("audit: CheckpointerConfig.Querier is nil: give it the auditor's connection")
	case cfg.Signer == nil:
		return nil, errors.New("audit: CheckpointerConfig.Signer is nil")
	case cfg.Publisher == nil:
		return nil, errors.New("audit: CheckpointerConfig.Publisher is nil")
	}
	return &Checkpointer{cfg: cfg, tree: newTree(false), head: genesis}, nil
}

// Checkpoint reads the entries appended since the last call, signs the log's size and root and
// publishes the checkpoint; when nothing was appended since the last one it published, it returns that
// one. On failure nothing is signed.
func (c *Checkpointer) Checkpoint(ctx context.Context) (Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var published *Checkpoint
	if !c.started {
		// A partial view would be signed as the whole log.
		if err := CheckWholeLog(ctx, c.cfg.Querier); err != nil {
			return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
		}
		if lp, ok := c.cfg.Publisher.(LatestPublisher); ok {
			b, err := lp.Latest(ctx)
			if err != nil {
				return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
			}
			if b != nil {
				cp, err := OpenCheckpoint(LatestName, b, c.cfg.Signer.Verifier())
				if err != nil {
					return Checkpoint{}, fmt.Errorf("audit: checkpoint: the last published checkpoint: %w", err)
				}
				published = &cp
			}
		}
	}
	t, head := c.tree, c.head
	if !c.started {
		t = newTree(false) // a failed first attempt leaves nothing behind
	} else {
		t = &tree{size: t.size, frontier: maps.Clone(t.frontier)}
	}
	check := func() error {
		if published == nil || t.size != published.Size {
			return nil
		}
		root, err := t.root()
		if err != nil {
			return err
		}
		if root != published.Root {
			return fmt.Errorf("audit: checkpoint: the first %d entries do not match the last published checkpoint: the log was rewritten; refusing to sign it", published.Size)
		}
		published = nil
		return nil
	}
	if err := check(); err != nil {
		return Checkpoint{}, err
	}
	if t.size > 0 {
		// The last entry signed must still be there as read: a log rewritten, renumbered or cut below it
		// would otherwise go on unseen (no new entry would ever link).
		last, err := entriesFrom(ctx, c.cfg.Querier, t.size, 1)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
		}
		if len(last) == 0 || last[0].Seq != t.size || !bytes.Equal(last[0].Hash, head) {
			return Checkpoint{}, fmt.Errorf("audit: checkpoint: entry %d is not as signed before: the log was rewritten or cut; refusing to sign it", t.size)
		}
	}
	for {
		entries, err := entriesFrom(ctx, c.cfg.Querier, t.size+1, verifyPage)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
		}
		for i := range entries {
			e := &entries[i]
			switch {
			case e.Seq != t.size+1:
				return Checkpoint{}, fmt.Errorf("audit: checkpoint: entry %d is missing (the next is %d): refusing to sign a broken chain", t.size+1, e.Seq)
			case !bytes.Equal(e.PrevHash, head):
				return Checkpoint{}, fmt.Errorf("audit: checkpoint: entry %d does not link to entry %d as read before: the log was rewritten; refusing to sign it", e.Seq, t.size)
			case !bytes.Equal(e.Hash, chainHash(head, e)):
				return Checkpoint{}, fmt.Errorf("audit: checkpoint: entry %d does not match its hash: refusing to sign a broken chain", e.Seq)
			}
			if err := t.append(e); err != nil {
				return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
			}
			head = e.Hash
			if err := check(); err != nil {
				return Checkpoint{}, err
			}
		}
		if len(entries) < verifyPage {
			break
		}
	}
	if published != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: the log has %d entries but the last published checkpoint signs %d: entries deleted; refusing to sign it", t.size, published.Size)
	}
	root, err := t.root()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	cp := Checkpoint{Origin: c.cfg.Signer.Name(), Size: t.size, Root: root}
	c.started, c.tree, c.head = true, t, head
	if c.signed && cp == c.last {
		return cp, nil
	}
	signed, err := c.cfg.Signer.signCheckpoint(cp)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := c.cfg.Publisher.Publish(ctx, cp, signed); err != nil {
		return Checkpoint{}, err
	}
	c.last, c.signed = cp, true
	return cp, nil
}

// DefaultCheckpointInterval is how often a [Writer]'s Checkpointer runs while entries are written.
const DefaultCheckpointInterval = time.Minute

// checkpointTimeout bounds one checkpoint of a Writer (the first reads the whole log).
const checkpointTimeout = 5 * time.Minute

// startCheckpoints starts the goroutine that runs Config.Checkpointer, if any.
func (w *Writer) startCheckpoints() {
	w.checkpointDone = make(chan struct{})
	if w.cfg.Checkpointer == nil {
		close(w.checkpointDone)
		return
	}
	w.landed = make(chan struct{}, 1)
	go w.runCheckpoints()
}

// noteLanded tells the checkpoint goroutine that entries were written; it never waits.
func (w *Writer) noteLanded() {
	if w.landed == nil {
		return
	}
	select {
	case w.landed <- struct{}{}:
	default:
	}
}

// runCheckpoints signs a checkpoint every CheckpointInterval when entries landed since the last, and a
// last one after the writer stopped writing.
func (w *Writer) runCheckpoints() {
	defer close(w.checkpointDone)
	tick := time.NewTicker(w.cfg.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			select {
			case <-w.landed:
				w.checkpoint()
			default:
			}
		case <-w.done:
			select {
			case <-w.landed:
				w.checkpoint()
			default:
			}
			return
		}
	}
}

func (w *Writer) checkpoint() {
	ctx, cancel := context.WithTimeout(w.base, checkpointTimeout)
	defer cancel()
	cp, err := w.cfg.Checkpointer.Checkpoint(ctx)
	if err != nil {
		n := w.checkpointFailures.Add(1)
		w.add(w.m.checkpointFailures, 1)
		w.log.Error("tenantseal audit: checkpoint failed: entries since the last checkpoint are not anchored yet", "error", err.Error(), "checkpoint_failures_total", n)
		// Try again at the next tick even if nothing more is written.
		w.noteLanded()
		return
	}
	w.checkpoints.Add(1)
	w.add(w.m.checkpoints, 1)
	w.log.Debug("tenantseal audit: checkpoint published", "size", cp.Size)
}

// waitCheckpoints waits for the last checkpoint after Close stopped the writing.
func (w *Writer) waitCheckpoints(ctx context.Context) error {
	select {
	case <-w.checkpointDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: close: last checkpoint: %w", ctx.Err())
	}
}
