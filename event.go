package tenantseal

import "context"

// EventKind names a kind of recorded event. The audit log stores it as text; the set is closed: only
// the constants below are recorded by tenantseal itself.
type EventKind string

// Kinds of cross-tenant attempts and security-relevant uses, as recorded in the audit log.
const (
	EventRefusedWrite   EventKind = "refused_write"       // a write refused by a policy's WITH CHECK (42501)
	EventForeignID      EventKind = "foreign_id"          // a lookup by id that hit another tenant's row
	EventTenantMismatch EventKind = "tenant_mismatch"     // an explicit tenant other than the Principal's
	EventNoTenant       EventKind = "no_tenant"           // a statement attempted without a Principal
	EventInvalidContext EventKind = "invalid_context"     // a forged, altered, expired or wrong-key token (TS401)
	EventTampered       EventKind = "tampered_ciphertext" // a ciphertext that does not decrypt for its row
	EventElevation      EventKind = "elevation"           // a use of just-in-time elevation
	EventShred          EventKind = "shred"               // a crypto-shred of a tenant's keysets by an operator

	// A lookup by id that found no row. The repository reports every such miss without asking anything
	// itself, so that a miss costs the caller the same whether the id is another tenant's or nobody's;
	// the audit writer has the database check it, on its own role: stored as EventForeignID when the id
	// is another tenant's, not stored when it is nobody's, stored as it is when it could not be checked.
	EventLookupMiss EventKind = "lookup_miss"
	// A role-level setting or the password of the app role changed (ALTER ROLE on itself, which
	// PostgreSQL lets every role do), as db.Pool sees at startup and in its periodic checks.
	EventRoleChanged EventKind = "role_changed"

	// Refusals of the authentication layer (package authn). Events before a token's signature is verified
	// name no Principal: nothing of such a token is trusted.
	EventAuthRefused     EventKind = "auth_refused"     // a bearer token missing, malformed, badly signed, of a wrong issuer, audience, type or API
	EventAuthExpired     EventKind = "auth_expired"     // a token expired, not yet valid, or living longer than allowed
	EventUnknownTenant   EventKind = "unknown_tenant"   // a verified token naming no tenant the registry knows
	EventIssuerMismatch  EventKind = "issuer_mismatch"  // a verified token naming a tenant its issuer may not speak for
	EventStepUpRefused   EventKind = "step_up_refused"  // an elevation without step-up: no admin token, no MFA, stale auth_time, reused jti
	EventEnvelopeRefused EventKind = "envelope_refused" // a job's principal envelope tampered with, expired or bound to another job
)

// Operator actions, recorded by the libraries an operator's tool calls (keys/pgstore, tenants,
// migrations, bootstrap) with the operator as the Principal: a Subject and no Tenant (see
// [OperatorPrincipal]). They are records, not attempts: an audit.Detector does not count them.
const (
	EventKeyRotate        EventKind = "key_rotate"         // new primary keys for a tenant
	EventKeyRetire        EventKind = "key_retire"         // old keys disabled
	EventKeyEnable        EventKind = "key_enable"         // disabled keys enabled again
	EventKeyDestroy       EventKind = "key_destroy"        // disabled keys removed from a keyset for good
	EventKEKRotate        EventKind = "kek_rotate"         // keysets re-wrapped under another KEK
	EventContextKeyRotate EventKind = "context_key_rotate" // a new signing key for tenant contexts
	EventMigrate          EventKind = "migrate"            // schema migrations applied, reverted or forced
	EventTenantChange     EventKind = "tenant_change"      // a tenant created, suspended, resumed, deleted, renamed, given a region or policy
	EventBootstrap        EventKind = "bootstrap"          // roles, database or context key set up
	EventQuarantine       EventKind = "quarantine_release" // a tenant's quarantine list emptied for re-examination
	EventKeySettings      EventKind = "key_settings"       // the key cache bound or write grace changed
	EventKeyCreate        EventKind = "key_create"         // a tenant given its first keysets
	EventKeyReencrypt     EventKind = "key_reencrypt"      // a tenant's encrypted values rewritten under its primary keys
	EventRetentionPolicy  EventKind = "retention_policy"   // a retention policy created, changed or deleted
	// What the retention job deleted or shredded, by which policy and version: the tenant, the table,
	// how many rows and the cut-off, or the keysets shredded after the grace period; never row contents.
	EventDeletionCertificate EventKind = "deletion_certificate"
)

