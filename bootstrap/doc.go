// Package bootstrap prepares a PostgreSQL server for tenantseal as its administrator (a superuser, or
// the CREATEROLE and CREATEDB role that managed PostgreSQL gives): the roles, the database and its
// grants, the migrations and the key that signs tenant contexts.
//
// # All at once
//
// [Run] does every step, idempotently, and returns the connection strings of the owner, app, auditor and
// audit writer roles and the context key, which is what `tenantseal bootstrap` writes to its secrets
// file:
//
//	res, err := bootstrap.Run(ctx, adminDSN, bootstrap.Options{Database: "app", RolePrefix: "app", Save: store})
//
// # Safe to run again, safe to stop
//
// Run refuses what it could not finish (an unknown password, a forbidden membership, an attribute only a
// superuser may take) before it changes anything. It hands new passwords to Options.Save before it sets
// any, and sets none when Save fails: a Run stopped at any later step completes when run again with the
// saved passwords in Options.Passwords, without resetting one. A migration file that fails is rolled
// back whole and leaves no dirty version (see migrations.MigrationError).
//
// An existing database is not taken over: it keeps its owner, the owner of its schema public and every
// privilege on both; tenantseal's roles are granted CONNECT (the owner role CREATE too, and CREATE on
// public while the migrations run), and Result.Warnings names what PUBLIC may still do there. With
// Options.TakeOwnership it is handed to the owner role and secured like a database Run creates.
//
// # Who may do what
//
// PostgreSQL 15 rules. "Administrator" is a role WITH CREATEROLE CREATEDB and no superuser (the admin of
// RDS, Cloud SQL, Azure); the owner role is <prefix>_owner.
//
//	feature                                   superuser   administrator            owner role
//	roles, passwords, session limits          yes         yes                      -
//	create the database, hand it to owner     yes         yes (made member of it)  -
//	take over an existing database            yes         if it owns it            -
//	record tenantseal.role_prefix on the db   yes         no: told from owner name -
//	probe role with BYPASSRLS                 yes         no: warning (*)          -
//	migrations, context key                   -           -                        yes
//	C verifier (extension tenantseal_verify)  files on    no (warning if absent)   CREATE EXTENSION
//	                                          the host                             (trusted)
//	statistics target 0 on tenant tables      yes         -                        yes
//	remove statistics collected before        yes         no: warning naming them  no
//	event triggers recording DDL              yes         no: warning              no
//
// Under PostgreSQL 15 a CREATEROLE role may create roles, change their passwords, settings and
// memberships (any role but a superuser, no ADMIN OPTION needed), but may not give or take SUPERUSER,
// REPLICATION or BYPASSRLS, nor even name them in ALTER ROLE: bootstrap leaves them out and refuses, before
// changing anything, a login role that has one. (PostgreSQL 16 asks for ADMIN OPTION on the role, which
// its creator has.)
//
// (*) without BYPASSRLS, tenantseal.exists_elsewhere answers false: the audit log records an attempt on
// another tenant's row as a miss. What degrades is named in Result.Warnings (a [*NeedsSuperuserError]
// from a step called alone); running Run again as a superuser completes it.
//
// # Step by step
//
// The steps are functions of their own, for a deployment that creates databases or roles its own way:
//
//   - [CheckAdmin]: the connection's role may create roles and databases ([CheckSuperuser]: and is a
//     superuser).
//   - [CreateRoles]: the owner, app, auditor, audit writer and probe roles, with their attributes
//     re-asserted each time, and the app role's [SessionLimits] ([SetSessionLimits]).
//   - [CreateDatabase]: the database owned by the owner, its role prefix, CONNECT for app, auditor and
//     audit writer; an existing one is left to its owner unless [DatabaseOptions].TakeOwnership.
//   - [SecurePublicSchema]: in that database, the owner owns schema public and nobody else creates in it.
//   - [PublicPrivileges]: what PUBLIC may do in a database bootstrap does not own.
//   - [RoleDSN]: the connection string of a role, with the administrator's TLS and timeout settings.
//   - [Migrate]: the migrations, as the owner.
//   - [EnsureContextKey]: the context signing key, as the owner.
//   - [HideStatistics]: no column statistics of tenant tables.
//   - [InstallEventTriggers]: DDL on tenant tables and tenantseal's objects recorded in the audit log.
//   - [CheckLogins]: every connection string of a [Result] logs in.
//
// # Secrets
//
// A [Result] holds the roles' passwords (in its connection strings) and the context key. Its String
// method prints neither, nor does [Passwords]'. Errors and warnings name roles, never their passwords.
package bootstrap
