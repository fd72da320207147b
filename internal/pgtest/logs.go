package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
)

// Logs returns the server log, whole: the container's output of a server the harness started, else the
// current stderr log file of the server of TENANTSEAL_TEST_DSN (read as its superuser).
func (s *Server) Logs(ctx context.Context) (string, error) {
	if !s.Started() {
		return s.logFile(ctx)
	}
	rc, err := s.container.Logs(ctx)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), err
}

// logFile reads the stderr log file of the server TENANTSEAL_TEST_DSN names, as its superuser: the
// server must write one (logging_collector = on, log_destination including stderr).
func (s *Server) logFile(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, s.SuperDSN)
	if err != nil {
		return "", fmt.Errorf("pgtest: read the server's log: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var log *string
	if err := conn.QueryRow(ctx, "SELECT pg_read_file(f) FROM pg_current_logfile('stderr') AS f WHERE f IS NOT NULL").Scan(&log); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return "", errors.New("pgtest: the server of TENANTSEAL_TEST_DSN writes no stderr log file: set logging_collector = on (and log_destination to include stderr) for the tests that read the log")
		}
		return "", fmt.Errorf("pgtest: read the server's log: %w", err)
	}
	return *log, nil
}
