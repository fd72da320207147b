package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
)

// DefaultSecurityInterval is how often the writer of a long-running process should compare the
// database's security state with the one last recorded (Config.SecurityInterval).
const DefaultSecurityInterval = time.Minute

// SecurityEntry is a schema, privilege or role change as the chain holds it: a ddl entry of the event
// triggers, a security_change entry ("object aspect: old → new"), or the security_baseline.
type SecurityEntry struct {
	Seq     int64
	Kind    tenantseal.EventKind
	Subject string // "db:<role>" for what an event trigger saw, "watcher:<instance>" for the watcher
	Detail  string
}

func (e SecurityEntry) String() string {
	return fmt.Sprintf("#%d %s by %s: %s", e.Seq, e.Kind, e.Subject, e.Detail)
}

// CheckSecurity compares the database's security state (row-level security, policies and privileges of
// tenant tables; tenantseal's roles, their attributes, memberships and settings; tenantseal's functions;
// event triggers) with the one last recorded, appends each difference to the chain as a
// tenantseal.EventSecurityChange entry (the first check records a tenantseal.EventSecurityBaseline),
// and returns the security entries appended since the previous check, by itself or by the event
// triggers, oldest first, at most 1000. Each is logged: changes at ERROR, the baseline at INFO. With
// Config.SecurityInterval the writer does this at start and at that interval, on its own connections,
// as the audit writer role: the app role can neither run the comparison nor stop it. A change undone
// between two comparisons, and not made by DDL while the event triggers are installed, is not seen.
func (w *Writer) CheckSecurity(ctx context.Context) ([]SecurityEntry, error) {
	rows, err := w.pool.Query(ctx, "SELECT seq, kind, coalesce(subject, ''), coalesce(detail, '') FROM tenantseal.security_watch($1)", w.cfg.Instance)
	if err != nil {
		return nil, fmt.Errorf("audit: check security state: %w", err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SecurityEntry, error) {
		var e SecurityEntry
		err := r.Scan(&e.Seq, &e.Kind, &e.Subject, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: check security state: %w", err)
	}
	for _, e := range got {
		if e.Kind == tenantseal.EventSecurityBaseline {
			w.log.InfoContext(ctx, "tenantseal audit: security state recorded", "seq", e.Seq, "detail", e.Detail)
			continue
		}
		w.log.ErrorContext(ctx, "tenantseal audit: security state changed", "seq", e.Seq, "kind", string(e.Kind), "by", e.Subject, "change", e.Detail)
	}
	return got, nil
}

// watch runs CheckSecurity at start and every Config.SecurityInterval until the writer closes. A
// database without tenantseal.security_watch (migrations before 0022) is named once, at WARN.
func (w *Writer) watch() {
	defer close(w.watchDone)
	tick := time.NewTicker(w.cfg.SecurityInterval)
	defer tick.Stop()
	warned := false
	for {
		ctx, cancel := context.WithTimeout(w.base, w.cfg.WriteTimeout)
		_, err := w.CheckSecurity(ctx)
		cancel()
		var pe *pgconn.PgError
		switch {
		case err == nil:
			warned = false
		case errors.As(err, &pe) && pe.Code == "42883":
			if !warned {
				w.log.Warn("tenantseal audit: no tenantseal.security_watch in this database (migrate to 0022): security changes are not compared", "error", err.Error())
				warned = true
			}
		default:
			// Down, or the state locked by a DDL transaction that is recording its own changes: next time.
			w.log.Warn("tenantseal audit: security state not compared, retried", "error", err.Error())
		}
		select {
		case <-tick.C:
		case <-w.stop:
			return
		}
	}
}