// Records of what changed or was used, not attempts: an audit.Detector does not count them.
const (
	// A tenant's keyset unwrapped with a KEK, by package keys on a cache miss: Table
	// tenantseal.tenant_keysets, RowKey the purpose (aead, prf), Detail the KEK's id and the process.
	EventKeyUnwrap EventKind = "key_unwrap"
	// A DDL command on a tenant table, its policies, triggers or rules, or on an object of schema
	// tenantseal, recorded by the database's event triggers (installed by bootstrap as a superuser):
	// Operation the command tag, Subject "db:<session role>".
	EventDDL EventKind = "ddl"
	// One difference in the database's security state (row-level security, policies, privileges,
	// tenantseal's roles and functions, event triggers), "object aspect: old → new" in Detail, seen by
	// an event trigger (Subject "db:<role>") or by the audit writer's watcher (Subject "watcher:<name>").
	EventSecurityChange EventKind = "security_change"
	// The first security state recorded, which later changes are compared with.
	EventSecurityBaseline EventKind = "security_baseline"
)

// EventKinds lists every kind tenantseal records, in a stable order.
func EventKinds() []EventKind {
	return []EventKind{EventRefusedWrite, EventForeignID, EventTenantMismatch, EventNoTenant,
		EventInvalidContext, EventTampered, EventElevation, EventShred, EventLookupMiss, EventRoleChanged,
		EventAuthRefused, EventAuthExpired, EventUnknownTenant, EventIssuerMismatch, EventStepUpRefused, EventEnvelopeRefused,
		EventKeyRotate, EventKeyRetire, EventKeyEnable, EventKeyDestroy, EventKEKRotate, EventContextKeyRotate,
		EventMigrate, EventTenantChange, EventBootstrap, EventQuarantine, EventKeySettings, EventKeyCreate, EventKeyReencrypt,
		EventRetentionPolicy, EventDeletionCertificate,
		EventKeyUnwrap, EventDDL, EventSecurityChange, EventSecurityBaseline}
}

// Operator reports whether k records an operator's action (a shred included) rather than an attempt.
func (k EventKind) Operator() bool {
	switch k {
	case EventShred, EventKeyRotate, EventKeyRetire, EventKeyEnable, EventKeyDestroy, EventKEKRotate,
		EventContextKeyRotate, EventMigrate, EventTenantChange, EventBootstrap, EventQuarantine, EventKeySettings,
		EventKeyCreate, EventKeyReencrypt, EventRetentionPolicy, EventDeletionCertificate:
		return true
	}
	return false
}

// Attempt reports whether k may be an attempt on another tenant's data or on the tenant context, as an
// audit.Detector counts: not an operator's action, an elevation, a lookup miss (until found to be a
// foreign id), a keyset unwrap, nor a schema or security change.
func (k EventKind) Attempt() bool {
	switch k {
	case EventElevation, EventLookupMiss, EventKeyUnwrap, EventDDL, EventSecurityChange, EventSecurityBaseline:
		return false
	}
	return !k.Operator()
}

// OperatorPrincipal is the Principal of an operator's action: the operator named by subject (an OS user
// and host, a CI job, an on-call engineer) and no tenant, so that it can never read or write tenant data,
// and its events are recorded under no tenant.
func OperatorPrincipal(subject string) Principal { return Principal{Subject: subject} }

// Valid reports whether k is one of the kinds tenantseal records.
func (k EventKind) Valid() bool {
	for _, x := range EventKinds() {
		if k == x {
			return true
		}
	}
	return false
}

// Event is one security-relevant occurrence as the layer that saw it describes it. The recorder adds
// the time, the Principal and the request id from the context. No field may hold plaintext of
// encrypted fields, tokens, keys or passwords.
type Event struct {
	Kind         EventKind
	TargetTenant TenantID // the tenant whose row was aimed at, zero when unknown
	Table        string
	Operation    string // select, insert, update, delete, tx, decrypt, ...
	RowKey       string
	SQLState     string
	Detail       string
}

// Recorder receives events. Record must not block for long: the audit package's Writer queues them and
// writes them out of band, on its own connection, so that they survive the failing transaction.
type Recorder interface {
	Record(ctx context.Context, e Event)
}
