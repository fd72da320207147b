package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Logs returns the server log of a server the harness started (its container's output), whole.
func (s *Server) Logs(ctx context.Context) (string, error) {
	if !s.Started() {
		return "", errors.New("pgtest: the server's log is read from the container pgtest started, and TENANTSEAL_TEST_DSN names a server of its own")
	}
	rc, err := s.container.Logs(ctx)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), err
}
