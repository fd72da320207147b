package repo

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// keyArg returns what binds id to the pk column, or an error wrapping [ErrInvalidQuery] for an id of
// another kind (or out of an integer column's range): no row can have it, and nothing is sent.
func (s *schema) keyArg(id ID) (any, error) {
	want := s.key.idKind()
	if id.kind != want {
		return nil, fmt.Errorf("%w: %s has %s keys, got a %s id", ErrInvalidQuery, s.table, want, id.kind)
	}
	switch s.key {
	case keyInt64:
		return id.n, nil
	case keyInt32:
		if id.n < math.MinInt32 || id.n > math.MaxInt32 {
			return nil, fmt.Errorf("%w: %s has integer keys, id %d is out of their range", ErrInvalidQuery, s.table, id.n)
		}
		return int32(id.n), nil
	case keyText:
		return id.s, nil
	}
	// A uuid, not the ID: pgx encodes it also where the statement's parameter types are unknown
	// (QueryExecModeExec, for pgbouncer), as text the server reads as the uuid column's.
	return pgtype.UUID{Bytes: id.u, Valid: true}, nil
}

// uuidKey makes id, a key scanned from a uuid table, the uuid ID it is: where results come as text
// (QueryExecModeExec), pgx scans a uuid into an ID as text.
func (s *schema) uuidKey(id *ID) error {
	if s.key != keyUUID || id.kind != textID {
		return nil
	}
	u, err := ParseID(id.s)
	if err != nil {
		return fmt.Errorf("repo: a key of %s is not a uuid", s.table)
	}
	*id = u
	return nil
}

// A cursor is the last key of a page: a uuid's 16 bytes, an integer's 8 bytes big-endian, or a 't'
// and a text's bytes (never empty, so that no text key reads as the first page), base64url without
// padding. Cursors of uuid tables are what they were before keys of other types.
func (s *schema) encodeCursor(id ID) string {
	var b []byte
	switch s.key {
	case keyUUID:
		b = id.u[:]
	case keyInt64, keyInt32:
		b = binary.BigEndian.AppendUint64(nil, uint64(id.n))
	case keyText:
		b = append([]byte{'t'}, id.s...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the key a cursor of encodeCursor holds, bound as keyArg binds it, or
// [ErrInvalidCursor].
func (s *schema) decodeCursor(c string) (any, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, ErrInvalidCursor
	}
	var id ID
	switch s.key {
	case keyUUID:
		if len(b) != 16 {
			return nil, ErrInvalidCursor
		}
		id = IDFromUUID([16]byte(b))
		if id.IsZero() {
			return pgtype.UUID{Valid: true}, nil // the nil UUID, a key like any other here, bound as keyArg binds a uuid
		}
	case keyInt64, keyInt32:
		if len(b) != 8 {
			return nil, ErrInvalidCursor
		}
		id = IntID(int64(binary.BigEndian.Uint64(b)))
	case keyText:
		if len(b) == 0 || b[0] != 't' || !utf8.Valid(b[1:]) {
			return nil, ErrInvalidCursor
		}
		id = TextID(string(b[1:]))
	}
	arg, err := s.keyArg(id)
	if err != nil {
		return nil, ErrInvalidCursor
	}
	return arg, nil
}
