package bootstrap

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The event triggers that record DDL in the audit log (migration 0022's tenantseal.audit_ddl and
// tenantseal.audit_ddl_drop), by name.
var eventTriggers = []struct{ name, event, function string }{
	{"tenantseal_audit_ddl", "ddl_command_end", "tenantseal.audit_ddl()"},
	{"tenantseal_audit_drop", "sql_drop", "tenantseal.audit_ddl_drop()"},
}

// InstallEventTriggers installs, in the database of conn, the event triggers that record DDL on tenant
// tables, their policies and the objects of schema tenantseal in the audit log as it happens (a ddl
// entry, then each change of the security state, in the transaction of the DDL), and enables them
// where they were disabled. conn is a superuser's, connected to a database migrated to 0022 or later:
// only a superuser may create event triggers, and they stay the superuser's, so that the owner role can
// neither disable nor drop them. Without a superuser it changes nothing and returns a
// [*NeedsSuperuserError]: the audit writer's comparison of the security state (audit.Writer with
// SecurityInterval) still records the changes, at its interval and without who made them. It returns
// what it changed, for Result.Actions.
//
// The statements are run here, never through a function of the owner's, which the owner could
// replace with one that a superuser would then run.
func InstallEventTriggers(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	admin, err := currentAdmin(ctx, conn)
	if err != nil {
		return nil, err
	}
	if !admin.Superuser {
		return nil, &NeedsSuperuserError{Feature: "recording DDL in the audit log as it happens",
			Detail: "only a superuser may create event triggers, so ALTER POLICY, DISABLE or NO FORCE ROW LEVEL SECURITY, DROP POLICY, GRANT and REVOKE on tenant tables are recorded only by the audit writer's comparison of the security state (audit.Config.SecurityInterval), at its interval and without the role that made them"}
	}
	var actions []string
	for _, et := range eventTriggers {
		var enabled string
		err := conn.QueryRow(ctx, "SELECT evtenabled::text FROM pg_catalog.pg_event_trigger WHERE evtname = $1", et.name).Scan(&enabled)
		ident := pgx.Identifier{et.name}.Sanitize()
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE EVENT TRIGGER %s ON %s EXECUTE FUNCTION %s", ident, et.event, et.function)); err != nil {
				return actions, fmt.Errorf("bootstrap: create event trigger %s: %w", et.name, err)
			}
			actions = append(actions, fmt.Sprintf("created event trigger %s (%s): DDL is recorded in the audit log", et.name, et.event))
		case err != nil:
			return actions, fmt.Errorf("bootstrap: %w", err)
		case enabled != "O" && enabled != "A":
			if _, err := conn.Exec(ctx, "ALTER EVENT TRIGGER "+ident+" ENABLE"); err != nil {
				return actions, fmt.Errorf("bootstrap: enable event trigger %s: %w", et.name, err)
			}
			actions = append(actions, "enabled event trigger "+et.name+" again")
		}
	}
	return actions, nil
}
