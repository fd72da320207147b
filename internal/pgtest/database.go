package pgtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/examples/reference"
	"github.com/tenantseal/tenantseal/internal/dsn"
)

// Cluster is a bootstrapped, migrated template database on a [Server], from which each test gets its own
// copy.
type Cluster struct {
	Server   *Server
	Template *bootstrap.Result
	prefix   string
	seq      atomic.Int64
}

// NewCluster bootstraps roles with a prefix unique to this process and a template database migrated
// with tenantseal's migrations, then the examples' (examples/reference: customers, invoices, documents),
// which many tests use as their tenant tables.
func NewCluster(ctx context.Context, s *Server) (*Cluster, error) {
	prefix := "ts" + randomHex(3)
	res, err := bootstrap.Run(ctx, s.SuperDSN, bootstrap.Options{
		Database:   prefix + "_template",
		RolePrefix: prefix,
		// Tests of DDL recording install them in their own database (bootstrap.InstallEventTriggers),
		// so that every other test's chain holds its own entries only.
		NoEventTriggers: true,
	})
	if err != nil {
		return nil, fmt.Errorf("pgtest: bootstrap template: %w", err)
	}
	if err := reference.Migrate(ctx, res.OwnerDSN); err != nil {
		return nil, err // "migrations: ...": one prefix
	}
	if err := selectTemplateVerifier(ctx, s.SuperDSN, res.OwnerDSN, res.Database); err != nil {
		return nil, err
	}
	return &Cluster{Server: s, Template: res, prefix: prefix}, nil
}

// Database is one test's own migrated database and the connection strings of its roles.
type Database struct {
	Name       string
	Roles      db.RoleNames
	SuperDSN   string // superuser, connected to this database
	OwnerDSN   string
	AppDSN     string
	AuditorDSN string
	// AuditWriterDSN connects as the audit writer role, the only one that appends to the audit log.
	AuditWriterDSN string
	// ContextKey signs tenant context tokens that this database accepts.
	ContextKey db.ContextKey
}

// CreateDatabase clones the template into a new database.
func (c *Cluster) CreateDatabase(ctx context.Context) (*Database, error) {
	name := fmt.Sprintf("%s_t%d", c.prefix, c.seq.Add(1))
	conn, err := pgx.Connect(ctx, c.Server.SuperDSN)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sql := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s OWNER %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{c.Template.Database}.Sanitize(), pgx.Identifier{c.Template.Roles.Owner}.Sanitize())
	// Clones of one template may collide briefly ("source database is being accessed"): retry.
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, sql)
		if err == nil || attempt == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("pgtest: create %s: %w", name, err)
	}
	for _, stmt := range []string{
		verifierSetting(name),
		fmt.Sprintf("ALTER DATABASE %s SET tenantseal.role_prefix = '%s'", pgx.Identifier{name}.Sanitize(), c.prefix),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s, %s, %s", pgx.Identifier{name}.Sanitize(),
			pgx.Identifier{c.Template.Roles.App}.Sanitize(), pgx.Identifier{c.Template.Roles.Auditor}.Sanitize(),
			pgx.Identifier{c.Template.Roles.AuditWriter}.Sanitize()),
	} {
		if stmt == "" {
			continue
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	return &Database{
		Name:           name,
		Roles:          c.Template.Roles,
		SuperDSN:       WithDatabase(c.Server.SuperDSN, name),
		OwnerDSN:       WithDatabase(c.Template.OwnerDSN, name),
		AppDSN:         WithDatabase(c.Template.AppDSN, name),
		AuditorDSN:     WithDatabase(c.Template.AuditorDSN, name),
		AuditWriterDSN: WithDatabase(c.Template.AuditWriterDSN, name),
		ContextKey:     c.Template.ContextKey,
	}, nil
}

// DropDatabase removes a database made by CreateDatabase, disconnecting its sessions.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.Server.SuperDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize()))
	return err
}

// Close drops the template and the roles of this cluster. It matters only on a shared server
// (TENANTSEAL_TEST_DSN): a container goes away whole.
func (c *Cluster) Close(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.Server.SuperDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE $1", c.prefix+"\\_%")
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE %s WITH (FORCE)", pgx.Identifier{n}.Sanitize())); err != nil {
			return err
		}
	}
	r := c.Template.Roles
	for _, role := range []string{r.App, r.Auditor, r.AuditWriter, r.Probe, r.Owner} {
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP OWNED BY %s; DROP ROLE %s", pgx.Identifier{role}.Sanitize(), pgx.Identifier{role}.Sanitize())); err != nil {
			return err
		}
	}
	return nil
}

// WithDatabase returns connString, a URL or keyword/value, pointed at database name, in its own form.
// The harness passes only connection strings that connected already, which parse.
func WithDatabase(connString, name string) string {
	s, err := dsn.WithDatabase(connString, name)
	if err != nil {
		panic("pgtest: " + err.Error()) // the error never quotes connString
	}
	return s
}
