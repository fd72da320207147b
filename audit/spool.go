package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// spool is an append-only JSON-lines file of events waiting for the database, synced on every append.
type spool struct {
	mu   sync.Mutex
	path string
	n    int // events in the file, as far as this process knows
}

func openSpool(path string) (*spool, error) {
	s := &spool{path: path}
	events, err := s.read()
	if err != nil {
		return nil, err
	}
	s.n = len(events) // a previous process's leftovers are replayed first
	return s, nil
}

func (s *spool) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n > 0
}

func (s *spool) append(batch []Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: spool: %w", err)
	}
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	for _, en := range batch {
		if err := enc.Encode(en); err != nil {
			f.Close()
			return fmt.Errorf("audit: spool: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("audit: spool: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit: spool: %w", err)
	}
	s.n += len(batch)
	return f.Close()
}

// read returns the spooled events. A torn last line (a crash mid-append) is skipped.
func (s *spool) read() ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readLocked()
}

func (s *spool) readLocked() ([]Entry, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: spool: %w", err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var en Entry
		if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
			continue
		}
		out = append(out, en)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: spool: %w", err)
	}
	return out, nil
}

// dropFirst removes the first n events, those just replayed, keeping any appended since.
func (s *spool) dropFirst(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	events, err := s.readLocked()
	if err != nil {
		return err
	}
	return s.rewriteLocked(events[min(n, len(events)):])
}

// rewriteLocked replaces the spool with events (none: remove it), atomically.
func (s *spool) rewriteLocked(events []Entry) error {
	if len(events) == 0 {
		s.n = 0
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".spool-*")
	if err != nil {
		return err
	}
	enc := json.NewEncoder(tmp)
	for _, en := range events {
		if err := enc.Encode(en); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	tmp.Close()
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	s.n = len(events)
	return nil
}

func (s *spool) close() error { return nil }
