// Package integration starts PostgreSQL for tests and gives each test its own migrated database.
//
// A test binary calls [Main] from TestMain: it starts a server (a container through testcontainers-go,
// or the server named by TENANTSEAL_TEST_DSN), bootstraps roles and a migrated template database, runs
// the tests and removes the container, also on failure or interrupt. Each test then calls [NewDatabase]
// for its own clone of the template, so tests run in parallel:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		d := pgtest.NewDatabase(t)
//		// d.AppDSN, d.OwnerDSN, d.ContextKey ...
//	}
//
// The image is TENANTSEAL_PG_IMAGE when set, else postgres:17-alpine when present or pullable, else the
// local image that `make pg-image` builds from the machine's PostgreSQL.
package integration
