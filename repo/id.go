package repo

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tenantseal/tenantseal/internal/uuid"

	"github.com/jackc/pgx/v5/pgtype"
)

// ID is a row key: a uuid, an integer (bigint or integer) or a text, whichever the table's pk column is.
// It is what Get and Delete take and what Page.Unreadable names, one type for every table, so that a
// repository is Table[T] whatever its key (see the package doc). IDs compare with ==; an ID of one
// kind never equals one of another ([IntID] 7 is not [TextID] "7").
//
// [NewID] makes version 7 UUIDs, which sort by creation time, so inserts stay at the right edge of the
// (tenant, pk) index and List pages come in creation order. The zero ID names no row.
type ID struct {
	kind idKind
	u    [16]byte
	n    int64
	s    string
}

// idKind is which key an ID carries.
type idKind uint8

const (
	noID idKind = iota
	uuidID
	intID
	textID
)

func (k idKind) String() string {
	switch k {
	case uuidID:
		return "uuid"
	case intID:
		return "integer"
	case textID:
		return "text"
	}
	return "zero"
}

var idClock struct {
	sync.Mutex
	ms  uint64
	seq uint16 // 12 bits
}

// NewID returns a new version 7 UUID. Within a process ids increase strictly: a 12-bit counter after
// the millisecond timestamp orders ids made in the same millisecond (RFC 9562, method 1).
func NewID() ID {
	var u [16]byte
	if _, err := rand.Read(u[6:]); err != nil {
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
		idClock.seq = (uint16(u[6])<<4 | uint16(u[7])>>4) & 0x3ff // random start, headroom for increments
	}
	idClock.ms = ms
	seq := idClock.seq
	idClock.Unlock()
	binary.BigEndian.PutUint16(u[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(u[2:6], uint32(ms))
	u[6] = 0x70 | byte(seq>>8)
	u[7] = byte(seq)
	u[8] = u[8]&0x3f | 0x80
	return IDFromUUID(u)
}

// ParseID parses a uuid key in the canonical 8-4-4-4-12 form (any case). Integer and text keys need no
// parsing: [IntID] and [TextID].
func ParseID(s string) (ID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("repo: id %q: %w", s, err)
	}
	return IDFromUUID(u), nil
}

// IDFromUUID returns the ID of a uuid key. The nil UUID is the zero ID.
func IDFromUUID(u [16]byte) ID {
	if u == ([16]byte{}) {
		return ID{}
	}
	return ID{kind: uuidID, u: u}
}

// IntID returns the ID of an integer key (a bigint, integer, identity or serial column).
func IntID(n int64) ID { return ID{kind: intID, n: n} }

// TextID returns the ID of a text key (a text or varchar column).
func TextID(s string) ID { return ID{kind: textID, s: s} }

// String returns the key in its canonical text form: a uuid in lower case, an integer in decimal, a
// text as it is; "" for the zero ID. It is also the row key in encryption's associated data and in
// events.
func (id ID) String() string {
	switch id.kind {
	case uuidID:
		return uuid.Format(id.u)
	case intID:
		return strconv.FormatInt(id.n, 10)
	case textID:
		return id.s
	}
	return ""
}

// appendText appends what String returns to b.
func (id ID) appendText(b []byte) []byte {
	switch id.kind {
	case uuidID:
		return uuid.Append(b, id.u)
	case intID:
		return strconv.AppendInt(b, id.n, 10)
	}
	return append(b, id.s...)
}

// Equal reports whether id and other name the same key, as == does.
func (id ID) Equal(other ID) bool { return id == other }

// IsZero reports whether id names no row.
func (id ID) IsZero() bool { return id.kind == noID }

// UUID returns a uuid key, and false for an ID of another kind.
func (id ID) UUID() ([16]byte, bool) { return id.u, id.kind == uuidID }

// Int64 returns an integer key, and false for an ID of another kind.
func (id ID) Int64() (int64, bool) { return id.n, id.kind == intID }

// Text returns a text key, and false for an ID of another kind.
func (id ID) Text() (string, bool) { return id.s, id.kind == textID }

// Compare orders IDs as the database orders keys of their kind: uuids by their bytes, integers by value,
// texts by their bytes (the C collation). IDs of different kinds order by kind, the zero ID first.
func (id ID) Compare(other ID) int {
	if c := cmp.Compare(id.kind, other.kind); c != 0 {
		return c
	}
	for i := range id.u {
		if c := cmp.Compare(id.u[i], other.u[i]); c != 0 {
			return c
		}
	}
	return cmp.Or(cmp.Compare(id.n, other.n), strings.Compare(id.s, other.s))
}

// errKind reports an ID of another kind than a parameter or column wants.
func (id ID) errKind(want idKind) error {
	return fmt.Errorf("repo: a %s id where a %s key goes", id.kind, want)
}

// UUIDValue lets pgx encode a uuid ID (or the zero ID, as the nil UUID) as a uuid.
func (id ID) UUIDValue() (pgtype.UUID, error) {
	if id.kind != uuidID && id.kind != noID {
		return pgtype.UUID{}, id.errKind(uuidID)
	}
	return pgtype.UUID{Bytes: id.u, Valid: true}, nil
}

// Int64Value lets pgx encode an integer ID as a bigint or integer (the zero ID as NULL).
func (id ID) Int64Value() (pgtype.Int8, error) {
	if id.kind != intID && id.kind != noID {
		return pgtype.Int8{}, id.errKind(intID)
	}
	return pgtype.Int8{Int64: id.n, Valid: id.kind == intID}, nil
}

// TextValue lets pgx encode a text ID as a text (the zero ID as NULL).
func (id ID) TextValue() (pgtype.Text, error) {
	if id.kind != textID && id.kind != noID {
		return pgtype.Text{}, id.errKind(textID)
	}
	return pgtype.Text{String: id.s, Valid: id.kind == textID}, nil
}

var errScanNull = errors.New("repo: cannot scan NULL into ID")

// ScanUUID lets pgx scan a uuid into an ID.
func (id *ID) ScanUUID(v pgtype.UUID) error {
	if !v.Valid {
		return errScanNull
	}
	*id = IDFromUUID(v.Bytes)
	return nil
}

// ScanInt64 lets pgx scan a bigint or integer into an ID.
func (id *ID) ScanInt64(v pgtype.Int8) error {
	if !v.Valid {
		return errScanNull
	}
	*id = IntID(v.Int64)
	return nil
}

// ScanText lets pgx scan a text or varchar into an ID.
func (id *ID) ScanText(v pgtype.Text) error {
	if !v.Valid {
		return errScanNull
	}
	*id = TextID(v.String)
	return nil
}
