package repo

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// WithDBTX returns a copy of t that runs its statements on q.
func WithDBTX[T any](t *Table[T], q DBTX) *Table[T] {
	c := *t
	c.q = q
	return &c
}

// CursorKinds names the key kinds of cursors.
var CursorKinds = map[string]keyKind{"uuid": keyUUID, "bigint": keyInt64, "integer": keyInt32, "text": keyText}

// DecodeCursor decodes c as a cursor of a table whose key is of kind k, into the ID it names.
func DecodeCursor(k string, c string) (ID, error) {
	s := &schema{key: CursorKinds[k]}
	arg, err := s.decodeCursor(c)
	if err != nil {
		return ID{}, err
	}
	switch v := arg.(type) {
	case int64:
		return IntID(v), nil
	case int32:
		return IntID(int64(v)), nil
	case string:
		return TextID(v), nil
	case pgtype.UUID:
		return IDFromUUID(v.Bytes), nil
	}
	return ID{}, fmt.Errorf("a cursor bound as %T", arg)
}

// EncodeCursor is the cursor List returns after the row id of a table whose key is of kind k.
func EncodeCursor(k string, id ID) string { return (&schema{key: CursorKinds[k]}).encodeCursor(id) }
