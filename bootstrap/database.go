package bootstrap

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

// DatabaseOptions configure [CreateDatabase].
type DatabaseOptions struct {
	// TakeOwnership hands an existing database that the owner role does not own to the owner role and
	// revokes PUBLIC's privileges on it, as for a database bootstrap creates. Without it, an existing
	// database keeps its owner and every privilege, and tenantseal's roles are only granted theirs.
	TakeOwnership bool
}

// CreateDatabase creates database name owned by the owner role of prefix unless it exists. A database
// that the owner role owns (it created it, or TakeOwnership hands it over) is tenantseal's: again each
// time, CreateDatabase revokes everything from PUBLIC on it and grants CONNECT to the app, auditor and
// audit writer roles. Any other existing database keeps its owner and its privileges: the owner role is
// granted CONNECT and CREATE (for its schemas), the other roles CONNECT. As a superuser it also records
// the role prefix in the database (tenantseal.role_prefix); the migrations otherwise tell it from the
// owner's name.
//
// conn is a superuser's or a CREATEROLE and CREATEDB role's, which CreateDatabase makes a member of the
// owner role to hand it the database; the roles must exist ([CreateRoles]). It returns what it changed.
func CreateDatabase(ctx context.Context, conn *pgx.Conn, name, prefix string, opts DatabaseOptions) ([]string, error) {
	if err := checkIdent("database name", name); err != nil {
		return nil, err
	}
	if err := checkIdent("role prefix", prefix); err != nil {
		return nil, err
	}
	admin, err := CheckAdmin(ctx, conn)
	if err != nil {
		return nil, err
	}
	r := db.Roles(prefix)
	dbIdent := pgx.Identifier{name}.Sanitize()
	owner := pgx.Identifier{r.Owner}.Sanitize()
	app, auditor, writer := pgx.Identifier{r.App}.Sanitize(), pgx.Identifier{r.Auditor}.Sanitize(), pgx.Identifier{r.AuditWriter}.Sanitize()
	exists, ours, err := databaseOwnedBy(ctx, conn, name, r.Owner)
	if err != nil {
		return nil, err
	}
	var actions []string
	takeOver := exists && !ours && opts.TakeOwnership
	if (!exists || ours || takeOver) && !admin.Superuser {
		// PostgreSQL hands a database only to a role its creator is a member of, and lets only its owner's
		// members change it.
		var member bool
		if err := conn.QueryRow(ctx, "SELECT pg_has_role(current_user, $1, 'MEMBER')", r.Owner).Scan(&member); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		if !member {
			if _, err := conn.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", owner, pgx.Identifier{admin.Role}.Sanitize())); err != nil {
				return nil, fmt.Errorf("bootstrap: grant %s to %s: %w", r.Owner, admin.Role, err)
			}
			actions = append(actions, fmt.Sprintf("granted role %s to %s (to hand it the database)", r.Owner, admin.Role))
		}
	}
	if !exists {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0", dbIdent, owner)); err != nil {
			return nil, fmt.Errorf("bootstrap: create database: %w", err)
		}
		actions = append(actions, "created database "+name)
	} else if takeOver {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", dbIdent, owner)); err != nil {
			return nil, fmt.Errorf("bootstrap: take ownership of database %s: %w", name, err)
		}
		actions = append(actions, fmt.Sprintf("made %s the owner of database %s", r.Owner, name))
	}
	var stmts []string
	if admin.Superuser {
		// PostgreSQL 15 lets only a superuser store a setting it does not know.
		stmts = append(stmts, fmt.Sprintf("ALTER DATABASE %s SET tenantseal.role_prefix = %s", dbIdent, quoteLiteral(prefix)))
	}
	if !exists || ours || takeOver {
		stmts = append(stmts, fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", dbIdent))
	} else {
		stmts = append(stmts, fmt.Sprintf("GRANT CONNECT, CREATE ON DATABASE %s TO %s", dbIdent, owner))
	}
	stmts = append(stmts, fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s, %s, %s", dbIdent, app, auditor, writer))
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("bootstrap: database %s: %w", name, err)
		}
	}
	return actions, nil
}

// databaseOwnedBy reports whether database name exists and whether role owns it.
func databaseOwnedBy(ctx context.Context, conn *pgx.Conn, name, role string) (exists, owned bool, err error) {
	err = conn.QueryRow(ctx, "SELECT datdba = (SELECT oid FROM pg_roles WHERE rolname = $2) FROM pg_database WHERE datname = $1", name, role).Scan(&owned)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("bootstrap: %w", err)
	}
	return true, owned, nil
}

// SecurePublicSchema makes the owner role of prefix own schema public and takes CREATE on it from
// PUBLIC. conn is a superuser's or the database owner's member, connected to the database
// ([CreateDatabase]). [Run] calls it only for a database the owner role owns.
func SecurePublicSchema(ctx context.Context, conn *pgx.Conn, prefix string) error {
	if err := checkIdent("role prefix", prefix); err != nil {
		return err
	}
	for _, stmt := range []string{
		fmt.Sprintf("ALTER SCHEMA public OWNER TO %s", pgx.Identifier{db.Roles(prefix).Owner}.Sanitize()),
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	return nil
}

// PublicPrivileges returns what PUBLIC, and so every role, app role included, may do in conn's database
// that a database bootstrap secures would not allow: CREATE in schema public, TEMPORARY on the
// database. It changes nothing; [Run] reports it as warnings for a database it does not own.
func PublicPrivileges(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	var create, temp bool
	var database string
	err := conn.QueryRow(ctx, `SELECT has_schema_privilege('public', 'public', 'CREATE'),
		has_database_privilege('public', current_database(), 'TEMPORARY'), current_database()`).Scan(&create, &temp, &database)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	var out []string
	if create {
		out = append(out, fmt.Sprintf("every role, the app role included, may create objects in schema public of database %s: REVOKE CREATE ON SCHEMA public FROM PUBLIC there, or bootstrap with TakeOwnership (--take-ownership)", database))
	}
	if temp {
		out = append(out, fmt.Sprintf("every role, the app role included, may create temporary tables in database %s: REVOKE TEMPORARY ON DATABASE %s FROM PUBLIC, or bootstrap with TakeOwnership (--take-ownership)",
			database, pgx.Identifier{database}.Sanitize()))
	}
	return out, nil
}
