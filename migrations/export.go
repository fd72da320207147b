package migrations

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Export writes tenantseal's embedded migration files ([FS]) into dir, creating it if needed, so that
// the stock migrate CLI can run them from a binary-only install (-source file://dir). It returns the
// names written. A file of the same name that holds something else is never overwritten: Export then
// fails before writing anything; one that holds the same bytes is left as it is.
func Export(dir string) ([]string, error) {
	files := FS()
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations: export: %w", err)
	}
	type file struct {
		name string
		data []byte
		same bool
	}
	var todo []file
	for _, e := range entries {
		data, err := fs.ReadFile(files, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrations: export: %w", err)
		}
		old, err := os.ReadFile(filepath.Join(dir, e.Name()))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("migrations: export: %w", err)
		case !bytes.Equal(old, data):
			return nil, fmt.Errorf("migrations: export: %s holds another %s: refusing to overwrite it (export into an empty directory)", dir, e.Name())
		}
		todo = append(todo, file{e.Name(), data, err == nil})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("migrations: export: %w", err)
	}
	var written []string
	for _, f := range todo {
		if f.same {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return written, fmt.Errorf("migrations: export: %w", err)
		}
		written = append(written, f.name)
	}
	return written, nil
}
