package retention

import (
	"fmt"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"
)

// Certificate is what one deletion of the retention job destroyed, by which policy, as the audit log
// records it (tenantseal.EventDeletionCertificate, with the operator as its Principal): the rows of
// one tenant in one table older than a cut-off, or a deleted tenant's keysets. It names counts, times
// and names, never row contents or keys.
type Certificate struct {
	Tenant  tenantseal.TenantID
	Policy  string
	Version int
	// Table is the table, as PostgreSQL names it; tenantseal.tenant_keysets for a shred.
	Table string

	// Of a deletion of rows: the timestamp column, the rule's maximum age, and the cut-off (the time of
	// the run less the age) before which rows were deleted, and how many were.
	Column string
	MaxAge time.Duration
	Cutoff time.Time
	Rows   int64
	// Partial says that the run stopped before it deleted every row past the cut-off: Rows committed,
	// and a later run deletes the rest.
	Partial bool

	// Of a shred: the purposes of the destroyed keysets (none for a tenant that had none), when the
	// tenant was deleted, and the grace period of the policy.
	Shredded  []string
	DeletedAt time.Time
	Grace     time.Duration
}

// IsShred says that c certifies a shred rather than a deletion of rows.
func (c Certificate) IsShred() bool { return c.Table == keysetsTable }

const keysetsTable = "tenantseal.tenant_keysets"

// String is the certificate as the audit log's detail says it.
func (c Certificate) String() string {
	by := fmt.Sprintf("by retention policy %s version %d", c.Policy, c.Version)
	if c.IsShred() {
		what := "keysets (" + strings.Join(c.Shredded, ", ") + ")"
		if len(c.Shredded) == 0 {
			what = "no keysets (it had none; marked shredded)"
		}
		return fmt.Sprintf("shredded %s of the tenant deleted at %s, after the grace period of %s, %s",
			what, c.DeletedAt.UTC().Format(time.RFC3339), FormatAge(c.Grace), by)
	}
	s := fmt.Sprintf("deleted %d rows whose %s is before %s (older than %s), %s", c.Rows, c.Column,
		c.Cutoff.UTC().Format(time.RFC3339Nano), FormatAge(c.MaxAge), by)
	if c.Partial {
		s += "; interrupted: rows past the cut-off remain, for the next run"
	}
	return s
}

// Event is the audit log's record of c.
func (c Certificate) Event() tenantseal.Event {
	op := "delete"
	if c.IsShred() {
		op = "shred"
	}
	return tenantseal.Event{Kind: tenantseal.EventDeletionCertificate, TargetTenant: c.Tenant, Table: c.Table, Operation: op,
		Detail: c.String()}
}
