// Package cli implements the tenantseal command: bootstrap, migrate, tenants, keys, context-key, lint,
// demo and version. cmd/tenantseal calls [Run]; tests call it too, with buffers, against a real PostgreSQL.
//
// # Conventions
//
// Each command lives in its own file as a [command] value listed in the table in cli.go; adding one is a
// new file and one line there. Flags use the standard library flag package and may appear before or after
// positional arguments. Failures print exactly one line, "tenantseal: <message>", on stderr and exit 1, or
// 2 for usage errors; progress of a long command (keys reencrypt) goes to stderr before that line.
// Passwords in connection strings, context keys and KMS URIs are redacted from every message.
package cli
