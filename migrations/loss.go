package migrations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/audit"
)

// Loss names data that reverting one of tenantseal's migrations destroys for good.
type Loss string

// What reverting a migration destroys. Reverting any other migration of tenantseal's loses no data.
const (
	// LossTenants: reverting 0001 drops the tenantseal schema and the tenant registry, everything that
	// is left of tenantseal.
	LossTenants Loss = "tenants"
	// LossKeysets: reverting 0003 drops every tenant's keysets, so every encrypted field of every tenant
	// is unreadable for good: a crypto-shred of all tenants at once.
	LossKeysets Loss = "keysets"
	// LossAuditLog: reverting 0004 drops the audit log and its hash chain.
	LossAuditLog Loss = "audit-log"
	// LossTenantKEKs: reverting 0012 forgets which tenants have a KEK of their own, so that their
	// keysets no longer open.
	LossTenantKEKs Loss = "tenant-keks"
	// LossBindings: reverting 0023 drops the tenants' identity bindings (which issuer names which tenant
	// by which claim value), so that no tenant user can log in through a database registry until they
	// are bound again.
	LossBindings Loss = "tenant-bindings"
	// LossRetention: reverting 0024 drops the retention policies and the tenants' regions, policies
	// and deletion dates, so that the retention job deletes nothing until they are set again.
	LossRetention Loss = "retention"
)

// lossOf is what reverting each version destroys, with what counts it, for the message.
var lossOf = map[uint]struct {
	loss  Loss
	what  string
	count string // counts the data; %d in what takes its first value
}{
	1:  {LossTenants, "the tenant registry (%d tenants) and the tenantseal schema", "SELECT count(*) FROM tenantseal.tenants"},
	3:  {LossKeysets, "every tenant's keysets (%d keysets): every encrypted field of every tenant, for good", "SELECT count(*) FROM tenantseal.tenant_keysets"},
	4:  {LossAuditLog, "the audit log (%d entries)", "SELECT count(*) FROM tenantseal.audit_log"},
	12: {LossTenantKEKs, "the tenants' own KEKs (%d tenants), whose keysets then no longer open", "SELECT count(*) FROM tenantseal.tenant_keks"},
	23: {LossBindings, "the tenants' identity bindings (%d bindings)", "SELECT count(*) FROM tenantseal.tenant_bindings"},
	24: {LossRetention, "the retention policies and the tenants' regions (%d policies and tenants with a region or policy)",
		"SELECT (SELECT count(*) FROM tenantseal.retention_policies) + (SELECT count(*) FROM tenantseal.tenant_governance WHERE region IS NOT NULL OR retention_policy IS NOT NULL)"},
}

// Losses lists every Loss, in the order of the migrations that cause them.
func Losses() []Loss {
	return []Loss{LossTenants, LossKeysets, LossAuditLog, LossTenantKEKs, LossBindings, LossRetention}
}

// ParseLoss returns the Loss named s.
func ParseLoss(s string) (Loss, bool) {
	l := Loss(s)
	return l, slices.Contains(Losses(), l)
}

// ErrNotRecorded means a migration that destroys data was not run because the event announcing it did
// not reach the audit log first. Use errors.Is.
var ErrNotRecorded = errors.New("migrations: the loss could not be recorded in the audit log first, so nothing was reverted")

// LossError refuses a revert that destroys data not named in Options.ConfirmLoss. Nothing was run. A
// migration whose data is empty in this database (no keysets yet, say) needs no confirmation.
type LossError struct {
	// Unconfirmed are the losses not confirmed, each with the migration that causes it and what it
	// destroys in this database.
	Unconfirmed []LossDetail
}

// LossDetail is one loss a revert would cause.
type LossDetail struct {
	Loss    Loss
	Version uint
	What    string // what it destroys, counted in this database
}

func (e *LossError) Error() string {
	var parts, names []string
	for _, d := range e.Unconfirmed {
		parts = append(parts, fmt.Sprintf("reverting %04d drops %s", d.Version, d.What))
		names = append(names, string(d.Loss))
	}
	return fmt.Sprintf("migrations: %s: confirm with %s", strings.Join(parts, "; "), strings.Join(names, ","))
}

// Names returns the unconfirmed losses' names, comma-separated, as a confirmation names them.
func (e *LossError) Names() string {
	var names []string
	for _, d := range e.Unconfirmed {
		names = append(names, string(d.Loss))
	}
	return strings.Join(names, ",")
}

