// Package pgtest starts PostgreSQL for tests and gives each test its own migrated database. It is a test
// kit: only tests and the development binary import it (it links "testing" and testcontainers-go), never
// the product.
//
// A test binary calls [Main] from TestMain. The first test that asks for a database starts a server (a
// container through testcontainers-go, or the server named by TENANTSEAL_TEST_DSN), bootstraps roles and
// a migrated template database; [Main] removes the container, or what the run created on a server it was
// pointed at, when the tests end, also on failure or interrupt. Tests that need no database start
// nothing. Each test calls [NewDatabase] for its own clone of the template, so tests run in parallel:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		d := pgtest.NewDatabase(t)
//		// d.AppDSN, d.OwnerDSN, d.ContextKey ...
//	}
//
// The template has tenantseal's own migrations and then those of examples/reference (public.customers,
// invoices and documents, registered in tenantseal.encrypted_columns, recorded in
// tenantseal_migrations.reference): tests use them as ready-made tenant tables. A test of the product
// schema alone reverts them first (reference.NewMigrator, Down).
//
// [SharedReplicaSet] gives the tests of a binary one primary and a streaming hot standby (pg_basebackup
// -R), containers of the same image on a Docker network of their own, with a cluster bootstrapped on the
// primary: [ReplicaSet.NewDatabase] for a database on both, [Server.On] for a connection string of the
// primary pointed at a standby, [ReplicaSet.WaitReplayed] to wait until a standby has replayed what the
// primary wrote, [ReplicaSet.StartReplica] for a standby of a test's own (to stop with
// [Server.StopContainer]). It needs containers: with TENANTSEAL_TEST_DSN set, it fails the test, saying
// why (a skip would let the run read as one that passed the replica tests).
//
// The image is TENANTSEAL_PG_IMAGE when set, else postgres:17-alpine when present or pullable, else the
// local image that `make pg-image` builds from the machine's PostgreSQL.
//
// Every server the harness starts serves TLS with certificates of a CA made for the test process
// (internal/pgtls; [Server.TLS] has the files), handed to the image's entrypoint through
// TENANTSEAL_SSL_CERT, TENANTSEAL_SSL_KEY and TENANTSEAL_SSL_CA, which the local image reads; every
// connection string the harness hands out is sslmode=verify-full against that CA. A test that writes a
// connection string of its own takes the TLS settings from [Database.TLSParams]. TENANTSEAL_TEST_DSN is
// used as it is: db.Open refuses it unless it is verify-full too.
package pgtest
