package isolation

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
)

// The app role beyond rows: what one session of it can do to the audit log, to the sessions of other
// roles, and to its own role, for every tenant at once. Every session of one role may signal the others
// and ALTER ROLE itself; PostgreSQL cannot prevent either. What must hold is that nothing that guards
// the tenants is a session of the app role, and that changes to the role are seen.

// caseAuditAppend: the app role must not write the audit log at all, neither through
// tenantseal.audit_append (events in any tenant's name, dated at will, thousands at once, or '[]' to
// learn the global head) nor directly, nor hold the chain head locked so that the writer's events stay
// out. Every attempt runs in a transaction that rolls back.
func caseAuditAppend(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("tenantseal.audit_append")
	if !s.cat.auditAppend {
		r.na = "no tenantseal.audit_append"
		return
	}
	v := s.victims(atk)[0]
	forged := fmt.Sprintf(`[{"kind": "foreign_id", "tenant_id": "%s", "subject": "someone-else", "at": "2001-01-01T00:00:00Z"}]`, s.tenants[v])
	for _, a := range []struct{ what, sql string }{
		{"an event in T" + fmt.Sprint(v) + "'s name, dated 2001", "SELECT tenantseal.audit_append($1::jsonb)"},
		{"an empty batch (the global head)", "SELECT tenantseal.audit_append('[]')"},
		{"a row into the log", "INSERT INTO tenantseal.audit_log (seq, event_id, at, kind, prev_hash, hash) VALUES (0, gen_random_uuid(), now(), 'x', '', '')"},
		{"a lock on the chain head", "LOCK TABLE tenantseal.audit_head IN ROW EXCLUSIVE MODE"},
		{"the chain head, for update", "SELECT 1 FROM tenantseal.audit_head FOR UPDATE"},
	} {
		_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
			var args []any
			if strings.Contains(a.sql, "$1") {
				args = []any{forged}
			}
			_, err := tx.Exec(ctx, a.sql, args...)
			switch {
			case err == nil:
				r.leakf("the app role wrote or locked the audit log: %s", a.what)
			case refused(err) || sqlState(err) == "42883" || sqlState(err) == "42P01":
				r.checks++
			default:
				r.errorf("%s: %v", a.what, err)
			}
			return nil
		})
	}
}

// caseOtherRoles: the app role may signal (pg_cancel_backend, pg_terminate_backend) the sessions of
// every role whose privileges it has, and those of all roles with pg_signal_backend. The audit writer
// must not be the app role, nor one the app role has the privileges of; no more may the other roles of
// the deployment be.
func caseOtherRoles(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("(roles)")
	if s.cat.auditAppend {
		writers, err := strs(ctx, s.super, `SELECT r.rolname::text FROM pg_roles r
			WHERE has_function_privilege(r.oid, 'tenantseal.audit_append(jsonb)', 'EXECUTE') AND NOT r.rolsuper ORDER BY 1`)
		if err != nil {
			r.errorf("%v", err)
			return
		}
		for _, w := range writers {
			var reach bool
			if err := s.super.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'USAGE')", s.appRole, w).Scan(&reach); err != nil {
				r.errorf("%v", err)
				return
			}
			r.expect(!reach, "the audit log's writer role %s is the app role or one it has the privileges of: every session of the app role may cancel and terminate the writer's, and append in any tenant's name", w)
		}
	}
	var signal bool
	if err := s.super.QueryRow(ctx, "SELECT pg_has_role($1, 'pg_signal_backend', 'USAGE')", s.appRole).Scan(&signal); err != nil {
		r.errorf("%v", err)
		return
	}
	r.expect(!signal, "the app role has the privileges of pg_signal_backend: it may terminate the sessions of every role but superusers")
	// A session of another role: the suite's own superuser session cannot be signalled by anyone but a
	// superuser; an attempt tells the privilege check runs.
	var pid int
	if err := s.super.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		r.errorf("%v", err)
		return
	}
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		var ok bool
		err := tx.QueryRow(ctx, "SELECT pg_cancel_backend($1::integer)", pid).Scan(&ok)
		r.expect(refused(err) || err == nil && !ok, "the app role cancelled a superuser's statement (%v)", err)
		return nil
	})
}

// caseSessionLimits: the app role's sessions must start bounded (lock_timeout, statement_timeout,
// idle_in_transaction_session_timeout set on the role, none 0), so that one session cannot hold a lock
// that blocks every tenant, LOCK TABLE ... ACCESS EXCLUSIVE included (it needs only UPDATE or DELETE),
// for longer than the bounds. A session can lift them for itself (user-settable): db.Pool resets that
// after the request.
func caseSessionLimits(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("(role settings)")
	settings, err := strs(ctx, s.super, `SELECT c FROM pg_db_role_setting s, unnest(s.setconfig) c
		WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)
		  AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))`, s.appRole)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	set := map[string]string{}
	for _, c := range settings {
		k, v, _ := strings.Cut(c, "=")
		set[k] = v
	}
	for _, k := range db.SessionLimitSettings {
		v, ok := set[k]
		r.expect(ok && v != "0", "the app role has no %s (role-level settings: %v): one of its sessions can hold locks that block every tenant for as long as it likes", k, settings)
	}
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "LOCK TABLE "+s.cat.tables[0].qname()+" IN ACCESS EXCLUSIVE MODE NOWAIT")
		r.checks++
		if err == nil {
			r.notef("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE succeeds as the app role (it needs only UPDATE or DELETE): bounded by the session limits, not prevented", s.cat.tables[0])
		}
		return nil
	})
}

// caseAlterRoleSelf: PostgreSQL lets the app role ALTER ROLE itself (SET for all its future sessions,
// PASSWORD). A db.Pool opened afterwards must report it. The setting the suite makes (application_name,
// in this database only) is harmless, and removed again as the superuser.
func caseAlterRoleSelf(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("(role settings)")
	_ = atk
	conn, err := s.acquire(ctx)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	var database string
	err = conn.QueryRow(ctx, "SELECT current_database()").Scan(&database)
	if err == nil {
		_, err = conn.Exec(ctx, "ALTER ROLE CURRENT_USER IN DATABASE "+ident(database)+" SET application_name = 'tenantseal-isolation'")
	}
	conn.Release()
	if refused(err) {
		r.checks++
		r.notef("the app role may not ALTER ROLE itself here")
		return
	}
	if err != nil {
		r.errorf("ALTER ROLE CURRENT_USER: %v", err)
		return
	}
	r.notef("the app role set a role-level setting on itself: PostgreSQL lets every role do so")
	defer func() {
		if _, err := s.super.Exec(context.WithoutCancel(ctx), "ALTER ROLE "+ident(s.appRole)+" IN DATABASE "+ident(database)+" RESET application_name"); err != nil {
			r.errorf("reset the role's application_name: %v", err)
		}
	}()
	var rec recorded
	pool, err := s.victimPool(ctx, func(c *db.Config) {
		c.Recorder = &rec
		if s.cfg.Sign != nil {
			c.Unsigned = true // only Open's checks run
		}
	})
	if err != nil {
		r.errorf("%v", err)
		return
	}
	pool.Close()
	got := rec.kinds(tenantseal.EventRoleChanged)
	r.expect(strings.Contains(strings.Join(got, "\n"), "application_name"),
		"db.Open did not report the role-level setting the app role gave itself (recorded: %v)", got)
}
