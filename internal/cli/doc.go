// Package cli implements the tenantseal command: bootstrap, migrate, tenants, keys, context-key, lint,
// demo and version. cmd/tenantseal calls [Run]; tests call it too, with buffers, against a real PostgreSQL.
//
// # Conventions
//
// Each command lives in its own file as a [command] value listed in the table in cli.go; adding one is a
// new file and one line there. Flags use the standard library flag package and may appear before or after
// positional arguments. Failures print exactly one line, "tenantseal: <message>", on stderr and exit 1, or
// 2 for usage errors, 130 or 143 after SIGINT or SIGTERM; progress, hints and next steps go to stderr
// (--quiet drops them), results to stdout (--format json where a command lists or reports, with the
// schema in its help). Commands that change something record it in the audit log with the operator
// (operator.go). Passwords in connection strings, context keys and KMS URIs are redacted from every
// message.
package cli
