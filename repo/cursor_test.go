package repo_test

import (
	"errors"
	"math"
	"testing"

	"github.com/tenantseal/tenantseal/repo"
)

// Every key comes back from its cursor, and a cursor of one key type is refused by a table of another.
func TestCursorsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kind string
		id   repo.ID
	}{
		{"uuid", repo.NewID()},
		{"bigint", repo.IntID(math.MinInt64)},
		{"bigint", repo.IntID(42)},
		{"integer", repo.IntID(math.MaxInt32)},
		{"text", repo.TextID("")},
		{"text", repo.TextID("épsilon/10")},
	} {
		c := repo.EncodeCursor(tc.kind, tc.id)
		if c == "" {
			t.Errorf("%s %v: empty cursor, which is the first page's", tc.kind, tc.id)
		}
		if got, err := repo.DecodeCursor(tc.kind, c); err != nil || got != tc.id {
			t.Errorf("%s cursor of %v: got %v (%v), want it back", tc.kind, tc.id, got, err)
		}
		for other := range repo.CursorKinds {
			ints := map[string]bool{"bigint": true, "integer": true}
			if other == tc.kind || ints[other] && ints[tc.kind] {
				continue // integer and bigint keys share their cursors
			}
			if _, err := repo.DecodeCursor(other, c); !errors.Is(err, repo.ErrInvalidCursor) {
				t.Errorf("%s cursor of %v on a %s key: got %v, want ErrInvalidCursor", tc.kind, tc.id, other, err)
			}
		}
	}
	if _, err := repo.DecodeCursor("integer", repo.EncodeCursor("bigint", repo.IntID(math.MaxInt32+1))); !errors.Is(err, repo.ErrInvalidCursor) {
		t.Errorf("a cursor out of an integer key's range: got %v, want ErrInvalidCursor", err)
	}
}

// A cursor decodes to a key or to ErrInvalidCursor, never anything else, and the key's own cursor
// decodes to it again.
func FuzzDecodeCursor(f *testing.F) {
	for _, c := range []string{"", "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAE", "dGFscGhh", "dP8", "dA", "not a cursor!"} {
		f.Add("text", c)
		f.Add("bigint", c)
		f.Add("uuid", c)
		f.Add("integer", c)
	}
	f.Fuzz(func(t *testing.T, kind, c string) {
		if _, ok := repo.CursorKinds[kind]; !ok {
			return
		}
		id, err := repo.DecodeCursor(kind, c)
		if err != nil {
			if !errors.Is(err, repo.ErrInvalidCursor) {
				t.Fatalf("got %v, want ErrInvalidCursor", err)
			}
			return
		}
		if back, err := repo.DecodeCursor(kind, repo.EncodeCursor(kind, id)); err != nil || back != id {
			t.Fatalf("%s %q names %v, whose cursor names %v (%v)", kind, c, id, back, err)
		}
	})
}
