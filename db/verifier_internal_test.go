package db

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// The errors that end the pool's use of c_enter, as PostgreSQL words them, and others that must not:
// only the context statement's own failure tells that c_enter is gone.
func TestEnterGoneRecognisesOnlyItsOwnFailures(t *testing.T) {
	for _, tc := range []struct {
		err  error
		gone bool
	}{
		{&pgconn.PgError{Code: "42883", Message: "function tenantseal.c_enter(text) does not exist"}, true},
		{fmt.Errorf("db: %w", &pgconn.PgError{Code: "42883", Message: "function tenantseal.c_enter(text) does not exist"}), true},
		{&pgconn.PgError{Code: "42883", Message: "function tenantseal.c_enter(unknown) does not exist"}, true},
		{&pgconn.PgError{Code: "42501", Message: "permission denied for function c_enter"}, true},
		{&pgconn.PgError{Code: "42883", Message: `could not find function "ts_enter" in file "/usr/lib/postgresql/15/lib/tenantseal_verify.so"`}, true},
		{&pgconn.PgError{Code: "42883", Message: "function public.c_enter_x() does not exist"}, false},
		// A statement of the application's calling it wrongly, while the pool's own calls work.
		{&pgconn.PgError{Code: "42883", Message: "function tenantseal.c_enter(integer) does not exist"}, false},
		{&pgconn.PgError{Code: "42501", Message: "permission denied for function c_enter_x"}, false},
		{&pgconn.PgError{Code: "42501", Message: "permission denied for table customers"}, false},
		{&pgconn.PgError{Code: "TS401", Message: "tenant context signature does not verify"}, false},
		{errors.New("function tenantseal.c_enter(text) does not exist"), false},
	} {
		p := &Pool{}
		p.enter.Store(true)
		p.enterGone(tc.err)
		if got := !p.enter.Load(); got != tc.gone {
			t.Errorf("%v: c_enter given up %v, want %v", tc.err, got, tc.gone)
		}
	}
}
