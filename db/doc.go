// Package db runs SQL under a verified tenant context, so that PostgreSQL row-level security, not
// application code, decides which rows a request can touch.
//
// # Principal and context
//
// Authentication middleware puts the caller into the request's context with
// [tenantseal.WithPrincipal]. No method of this package takes a tenant id as an argument: the tenant
// always comes from the Principal. A context without one fails with [tenantseal.ErrNoTenant] before any
// SQL is sent.
//
// # Scoped execution
//
// Every statement runs under a token that names the tenant and subject, expires after Config.TokenTTL and
// is signed with Config.SigningKey. It is set transaction-local, in the same round trip as the statement
// ([Pool.Exec], [Pool.Query], [Pool.QueryRow]) or as BEGIN ([Pool.Tx]): with tenantseal.c_enter where the
// database runs the C verifier (extension 1.2 and later; it also resets the session's settings when the
// transaction commits), with set_config(..., true) otherwise; always as a bound parameter: [Open] refuses the simple protocol, which would write it into the
// statement text that other sessions of the role read ([ErrUnsafeExecMode]). The database verifies it
// once per statement in a SECURITY DEFINER function and raises SQLSTATE TS401 ([ErrInvalidContext]) for
// anything forged, altered, expired, signed with a retired key, or of a tenant that is not active.
//
// # Pooled sessions
//
// A connection goes back to the pool as it came out: each one-statement batch ends with RESET ALL in the
// same round trip (or its context is set with c_enter, which does the same at commit), and a connection that ran a transaction, failed, or has not been swept for a while is
// swept (settings, cursors, LISTEN, advisory locks, SQL-level prepared statements) before it is reused.
// [Pool.Unscoped] sets an empty context itself. Configure session settings in the connection string or
// on the role, not with SET in an AfterConnect hook: the reset undoes those.
//
// # The role itself
//
// PostgreSQL lets the app role ALTER ROLE itself (its password, its role-level settings). [Open] and
// [Pool.CheckRole], every Config.RoleCheckInterval, record such changes as tenantseal.EventRoleChanged.
//
// # Safe roles
//
// [Open] refuses to serve as a role that row-level security would not restrict: a superuser, a role with
// BYPASSRLS, a member of the owner role, or a table owner. Connect as the app role that
// `tenantseal bootstrap` creates.
//
// # Elevation
//
// Support staff read another tenant's rows only through [Pool.Elevate], which names that one tenant, the
// tenant of the support case: a reason, a TTL no longer than Config.MaxElevation, read-only (the database
// honours an elevated token in a READ ONLY transaction only), reported to Config.OnElevatedUse.
//
// # Send paths
//
// In the default exec mode a one-statement batch goes out through pgconn's ExecBatch on statements each
// connection prepares once (the direct path, without the bookkeeping of pgx's pipeline: 31 allocations
// per signed point read against 48, BenchmarkPointRead); pgx's batch serves elevations, Citus, the exec modes for pgbouncer, pgx's
// query options such as pgx.NamedArgs, and a configuration with a tracer of its own, which then sees
// every batch. Both send the same statements in one round trip.
//
// # Metrics and logs
//
// [Open] installs a pgx tracer beside the one PoolConfig may have (both see every statement) that
// counts, with the OpenTelemetry metric API of Config.MeterProvider, the statements sent
// (tenantseal.db.statements, by command and outcome) and the refusals (tenantseal.db.refusals, by
// [RefusalClass] and SQLSTATE): tenant contexts the database refused, writes refused by row-level
// security, privileges the role lacks, and the library's own refusals before any SQL. No instrument
// carries a tenant, a subject or a token. What the pool cannot return to a caller, a periodic role
// check that failed to run, goes to Config.Logger.
//
// # Read replicas
//
// With Config.Replicas, read-only work ([Pool.Query], [Pool.QueryRow], read-only transactions, elevated
// statements) whose context comes from [ReadFromReplica] runs on a hot standby whose lag, measured by WAL
// position, is within Config.ReplicaMaxLag. [Pool.Exec], read-write transactions, and everything under
// [OnPrimary] (to read one's own writes) run on the primary. A standby that lags or cannot be reached is
// not used: the work runs on the primary, or fails with [ErrNoReplica] under Config.ReplicaNoFallback.
// [Pool.Replicas] shows each standby's lag and state. The tenant context verifies on a standby as on the
// primary, and the verifiers write nothing there.
//
// # Citus
//
// On the coordinator of a Citus cluster (migrated node by node, as bootstrap.RunCluster does), Open
// finds the Citus mode by itself ([Pool.Citus]): the context goes to the workers, where the policies of
// distributed tables run, as SET LOCAL in a transaction block, still in one round trip. Its token is
// then statement text, which the app role's sessions can read while it is sent: tokens live
// [CitusTokenTTL] unless Config.TokenTTL says otherwise, and Open refuses a cluster that logs every
// statement ([ErrStatementLogging]). Name the tenant in every statement (tenant_id = $n), or Citus sends
// it to every shard. See citus.go and the README's "Scaling out".
package db
