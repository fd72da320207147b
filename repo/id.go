package repo

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/tenantseal/tenantseal/internal/uuid"

	"github.com/jackc/pgx/v5/pgtype"
)

// ID is a row id: a UUID that encodes to and from a Postgres uuid. [NewID] makes version 7 UUIDs, which
// sort by creation time, so inserts stay at the right edge of the (tenant, pk) index and List pages
// come in creation order.
type ID [16]byte

var idClock struct {
	sync.Mutex
	ms  uint64
	seq uint16 // 12 bits
}

// NewID returns a new version 7 UUID. Within a process ids increase strictly: a 12-bit counter after
// the millisecond timestamp orders ids made in the same millisecond (RFC 9562, method 1).
func NewID() ID {
	var id ID
	if _, err := rand.Read(id[6:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	idClock.Lock()
	ms := uint64(time.Now().UnixMilli())
	if ms <= idClock.ms {
		ms = idClock.ms
		idClock.seq++
		if idClock.seq > 0xfff { // counter exhausted: borrow the next millisecond
			ms++
			idClock.seq = 0
		}
	} else {
		idClock.seq = (uint16(id[6])<<4 | uint16(id[7])>>4) & 0x3ff // random start, headroom for increments
	}
	idClock.ms = ms
	seq := idClock.seq
	idClock.Unlock()
	binary.BigEndian.PutUint16(id[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(id[2:6], uint32(ms))
	id[6] = 0x70 | byte(seq>>8)
	id[7] = byte(seq)
	id[8] = id[8]&0x3f | 0x80
	return id
}

// ParseID parses the canonical 8-4-4-4-12 form.
func ParseID(s string) (ID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("repo: id %q: %w", s, err)
	}
	return ID(u), nil
}

// String returns the canonical lower-case form, which is also the row key in encryption's associated data.
func (id ID) String() string { return uuid.Format(id) }

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// UUIDValue lets pgx encode an ID as a uuid.
func (id ID) UUIDValue() (pgtype.UUID, error) { return pgtype.UUID{Bytes: id, Valid: true}, nil }

// ScanUUID lets pgx scan a uuid into an ID.
func (id *ID) ScanUUID(v pgtype.UUID) error {
	if !v.Valid {
		return fmt.Errorf("repo: cannot scan NULL into ID")
	}
	*id = v.Bytes
	return nil
}
