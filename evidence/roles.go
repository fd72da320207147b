package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

// Roles is roles.json: who may do what, as the catalog says.
type Roles struct {
	Schema string `json:"schema"`
	// Roles are tenantseal's roles, by kind (owner, app, auditor, audit_writer, probe); a role that does
	// not exist is listed with Exists false.
	Roles []Role `json:"roles"`
	// Memberships are the grants of a role to another where either is one of tenantseal's.
	Memberships []Membership `json:"memberships"`
	// Privileged are every role of the cluster that is a superuser or bypasses row-level security.
	Privileged []PrivilegedRole `json:"privileged_roles"`
	// DatabaseSettings are the settings ALTER DATABASE set for every role of this database.
	DatabaseSettings []string `json:"database_settings"`
	// Database holds the privileges on the database; Schemas those on tenantseal's schemas and the
	// schemas of tenant tables.
	Database DatabasePrivileges `json:"database"`
	Schemas  []SchemaPrivileges `json:"schemas"`
	// Tables are tenantseal's own tables and the tenant tables: row-level security, privileges, policies.
	Tables []Table `json:"tables"`
	// Functions are tenantseal's functions and every SECURITY DEFINER function of the other schemas.
	Functions []Function `json:"functions"`
}

// Role is one of tenantseal's roles and its attributes.
type Role struct {
	Kind            string     `json:"kind"`
	Name            string     `json:"name"`
	Exists          bool       `json:"exists"`
	Superuser       bool       `json:"superuser"`
	BypassRLS       bool       `json:"bypassrls"`
	CreateRole      bool       `json:"createrole"`
	CreateDB        bool       `json:"createdb"`
	Login           bool       `json:"login"`
	Replication     bool       `json:"replication"`
	Inherit         bool       `json:"inherit"`
	ConnectionLimit int        `json:"connection_limit"` // -1: none
	ValidUntil      *time.Time `json:"valid_until"`
	// Settings are ALTER ROLE ... SET values, for every database; DatabaseSettings those for this one.
	Settings         []string `json:"settings"`
	DatabaseSettings []string `json:"database_settings"`
}

// Membership is role granted to member.
type Membership struct {
	Role        string `json:"role"`
	Member      string `json:"member"`
	Grantor     string `json:"grantor"`
	AdminOption bool   `json:"admin_option"`
}

// PrivilegedRole is a role that row-level security does not hold.
type PrivilegedRole struct {
	Name      string `json:"name"`
	Superuser bool   `json:"superuser"`
	BypassRLS bool   `json:"bypassrls"`
	Login     bool   `json:"login"`
}

// Grant is what one grantee (a role, or PUBLIC) holds on an object.
type Grant struct {
	Grantee    string   `json:"grantee"`
	Privileges []string `json:"privileges"`
	// Grantable are the privileges the grantee may grant on.
	Grantable []string `json:"grantable"`
}

// DatabasePrivileges are the owner of and grants on the database.
type DatabasePrivileges struct {
	Name   string  `json:"name"`
	Owner  string  `json:"owner"`
	Grants []Grant `json:"grants"`
}

// SchemaPrivileges are the owner of and grants on a schema.
type SchemaPrivileges struct {
	Name   string  `json:"name"`
	Owner  string  `json:"owner"`
	Grants []Grant `json:"grants"`
}

// Table is a table's protection.
type Table struct {
	Name string `json:"name"`
	// Kind is "tenant" for a tenant table (protected by tenantseal.protect_table, or with the tenant
	// column) and "tenantseal" for the product's own tables.
	Kind         string `json:"kind"`
	TenantColumn string `json:"tenant_column,omitempty"`
	// Protected says tenantseal.protect_table recorded it in tenantseal.tenant_tables.
	Protected bool   `json:"protected"`
	Owner     string `json:"owner"`
	RLS       bool   `json:"rls_enabled"`
	ForceRLS  bool   `json:"rls_forced"`
	// Grants are table privileges; ColumnGrants privileges on single columns.
	Grants       []Grant       `json:"grants"`
	ColumnGrants []ColumnGrant `json:"column_grants"`
	Policies     []Policy      `json:"policies"`
}

