package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Publisher stores signed checkpoints outside the database, where the database's owner and superuser
// cannot rewrite them: a directory ([Dir]), and, by implementing this interface, an object store
// with object lock or versioning, or an external witness that countersigns each checkpoint and keeps
// its own copy.
type Publisher interface {
	// Publish stores signed, the signed note of cp. It must keep every checkpoint it was given: never
	// replace one with a different checkpoint of the same size (return an error instead); publishing
	// the same bytes again must succeed. It may be called from several goroutines.
	Publish(ctx context.Context, cp Checkpoint, signed []byte) error
}

// LatestPublisher is a [Publisher] that can return the last checkpoint it stored: a [Checkpointer]
// checks the log against it before it signs anything, so that it never signs a history rewritten
// before it started.
type LatestPublisher interface {
	Publisher
	// Latest returns the signed note of the largest checkpoint stored, or nil when there is none.
	Latest(ctx context.Context) ([]byte, error)
}

// SignedCheckpoint is a signed checkpoint as read back, and where from (a file name), for messages.
type SignedCheckpoint struct {
	Name string
	Note []byte
}

// Dir is a checkpoint directory: one file per checkpoint, <size, 20 digits>.checkpoint, created once
// and never overwritten, and the file latest, a copy of the largest, replaced atomically. One process
// should publish into a directory; readers may read it at any time.
type Dir string

// LatestName is the name of the copy of the largest checkpoint in a [Dir].
const LatestName = "latest"

const checkpointExt = ".checkpoint"

func (d Dir) fileName(size int64) string { return fmt.Sprintf("%020d%s", size, checkpointExt) }

// Publish writes the checkpoint's file (the same bytes again are accepted; others are refused) and
// moves latest to it unless latest names a larger checkpoint. It creates the directory if needed.
func (d Dir) Publish(ctx context.Context, cp Checkpoint, signed []byte) error {
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return fmt.Errorf("audit: publish checkpoint: %w", err)
	}
	path := filepath.Join(string(d), d.fileName(cp.Size))
	tmp, err := d.temp(signed)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// A hard link never replaces a file and is never seen half-written.
	switch err := os.Link(tmp, path); {
	case errors.Is(err, fs.ErrExist):
		old, rerr := os.ReadFile(path)
		if rerr != nil {
			return fmt.Errorf("audit: publish checkpoint: %w", rerr)
		}
		if !bytes.Equal(old, signed) {
			return fmt.Errorf("audit: publish checkpoint: %s already holds a different checkpoint of %d entries: refusing to replace it", path, cp.Size)
		}
	case err != nil:
		return fmt.Errorf("audit: publish checkpoint: %w", err)
	}
	if latest, err := os.ReadFile(filepath.Join(string(d), LatestName)); err == nil {
		if c, err := parseSignedSize(latest); err == nil && c > cp.Size {
			return nil
		}
	}
	if err := os.Rename(tmp, filepath.Join(string(d), LatestName)); err != nil {
		return fmt.Errorf("audit: publish checkpoint: update %s: %w", LatestName, err)
	}
	return nil
}

// temp writes data to a new temporary file in the directory, mode 0644 (checkpoints are public).
func (d Dir) temp(data []byte) (string, error) {
	f, err := os.CreateTemp(string(d), ".checkpoint-*")
	if err != nil {
		return "", fmt.Errorf("audit: publish checkpoint: %w", err)
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Chmod(0o644), f.Sync(), f.Close()); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("audit: publish checkpoint: %w", err)
	}
	return f.Name(), nil
}

// parseSignedSize reads the size line of a signed checkpoint without checking its signature: only to
// order checkpoints, never to trust one.
func parseSignedSize(signed []byte) (int64, error) {
	text, _, _ := bytes.Cut(signed, []byte("\n\n"))
	c, err := parseCheckpoint(string(text) + "\n")
	return c.Size, err
}

// Latest returns the content of latest, or nil when the directory holds no checkpoint yet.
func (d Dir) Latest(ctx context.Context) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(string(d), LatestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read latest checkpoint: %w", err)
	}
	return b, nil
}

// Checkpoints returns every checkpoint file of the directory and latest, by name; what they say is
// for [VerifyCheckpoints] to check. A directory that does not exist is an error: a mistyped path must
// not read as a log with no checkpoints.
func (d Dir) Checkpoints(ctx context.Context) ([]SignedCheckpoint, error) {
	ents, err := os.ReadDir(string(d))
	if err != nil {
		return nil, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	var out []SignedCheckpoint
	for _, e := range ents {
		if e.IsDir() || (!strings.HasSuffix(e.Name(), checkpointExt) && e.Name() != LatestName) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(string(d), e.Name()))
		if err != nil {
			return nil, fmt.Errorf("audit: read checkpoints: %w", err)
		}
		out = append(out, SignedCheckpoint{Name: e.Name(), Note: b})
	}
	slices.SortFunc(out, func(a, b SignedCheckpoint) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
