package bootstrap

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

// CreateDatabase creates database name owned by the owner role of prefix unless it exists, and (again
// each time) makes the owner its owner, records the role prefix in it (the migrations read
// tenantseal.role_prefix), revokes everything from PUBLIC and grants CONNECT to the app, auditor and audit
// writer roles.
// conn is a superuser's; the roles must exist ([CreateRoles]). It returns what it changed.
func CreateDatabase(ctx context.Context, conn *pgx.Conn, name, prefix string) ([]string, error) {
	if err := checkIdent("database name", name); err != nil {
		return nil, err
	}
	if err := checkIdent("role prefix", prefix); err != nil {
		return nil, err
	}
	r := db.Roles(prefix)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	dbIdent := pgx.Identifier{name}.Sanitize()
	owner := pgx.Identifier{r.Owner}.Sanitize()
	var actions []string
	if !exists {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0", dbIdent, owner)); err != nil {
			return nil, fmt.Errorf("bootstrap: create database: %w", err)
		}
		actions = append(actions, "created database "+name)
	}
	for _, stmt := range []string{
		fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", dbIdent, owner),
		fmt.Sprintf("ALTER DATABASE %s SET tenantseal.role_prefix = %s", dbIdent, quoteLiteral(prefix)),
		fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", dbIdent),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s, %s, %s", dbIdent, pgx.Identifier{r.App}.Sanitize(), pgx.Identifier{r.Auditor}.Sanitize(),
			pgx.Identifier{r.AuditWriter}.Sanitize()),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	return actions, nil
}

// SecurePublicSchema makes the owner role of prefix own schema public and takes CREATE on it from
// PUBLIC. conn is a superuser's, connected to the database ([CreateDatabase]).
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
