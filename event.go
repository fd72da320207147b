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
)

// EventKinds lists every kind tenantseal records, in a stable order.
func EventKinds() []EventKind {
	return []EventKind{EventRefusedWrite, EventForeignID, EventTenantMismatch, EventNoTenant,
		EventInvalidContext, EventTampered, EventElevation, EventShred}
}

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
