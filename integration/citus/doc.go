// Package citus holds the tests of tenantseal's Citus mode against a real Citus cluster (a coordinator
// and its workers) that TENANTSEAL_CITUS_DSN names: a superuser connection string of the coordinator,
// whose database has the citus extension and the workers added. Each run makes a database of its own
// on every node (with the citus extension, the same workers), bootstraps tenantseal there with
// bootstrap.RunCluster, and drops it afterwards; the cluster is otherwise left as it was. Without
// TENANTSEAL_CITUS_DSN the tests say so and skip: Citus is not in Debian, so make test does not build
// one (see the README's "Scaling out").
package citus
