package audit

import (
	"context"
	"crypto/rand"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/uuid"
)

// Entry is one audit event as stored: what a detection reported, who did it and when.
type Entry struct {
	Seq int64 `json:"seq,omitempty"`
	// EventID is chosen when the event is recorded: the database skips an id it already holds, so a
	// batch appended again after a lost acknowledgement is not stored twice.
	EventID string `json:"event_id"`
	// At is when the event was recorded, by the writer's clock, until it is stored; then the database's
	// clock, which also orders it (Seq). What the writer said is kept as ReportedAt (never later than At).
	At           time.Time            `json:"at"`
	ReportedAt   *time.Time           `json:"reported_at,omitempty"`
	Kind         tenantseal.EventKind `json:"kind"`
	Subject      *string              `json:"subject"`
	TenantID     *string              `json:"tenant_id"`
	TargetTenant *string              `json:"target_tenant"`
	Table        *string              `json:"table_name"`
	Operation    *string              `json:"operation"`
	RowKey       *string              `json:"row_key"`
	SQLState     *string              `json:"sqlstate"`
	RequestID    *string              `json:"request_id"`
	Detail       *string              `json:"detail"`
	PrevHash     []byte               `json:"prev_hash,omitempty"`
	Hash         []byte               `json:"hash,omitempty"`
}

type requestIDKey struct{}

// WithRequestID returns a copy of ctx carrying the request id that events recorded under it name.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id in ctx, if any.
func RequestIDFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(requestIDKey{}).(string)
	return id, ok
}

// Field size limits, in bytes. Longer values are cut at a character boundary and marked; the event is
// never refused for its size.
const (
	MaxFieldLen  = 256
	MaxDetailLen = 2048
)

const (
	truncatedMarker = "…[truncated]"
	escapedMarker   = "[invalid utf-8 replaced]"
)

// clean makes s storable and bounded: invalid UTF-8 and NUL bytes (which Postgres text cannot hold)
// become U+FFFD with a marker, and anything longer than max is cut with a marker.
func clean(s string, max int) string {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD") + escapedMarker
	}
	if len(s) <= max {
		return s
	}
	cut := max - len(truncatedMarker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncatedMarker
}

func opt(s string, max int) *string {
	if s == "" {
		return nil
	}
	c := clean(s, max)
	return &c
}

// newEventID returns a random (version 4) UUID.
func newEventID() string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return uuid.Format(u)
}

// newEntry builds the stored form of e as seen under ctx at time at.
func newEntry(ctx context.Context, e tenantseal.Event, at time.Time) Entry {
	en := Entry{
		EventID:   newEventID(),
		At:        at.UTC().Truncate(time.Microsecond),
		Kind:      tenantseal.EventKind(clean(string(e.Kind), MaxFieldLen)),
		Table:     opt(e.Table, MaxFieldLen),
		Operation: opt(e.Operation, MaxFieldLen),
		RowKey:    opt(e.RowKey, MaxFieldLen),
		SQLState:  opt(e.SQLState, MaxFieldLen),
		Detail:    opt(e.Detail, MaxDetailLen),
	}
	if en.Kind == "" {
		en.Kind = "unknown"
	}
	if !e.TargetTenant.IsZero() {
		en.TargetTenant = opt(uuid.Format(e.TargetTenant.Handle()), MaxFieldLen)
	}
	if p, ok := tenantseal.PrincipalFrom(ctx); ok {
		en.Subject = opt(p.Subject, MaxFieldLen)
		if !p.Tenant.IsZero() {
			en.TenantID = opt(uuid.Format(p.Tenant.Handle()), MaxFieldLen)
		}
	}
	if id, ok := RequestIDFrom(ctx); ok {
		en.RequestID = opt(id, MaxFieldLen)
	}
	return en
}
