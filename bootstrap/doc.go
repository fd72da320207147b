// Package bootstrap prepares a PostgreSQL server for tenantseal as a superuser: the roles, the database
// and its grants, the migrations and the key that signs tenant contexts.
//
// # All at once
//
// [Run] does every step, idempotently, and returns the connection strings of the owner, app, auditor and
// audit writer roles and the context key, which is what `tenantseal bootstrap` writes to its secrets
// file:
//
//	res, err := bootstrap.Run(ctx, superDSN, bootstrap.Options{Database: "app", RolePrefix: "app"})
//
// # Step by step
//
// The steps are functions of their own, for a deployment that creates databases or roles its own way:
//
//   - [CheckSuperuser]: the connection's role may create roles and databases.
//   - [CreateRoles]: the owner, app, auditor, audit writer and probe roles, with their attributes
//     re-asserted each time, and the app role's [SessionLimits] ([SetSessionLimits]).
//   - [CreateDatabase]: the database owned by the owner, its role prefix, CONNECT for app, auditor and
//     audit writer only.
//   - [SecurePublicSchema]: in that database, the owner owns schema public and nobody else creates in it.
//   - [RoleDSN]: the connection string of a role, with the superuser's TLS and timeout settings.
//   - [Migrate]: the migrations, as the owner.
//   - [EnsureContextKey]: the context signing key, as the owner.
//   - [HideStatistics]: no column statistics of tenant tables, as the superuser.
//   - [CheckLogins]: every connection string of a [Result] logs in.
//
// # Secrets
//
// A [Result] holds the roles' passwords (in its connection strings) and the context key. Its String
// method prints neither, nor does [Passwords]'.
package bootstrap
