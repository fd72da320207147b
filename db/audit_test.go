package db_test

import (
	"testing"

	"github.com/tenantseal/tenantseal/db"
)

func TestOperationNamesTheCommand(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		{"SELECT 1", "select"},
		{"select\nid FROM t", "select"},
		{"  -- a comment\n/* another */ UPDATE t SET x = 1", "update"},
		{"WITH u AS (DELETE FROM t RETURNING 1) SELECT 1", "with"},
		{"INSERT(", "insert"},
		{"tx", "tx"},
		{"", ""},
		{"averyveryverylongkeyword", "averyveryverylon"},
	} {
		if got := db.Operation(tc.sql); got != tc.want {
			t.Errorf("operation(%q) = %q, want %q", tc.sql, got, tc.want)
		}
	}
}