// ColumnGrant is a privilege on one column.
type ColumnGrant struct {
	Column string  `json:"column"`
	Grants []Grant `json:"grants"`
}

// Policy is a row-level security policy.
type Policy struct {
	Name       string   `json:"name"`
	Permissive bool     `json:"permissive"`
	Command    string   `json:"command"` // ALL, SELECT, INSERT, UPDATE, DELETE
	Roles      []string `json:"roles"`
	Using      *string  `json:"using"`
	WithCheck  *string  `json:"with_check"`
}

// Function is a function's owner, security and grants.
type Function struct {
	Name            string  `json:"name"` // schema.name(argument types)
	Owner           string  `json:"owner"`
	SecurityDefiner bool    `json:"security_definer"`
	Leakproof       bool    `json:"leakproof"`
	Grants          []Grant `json:"grants"`
}

// secretSetting matches the names of settings whose values must not be written.
var secretSetting = regexp.MustCompile(`(?i)pass|secret|token|key|credential`)

// redactSettings returns name=value settings with the values of secret-sounding names replaced.
func redactSettings(settings []string) []string {
	out := make([]string, 0, len(settings))
	for _, s := range settings {
		if name, _, ok := strings.Cut(s, "="); ok && secretSetting.MatchString(name) {
			s = name + "=" + Redacted
		}
		out = append(out, s)
	}
	return out
}

// grantsOf is a subquery of the grants in the aclitem[] expression acl as a JSON array of Grant.
func grantsOf(acl string) string {
	return `(SELECT coalesce(jsonb_agg(jsonb_build_object('grantee', g.grantee, 'privileges', g.privs, 'grantable', g.grantable)
		ORDER BY g.grantee), '[]') FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee,
			array_agg(a.privilege_type ORDER BY a.privilege_type) AS privs,
			coalesce(array_agg(a.privilege_type ORDER BY a.privilege_type) FILTER (WHERE a.is_grantable), '{}') AS grantable
		FROM aclexplode(` + acl + `) a GROUP BY a.grantee) g)`
}

var (
	roleSQL = `SELECT r.rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
		r.rolinherit, r.rolconnlimit, r.rolvaliduntil, coalesce(r.rolconfig, '{}'),
		coalesce((SELECT s.setconfig FROM pg_db_role_setting s
			WHERE s.setrole = r.oid AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())), '{}')
		FROM pg_roles r WHERE r.rolname = $1`
	membershipSQL = `SELECT g.rolname, m.rolname, coalesce(gr.rolname, ''), am.admin_option
		FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
			LEFT JOIN pg_roles gr ON gr.oid = am.grantor
		WHERE g.rolname = ANY($1) OR m.rolname = ANY($1) ORDER BY 1, 2, 3`
	privilegedSQL   = `SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolsuper OR rolbypassrls ORDER BY rolname`
	dbSettingsSQL   = `SELECT coalesce((SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database() AND s.setrole = 0), '{}')`
	dbPrivilegesSQL = `SELECT d.datname, pg_get_userbyid(d.datdba), ` + grantsOf("coalesce(d.datacl, acldefault('d', d.datdba))") + `
		FROM pg_database d WHERE d.datname = current_database()`
	schemaSQL = `SELECT n.nspname, pg_get_userbyid(n.nspowner), ` + grantsOf("coalesce(n.nspacl, acldefault('n', n.nspowner))") + `
		FROM pg_namespace n WHERE n.nspname = ANY($1) ORDER BY n.nspname`
	// tableSQL lists tenantseal's tables and the tenant tables: those of $1 (oids tenantseal.tenant_tables
	// lists) and those with the column $2, outside the system schemas.
	tableSQL = `SELECT c.oid, c.oid::regclass::text, n.nspname,
			pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity,
			` + grantsOf("coalesce(c.relacl, acldefault('r', c.relowner))") + `,
			(SELECT coalesce(jsonb_agg(jsonb_build_object('column', a.attname, 'grants', ` + grantsOf("a.attacl") + `) ORDER BY a.attnum), '[]')
				FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL),
			(SELECT coalesce(jsonb_agg(jsonb_build_object('name', p.polname, 'permissive', p.polpermissive,
				'command', CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
				'roles', (SELECT coalesce(jsonb_agg(CASE WHEN r.oid = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r.oid) END ORDER BY 1), '[]') FROM unnest(p.polroles) AS r(oid)),
				'using', pg_get_expr(p.polqual, p.polrelid), 'with_check', pg_get_expr(p.polwithcheck, p.polrelid)) ORDER BY p.polname), '[]')
				FROM pg_policy p WHERE p.polrelid = c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND (n.nspname = 'tenantseal' OR c.oid = ANY($1)
			OR (n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenantseal_migrations') AND n.nspname NOT LIKE 'pg\_%'
				AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped)))
		ORDER BY n.nspname = 'tenantseal' DESC, 1`
	functionSQL = `SELECT p.oid::regproc::text || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_userbyid(p.proowner),
			p.prosecdef, p.proleakproof, ` + grantsOf("coalesce(p.proacl, acldefault('f', p.proowner))") + `
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'tenantseal' OR (p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%')
		ORDER BY n.nspname = 'tenantseal' DESC, 1`
)

