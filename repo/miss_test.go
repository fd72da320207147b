package repo_test

import (
	"errors"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/repo"
)

// A miss by id costs the caller the same whether the id is another tenant's or nobody's: one statement,
// the lookup itself, and the same report to the recorder. Telling the two apart is the audit writer's,
// on its own role (see audit's tests); the app role may not even ask.
func TestAMissCostsTheSameForAForeignAndAMissingID(t *testing.T) {
	t.Parallel()
	rec := &events{}
	sent := &pgtest.Statements{}
	e := newEnv(t, func(c *db.Config) {
		c.Recorder = rec
		c.PoolConfig.ConnConfig.Tracer = sent
	})
	_, ctxA := e.tenant(t, "a")
	_, ctxB := e.tenant(t, "b")
	foreign := mustCustomer(t, e, ctxB, "B", "b@x")
	rec.take()
	for _, tc := range []struct {
		name string
		id   repo.ID
	}{{"another tenant's id", foreign.ID}, {"nobody's id", repo.NewID()}} {
		before := sent.N()
		if _, err := e.customers.Get(ctxA, tc.id); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("%s: got %v, want ErrNotFound", tc.name, err)
		}
		if n := sent.N() - before; n != 1 {
			t.Errorf("%s: the caller's pool sent %d statements, want 1 (the lookup)", tc.name, n)
		}
		got := rec.take()
		if len(got) != 1 || got[0].Kind != tenantseal.EventLookupMiss || got[0].RowKey != tc.id.String() {
			t.Errorf("%s: recorded %+v, want one lookup_miss of the id", tc.name, got)
		}
	}
	var may bool
	if err := mustConn(t, e.d.SuperDSN).QueryRow(testContext(t), "SELECT has_function_privilege($1, 'tenantseal.exists_elsewhere(regclass, uuid, uuid)', 'EXECUTE')",
		e.d.Roles.App).Scan(&may); err != nil || may {
		t.Errorf("the app role may call the existence probe: %v (%v)", may, err)
	}
}