// Flusher is a Recorder that can wait until what it recorded is stored, as audit.Writer can: Flush
// reports whether everything recorded so far reached the database.
type Flusher interface {
	Flush(ctx context.Context) (bool, error)
}

// losses returns what reverting the applied versions above target (of tenantseal's own set) destroys,
// counted in the database: a migration whose data is empty destroys nothing (one whose data cannot be
// counted is taken to hold some).
func (mg *Migrator) losses(ctx context.Context, target uint) ([]LossDetail, error) {
	if !mg.own {
		return nil, nil
	}
	cur, _, err := mg.Version()
	if err != nil {
		return nil, err
	}
	var out []LossDetail
	for _, m := range list(mg.files, cur) {
		l, ok := lossOf[m.Version]
		if !ok || !m.Applied || m.Version <= target {
			continue
		}
		d := LossDetail{Loss: l.loss, Version: m.Version, What: strings.ReplaceAll(l.what, "%d", "?")}
		var n int64
		if err := mg.owner(ctx, func(c *pgx.Conn) error { return c.QueryRow(ctx, l.count).Scan(&n) }); err == nil {
			if n == 0 {
				continue // nothing there to lose
			}
			d.What = fmt.Sprintf(l.what, n)
		}
		out = append(out, d)
	}
	// The newest migration is reverted first.
	slices.Reverse(out)
	return out, nil
}

// refusalOf is, for the migrations whose revert cannot be done safely in some databases, a query that
// says why (NULL when it can be done). The down files refuse as well; asking first keeps a refused
// revert from leaving the migrations table dirty.
var refusalOf = map[uint]string{
	21: `SELECT CASE
		WHEN EXISTS (SELECT 1 FROM tenantseal.tenants WHERE key <> id::text) THEN
			format('%s tenants have keys that are not uuids, which only migration 21 can name', (SELECT count(*) FROM tenantseal.tenants WHERE key <> id::text))
		WHEN (SELECT registry FROM tenantseal.settings) IS NOT NULL THEN
			format('%s is the adopted registry: run tenantseal.release_registry first', (SELECT registry FROM tenantseal.settings))
		WHEN EXISTS (SELECT 1 FROM tenantseal.tenant_tables WHERE tenant_column <> 'tenant_id'
		             OR (SELECT atttypid FROM pg_attribute WHERE attrelid = relid AND attname = tenant_column) <> 'uuid'::regtype) THEN
			format('%s are protected on a tenant column other than a uuid tenant_id: run tenantseal.unprotect_table on them first',
			       (SELECT string_agg(relid::text, ', ') FROM tenantseal.tenant_tables WHERE tenant_column <> 'tenant_id'
			        OR (SELECT atttypid FROM pg_attribute WHERE attrelid = relid AND attname = tenant_column) <> 'uuid'::regtype))
		END`,
}

// RefusedError means a revert was not run because this database holds what the reverted schema cannot
// (see the message). Nothing was changed. Use errors.As.
type RefusedError struct {
	Version uint
	Reason  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("migrations: reverting %04d is refused: %s; nothing was changed", e.Version, e.Reason)
}

// refusal returns a *RefusedError for the first applied migration above target, newest first, whose
// revert this database refuses.
func (mg *Migrator) refusal(ctx context.Context, target uint) error {
	if !mg.own {
		return nil
	}
	cur, _, err := mg.Version()
	if err != nil {
		return err
	}
	ms := list(mg.files, cur)
	slices.Reverse(ms)
	for _, m := range ms {
		q, ok := refusalOf[m.Version]
		if !ok || !m.Applied || m.Version <= target {
			continue
		}
		var why *string
		if err := mg.owner(ctx, func(c *pgx.Conn) error { return c.QueryRow(ctx, q).Scan(&why) }); err != nil {
			return fmt.Errorf("migrations: check whether %04d can be reverted: %w", m.Version, err)
		}
		if why != nil {
			return &RefusedError{Version: m.Version, Reason: *why}
		}
	}
	return nil
}

