// Package audit records every cross-tenant attempt out of band in a tamper-evident, hash-chained log,
// raises alerts on bursts, and reads the log back: verify, tail, follow, export.
//
// # Recording
//
// Parse the audit writer role's connection string (TENANTSEAL_AUDIT_WRITER_DSN, which bootstrap writes)
// once, adjust the [Config], start the writer:
//
//	cfg, err := audit.ParseConfig(writerDSN) // or &audit.Config{PoolConfig: pc}, a *pgxpool.Config
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
// Record queues and returns; a goroutine appends batches (at most [MaxBatchSize] events) through
// tenantseal.audit_append on the writer's own connections, as the writer's own role, so an event survives
// the rollback of the transaction that failed, and SQL injected into the application (the app role)
// can neither append, nor cancel or terminate the writer's sessions, nor hold the chain head locked. A
// full queue makes Record wait at most Config.MaxBlock, then drop the event, count it in [Stats] and log
// it at ERROR: never silently. While the database cannot be reached, or the chain head stays locked
// longer than Config.LockTimeout, events go to the log and to a spool file that is replayed, in order,
// when it can. Close flushes.
//
// A lookup by id that missed (tenantseal.EventLookupMiss, from the repositories) is checked by
// audit_append itself, on the writer's connection: stored as a foreign_id attempt when the id is another
// tenant's, dropped when it is nobody's. The caller's request never waits for that check.
//
// # Tamper evidence
//
// The database assigns each entry its sequence number, its time (its own clock; the writer's is kept as
// ReportedAt, never later) and a SHA-256 hash over the previous hash and a canonical encoding of the
// entry, under a lock on the chain head, so concurrent writers cannot fork the chain. An event carries an id chosen when it is recorded, and an id already stored is skipped, so a
// batch replayed after a lost acknowledgement is stored once. Triggers refuse UPDATE, DELETE and TRUNCATE;
// only the audit writer role may append, through the function; the auditor role reads everything.
// [Verify] walks the chain and reports the first broken link.
//
// # Checkpoints
//
// The chain lives in the database: its owner or a superuser can rewrite an entry and recompute every
// hash. A [Checkpointer] anchors the log outside it: it computes the RFC 6962 Merkle tree over the
// entries' canonical encodings, signs the size and root as a [Checkpoint] (a signed note in the
// transparency-log checkpoint format) with a [Signer] whose Ed25519 key never lives in the database (a
// development key file, [CreateKeyFile]; in production a keyset wrapped by the KEK,
// keys.CreateSigningKeyFile), and hands it to a [Publisher], such as a checkpoint directory [Dir]. Give
// it to Config.Checkpointer and the writer signs after writes land. [VerifyCheckpoints] recomputes the
// tree from the entries it reads, checks every checkpoint's signature, origin and root and the
// consistency proofs between them, and reports the anchored and the not yet anchored entries;
// [ProveEntry] and [CheckInclusion] prove one entry's inclusion to anyone with the verifier key.
//
// What injected SQL catches itself (DO ... EXCEPTION) reaches no Recorder. The database counts every
// tenant context it refuses in a sequence, which no rollback undoes, and logs it at LOG level in the
// server log: [ContextRefusals] reads the count, to compare with the invalid_context entries.
//
// # Schema, privilege and role changes
//
// Migration 0022 records them in the same chain. Event triggers that bootstrap installs as a superuser
// record each DDL command on a tenant table, its policies, or an object of schema tenantseal as a
// tenantseal.EventDDL entry, followed by what it changed (tenantseal.EventSecurityChange, "object
// aspect: old → new"), in the DDL's transaction. For what event triggers never see (roles, their
// attributes, memberships and settings) and where they are absent, [Writer.CheckSecurity] compares
// the database's security state with the one last recorded and records each difference; a writer
// with Config.SecurityInterval does so at start and at that interval. [FailedLogins] reads refused
// logins from a server log.
//
// # Reading
//
// Connect as the auditor role, the only one that sees every tenant's entries. [Query] returns a page of
// entries selected by a [Filter] (tenant, kind, time, sequence number); [Tail] the last n of them, and
// the sequence number from which [Follow] goes on printing new ones as they arrive; [Export] writes every
// match as JSON lines for a SIEM. They read a page at a time, so the log may be of any size. A role that
// does not see the whole log is told by [CheckWholeLog], with [ErrPartialLog], and refused by [Verify].
// The app role reads no audit table: a tenant reads the entries it acted in with [OwnEvents], numbered
// within the tenant, without the chain's sequence numbers, whose gaps would tell other tenants' volume.
//
// # Alerts and metrics
//
// A [Detector] counts events per principal and per source tenant in a sliding window and calls an
// [Alerter] (by default [LogAlerter], slog at ERROR) when a source exceeds the threshold. Counters per
// kind, and of written, spooled, replayed and dropped events, are in [Writer.Stats], and the same
// figures are OpenTelemetry instruments of Config.MeterProvider (scope [MeterName]):
// tenantseal.audit.recorded by kind ([AttrKind]), tenantseal.audit.appended, .spooled, .replayed,
// .dropped, .lock_timeouts, .checkpoints, .checkpoint_failures and .queue_length. The package uses
// the metric API only: nothing is exported until the application installs a meter provider (the
// default is otel.GetMeterProvider()), for example the SDK with a Prometheus exporter, as the
// tenantseal CLI's --metrics-addr does. No instrument carries a tenant id, a token or a key.
package audit
