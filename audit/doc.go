// Package audit records every cross-tenant attempt out of band in a tamper-evident, hash-chained log,
// raises alerts on bursts, and reads the log back: verify, tail, follow, export.
//
// # Recording
//
// Parse the app role's connection string once, adjust the [Config], start the writer:
//
//	cfg, err := audit.ParseConfig(appDSN) // or &audit.Config{PoolConfig: pc}, a *pgxpool.Config
//	cfg.SpoolPath = "/var/lib/myapp/audit.spool"
//	w, err := audit.NewWriter(ctx, cfg)
//	defer w.Close(ctx)
//
// [Writer] implements tenantseal.Recorder: give it to db.Config.Recorder and keys.Config.Recorder, and the
// pool, the keyring and the repositories report what they detect: writes refused by a policy, lookups
// by id that hit another tenant's row, structs naming a foreign tenant, statements without a Principal,
// refused tenant tokens, tampered ciphertexts and every elevated use. Events carry the time, the kind, the
// Principal, the target tenant where known, table, operation, row key, SQLSTATE and the request id from
// [WithRequestID]; never plaintext, tokens or keys. Oversized or invalid UTF-8 values are cut or
// replaced with a marker, never refused.
//
// Record queues and returns; a goroutine appends batches through tenantseal.audit_append on the writer's
// own connections, so an event survives the rollback of the transaction that failed. A full queue makes
// Record wait at most Config.MaxBlock, then drop the event, count it in [Stats] and log it at ERROR:
// never silently. While the database cannot be reached, events go to the log and to a spool file that
// is replayed, in order, when it can. Close flushes.
//
// # Tamper evidence
//
// The database assigns each entry its sequence number and a SHA-256 hash over the previous hash and a
// canonical encoding of the entry, under a lock on the chain head, so concurrent writers cannot fork the
// chain. An event carries an id chosen when it is recorded, and an id already stored is skipped, so a
// batch replayed after a lost acknowledgement is stored once. Triggers refuse UPDATE, DELETE and TRUNCATE;
// the app role may only append, through the function; the auditor role reads everything. [Verify] walks
// the chain and reports the first broken link.
//
// # Reading
//
// Connect as the auditor role, the only one that sees every tenant's entries. [Query] returns a page of
// entries selected by a [Filter] (tenant, kind, time, sequence number); [Tail] the last n of them, and
// the sequence number from which [Follow] goes on printing new ones as they arrive; [Export] writes every
// match as JSON lines for a SIEM. They read a page at a time, so the log may be of any size. A role that
// sees only part of the log (the app role, under row-level security) reads only its tenant's entries:
// [CheckWholeLog] tells, with [ErrPartialLog], and [Verify] refuses such a role.
//
// # Alerts and metrics
//
// A [Detector] counts events per principal and per source tenant in a sliding window and calls an
// [Alerter] (by default [LogAlerter], slog at ERROR) when a source exceeds the threshold. Counters per
// kind, and of written, spooled, replayed and dropped events, are in [Writer.Stats] and published with
// the standard library's expvar under "tenantseal_audit": no dependency, and any Prometheus exporter
// for expvar can scrape them.
package audit