// revert reverts to target through run: a revert that destroys data needs every loss confirmed, a
// Recorder that stores the announcement first (unless there is no audit log yet to store it in), and,
// when the audit log goes, an AuditArchive that receives it whole before. Every revert is recorded:
// one that destroys data before it runs, the others after.
func (mg *Migrator) revert(ctx context.Context, target uint, run func() error) error {
	if err := mg.refusal(ctx, target); err != nil {
		return err
	}
	losses, err := mg.losses(ctx, target)
	if err != nil {
		return err
	}
	var unconfirmed []LossDetail
	dropsLog := false
	for _, d := range losses {
		if !slices.Contains(mg.opts.ConfirmLoss, d.Loss) {
			unconfirmed = append(unconfirmed, d)
		}
		dropsLog = dropsLog || d.Loss == LossAuditLog
	}
	if len(unconfirmed) > 0 {
		return &LossError{Unconfirmed: unconfirmed}
	}
	before, _, err := mg.Version()
	if err != nil {
		return err
	}
	// Below migration 4 there is no audit log to record in, nor to lose.
	announced := len(losses) > 0 && mg.hasAuditLog(ctx)
	if announced {
		if err := mg.announce(ctx, before, target, losses); err != nil {
			return err
		}
		if dropsLog {
			if err := mg.archiveAuditLog(ctx); err != nil {
				return err
			}
		}
	}
	if err := mg.run(ctx, target, run); err != nil {
		return err
	}
	if !announced {
		mg.recorded(ctx, before, "revert")
	}
	return nil
}

// hasAuditLog reports whether the database holds tenantseal's audit log.
func (mg *Migrator) hasAuditLog(ctx context.Context) bool {
	var ok bool
	err := mg.owner(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT to_regclass('tenantseal.audit_log') IS NOT NULL").Scan(&ok)
	})
	return err == nil && ok
}

// announce records the destructive revert and waits until the audit log holds the record.
func (mg *Migrator) announce(ctx context.Context, from, to uint, losses []LossDetail) error {
	rec := mg.opts.Recorder
	if rec == nil {
		return fmt.Errorf("%w: Options.Recorder is required to revert migrations that destroy data", ErrNotRecorded)
	}
	var what []string
	for _, d := range losses {
		what = append(what, fmt.Sprintf("%s (%04d: %s)", d.Loss, d.Version, d.What))
	}
	rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventMigrate, Table: Schema + "." + mg.table, Operation: "revert",
		Detail: fmt.Sprintf("reverting from version %d to %d as %s, destroying %s", from, to, mg.role(ctx), strings.Join(what, ", "))})
	f, ok := rec.(Flusher)
	if !ok {
		return nil // a synchronous recorder: recorded
	}
	written, err := f.Flush(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrNotRecorded, err)
	case !written:
		return fmt.Errorf("%w: the audit writer could not reach the database (its event waits in its spool)", ErrNotRecorded)
	}
	return nil
}

// archiveAuditLog writes the whole audit log, the announcement included, to Options.AuditArchive.
func (mg *Migrator) archiveAuditLog(ctx context.Context) error {
	if mg.opts.AuditArchive == nil {
		return errors.New("migrations: reverting 0004 drops the audit log: Options.AuditArchive must receive it first")
	}
	return mg.owner(ctx, func(c *pgx.Conn) error {
		if _, err := audit.Export(ctx, c, mg.opts.AuditArchive, audit.Filter{}); err != nil {
			return fmt.Errorf("migrations: archive the audit log: %w", err)
		}
		if s, ok := mg.opts.AuditArchive.(interface{ Sync() error }); ok {
			if err := s.Sync(); err != nil {
				return fmt.Errorf("migrations: archive the audit log: %w", err)
			}
		}
		return nil
	})
}

// recorded records a change of version that destroyed nothing, if there is a Recorder: after the fact,
// without waiting.
func (mg *Migrator) recorded(ctx context.Context, before uint, op string) {
	if mg.opts.Recorder == nil || !mg.hasAuditLog(ctx) {
		return // nothing to record with, or in
	}
	after, dirty, err := mg.Version()
	if err != nil || (after == before && op != "force") {
		return
	}
	detail := fmt.Sprintf("from version %d to %d as %s", before, after, mg.role(ctx))
	if dirty {
		detail += " (dirty)"
	}
	mg.opts.Recorder.Record(ctx, tenantseal.Event{Kind: tenantseal.EventMigrate, Table: Schema + "." + mg.table, Operation: op, Detail: detail})
}

// role names the database role the migrations run as, for a record.
func (mg *Migrator) role(ctx context.Context) string {
	role := "an unknown role"
	_ = mg.owner(ctx, func(c *pgx.Conn) error { return c.QueryRow(ctx, "SELECT 'database role ' || current_user").Scan(&role) })
	return role
}
