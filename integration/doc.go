// Package integration holds end-to-end tests of the whole stack against real PostgreSQL servers:
// concurrency through one pool and through pgbouncer, server faults mid-transaction (stop, kill, pause,
// restart) and a state-machine model test. It exports nothing; the isolation suite that users run is
// package [github.com/tenantseal/tenantseal/isolation].
package integration