// protectedTables are the tables tenantseal.tenant_tables lists, as the owner reads them, with their
// tenant columns, and the database's default tenant column.
type protectedTables struct {
	oids          []uint32
	columns       map[uint32]string // by oid
	defaultColumn string
}

// readProtected reads, as the owner, the tables tenantseal.protect_table protected.
func readProtected(ctx context.Context, owner pgx.Tx) (protectedTables, error) {
	p := protectedTables{columns: map[uint32]string{}, defaultColumn: "tenant_id"}
	var hasTable, hasColumn bool
	if err := owner.QueryRow(ctx, `SELECT to_regclass('tenantseal.tenant_tables') IS NOT NULL,
		EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('tenantseal.settings') AND attname = 'tenant_column' AND NOT attisdropped)`).Scan(&hasTable, &hasColumn); err != nil {
		return p, fmt.Errorf("evidence: protected tables: %w", err)
	}
	if hasColumn {
		if err := owner.QueryRow(ctx, "SELECT tenant_column FROM tenantseal.settings").Scan(&p.defaultColumn); err != nil {
			return p, fmt.Errorf("evidence: tenant column: %w", err)
		}
	}
	if !hasTable {
		return p, nil
	}
	rows, err := owner.Query(ctx, "SELECT relid::oid, tenant_column FROM tenantseal.tenant_tables ORDER BY relid")
	if err != nil {
		return p, fmt.Errorf("evidence: protected tables: %w", err)
	}
	var oid uint32
	var col string
	_, err = pgx.ForEachRow(rows, []any{&oid, &col}, func() error {
		p.oids = append(p.oids, oid)
		p.columns[oid] = col
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("evidence: protected tables: %w", err)
	}
	return p, nil
}

// readRoles reads roles.json as the auditor: every catalog it reads is readable by every role.
func readRoles(ctx context.Context, q pgx.Tx, names db.RoleNames, prot protectedTables) (*Roles, error) {
	out := &Roles{Schema: SchemaRoles}
	wrap := func(what string, err error) error { return fmt.Errorf("evidence: read %s: %w", what, err) }
	var all []string
	for _, k := range []struct{ kind, name string }{
		{"owner", names.Owner}, {"app", names.App}, {"auditor", names.Auditor}, {"audit_writer", names.AuditWriter}, {"probe", names.Probe},
	} {
		r := Role{Kind: k.kind, Name: k.name, Settings: []string{}, DatabaseSettings: []string{}}
		err := q.QueryRow(ctx, roleSQL, k.name).Scan(&r.Name, &r.Superuser, &r.BypassRLS, &r.CreateRole, &r.CreateDB, &r.Login,
			&r.Replication, &r.Inherit, &r.ConnectionLimit, &r.ValidUntil, &r.Settings, &r.DatabaseSettings)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, wrap("role "+k.name, err)
		default:
			r.Exists = true
			r.Settings, r.DatabaseSettings = redactSettings(r.Settings), redactSettings(r.DatabaseSettings)
		}
		out.Roles = append(out.Roles, r)
		all = append(all, k.name)
	}

	rows, err := q.Query(ctx, membershipSQL, all)
	if err != nil {
		return nil, wrap("memberships", err)
	}
	if out.Memberships, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Membership]); err != nil {
		return nil, wrap("memberships", err)
	}
	if rows, err = q.Query(ctx, privilegedSQL); err != nil {
		return nil, wrap("privileged roles", err)
	}
	if out.Privileged, err = pgx.CollectRows(rows, pgx.RowToStructByPos[PrivilegedRole]); err != nil {
		return nil, wrap("privileged roles", err)
	}
	if err := q.QueryRow(ctx, dbSettingsSQL).Scan(&out.DatabaseSettings); err != nil {
		return nil, wrap("database settings", err)
	}
	out.DatabaseSettings = redactSettings(out.DatabaseSettings)
	var grants []byte
	if err := q.QueryRow(ctx, dbPrivilegesSQL).Scan(&out.Database.Name, &out.Database.Owner, &grants); err != nil {
		return nil, wrap("database privileges", err)
	}
	if err := json.Unmarshal(grants, &out.Database.Grants); err != nil {
		return nil, wrap("database privileges", err)
	}

	if rows, err = q.Query(ctx, tableSQL, prot.oids, prot.defaultColumn); err != nil {
		return nil, wrap("tables", err)
	}
	schemas := []string{"public", "tenantseal", "tenantseal_migrations"}
	var (
		t                           Table
		oid                         uint32
		schema                      string
		tGrants, colGrants, polJSON []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&oid, &t.Name, &schema, &t.Owner, &t.RLS, &t.ForceRLS, &tGrants, &colGrants, &polJSON}, func() error {
		tt := Table{Name: t.Name, Owner: t.Owner, RLS: t.RLS, ForceRLS: t.ForceRLS, Kind: "tenant", TenantColumn: prot.defaultColumn}
		if col, ok := prot.columns[oid]; ok {
			tt.Protected, tt.TenantColumn = true, col
		} else if schema == "tenantseal" {
			tt.Kind, tt.TenantColumn = "tenantseal", ""
		}
		for _, b := range []struct {
			data []byte
			into any
		}{{tGrants, &tt.Grants}, {colGrants, &tt.ColumnGrants}, {polJSON, &tt.Policies}} {
			if err := json.Unmarshal(b.data, b.into); err != nil {
				return err
			}
		}
		out.Tables = append(out.Tables, tt)
		if !slices.Contains(schemas, schema) {
			schemas = append(schemas, schema)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("tables", err)
	}
	if rows, err = q.Query(ctx, schemaSQL, schemas); err != nil {
		return nil, wrap("schemas", err)
	}
	var s SchemaPrivileges
	_, err = pgx.ForEachRow(rows, []any{&s.Name, &s.Owner, &grants}, func() error {
		sp := SchemaPrivileges{Name: s.Name, Owner: s.Owner}
		if err := json.Unmarshal(grants, &sp.Grants); err != nil {
			return err
		}
		out.Schemas = append(out.Schemas, sp)
		return nil
	})
	if err != nil {
		return nil, wrap("schemas", err)
	}

	if rows, err = q.Query(ctx, functionSQL); err != nil {
		return nil, wrap("functions", err)
	}
	var f Function
	_, err = pgx.ForEachRow(rows, []any{&f.Name, &f.Owner, &f.SecurityDefiner, &f.Leakproof, &grants}, func() error {
		ff := Function{Name: f.Name, Owner: f.Owner, SecurityDefiner: f.SecurityDefiner, Leakproof: f.Leakproof}
		if err := json.Unmarshal(grants, &ff.Grants); err != nil {
			return err
		}
		out.Functions = append(out.Functions, ff)
		return nil
	})
	if err != nil {
		return nil, wrap("functions", err)
	}
	return out, nil
}
