package isolation

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// What the app role reaches beside the tenant tables it is meant to use: partitions named directly,
// tables without a tenant column, and settings that any session may set.

// casePartition attacks every partition of a partitioned tenant table by its own name: a statement
// that names a partition applies the partition's policies, not the parent's, and needs privileges on
// the partition, not the parent.
func casePartition(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	if len(s.cat.partitions) == 0 {
		emit("(partitions)").na = "no partitioned tenant table"
		return
	}
	tok := s.token(atk)
	for _, p := range s.cat.partitions {
		r := emit("partition " + p.String())
		if !p.readable && !p.writable {
			r.checks++
			r.notef("the app role holds no privilege on it: reachable through %s only", p.parent)
			continue
		}
		r.expect(p.rls && p.force, "the app role may use it by name (SELECT %v, writes %v) and its row-level security is %s: a statement that names it skips the policies of %s",
			p.readable, p.writable, rlsState(p), p.parent)
		own := map[int]int{}
		counts, err := strs(ctx, s.super, fmt.Sprintf("SELECT %s::text FROM %s WHERE %[1]s::text = ANY($1)", ident(p.tenantCol), p.qname()), s.tenantStrings())
		if err != nil {
			r.errorf("count the partition's rows: %v", err)
			continue
		}
		for _, k := range counts {
			own[s.tenantIndex(k)]++
		}
		if p.readable {
			_ = s.as(ctx, tok, false, func(tx pgx.Tx) error {
				got, err := strs(ctx, tx, rowText(p))
				switch {
				case refused(err):
					r.checks++
				case err != nil:
					r.errorf("read it: %v", err)
				default:
					f := s.foreignIn(strings.Join(got, "\n"), atk)
					r.expect(len(f) == 0, "read by name, it shows rows of %v", f)
					r.control(len(f) > 0 || len(got) == own[atk], "read by name, it shows %d rows, want the own %d", len(got), own[atk])
				}
				return nil
			})
		}
		if p.writable {
			for _, stmt := range []string{
				fmt.Sprintf("UPDATE %s SET %s = %[2]s", p.qname(), ident(p.tenantCol)),
				"DELETE FROM " + p.qname(),
			} {
				_ = s.as(ctx, tok, false, func(tx pgx.Tx) error {
					tag, err := tx.Exec(ctx, stmt)
					switch {
					case refused(err):
						r.checks++
					case r.notRunOnStandby(err, "%s", stmt):
					case err != nil:
						r.checks++
						r.notef("%s: failed with SQLSTATE %s", stmt, sqlState(err))
					default:
						r.expect(tag.RowsAffected() <= int64(own[atk]), "%s, rolled back, reached %d rows: the own tenant has %d there", stmt, tag.RowsAffected(), own[atk])
					}
					return nil
				})
			}
		}
	}
}

func rlsState(t *table) string {
	switch {
	case t.rls && t.force:
		return "enabled and forced"
	case t.rls:
		return "enabled, not forced"
	}
	return "off"
}

// caseGlobal reads, as a tenant, every table of the schemas that has no tenant column and that the app
// role may read: all of it is every tenant's. Rows that came from another tenant's (a trigger's copy)
// or that reference tenant rows are a leak unless the table is accepted as shared
// (Config.AcceptGlobal); other readable data is noted.
func caseGlobal(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	if len(s.cat.globals) == 0 {
		r := emit("(global tables)")
		r.checks++
		r.notef("the app role reads no table without a tenant column in %v", s.cat.tenantCols)
		return
	}
	for _, g := range s.cat.globals {
		r := emit("global " + g.String())
		accepted := s.cfg.acceptedGlobal(g)
		var refs []string
		for _, fk := range g.fks {
			if fk.refTable != nil {
				refs = append(refs, fk.refTable.String())
			}
		}
		_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
			got, err := strs(ctx, tx, fmt.Sprintf("SELECT %s FROM %s x LIMIT 100000", g.readableRow(), g.qname()))
			switch {
			case refused(err):
				r.checks++
				r.notef("reading it is refused (%s)", sqlState(err))
				return nil
			case err != nil:
				r.errorf("read it: %v", err)
				return nil
			}
			f := s.foreignIn(strings.Join(got, "\n"), atk)
			var why []string
			if len(f) > 0 {
				why = append(why, fmt.Sprintf("it holds data of %v, copied from their rows", f))
			}
			if len(refs) > 0 {
				why = append(why, fmt.Sprintf("its rows reference the tenant tables %v", refs))
			}
			switch {
			case len(why) > 0 && !accepted:
				r.leakf("every tenant reads it (no tenant column, %d rows) and %s", len(got), strings.Join(why, "; "))
			case len(why) > 0:
				r.checks++
				r.notef("accepted as shared (Config.AcceptGlobal), though %s", strings.Join(why, "; "))
			case accepted:
				r.checks++
				r.notef("accepted as shared (Config.AcceptGlobal): %d rows readable by every tenant", len(got))
			default:
				r.checks++
				r.notef("%d rows readable by every tenant and none of them a tenant's: reference data? (accept it in Config.AcceptGlobal to say so)", len(got))
			}
			return nil
		})
	}
}

// caseClientSetting sets, as the attacker, every custom setting that a policy or function reads (and
// the usual ones: app.tenant, request.jwt.claims, ...) to the victim's key, with and without the own
// tenant context: what a session may set, no policy may trust.
func caseClientSetting(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	v := s.victims(atk)[0]
	key := s.tenants[v].String()
	claims, _ := json.Marshal(map[string]string{"tenant_id": key, "tenant": key, "company_id": key, "org_id": key, "account_id": key})
	for _, name := range s.cat.settings {
		val := key
		if strings.HasSuffix(name, ".claims") {
			val = string(claims)
		}
		for _, tok := range []string{s.token(atk), ""} {
			what := "with the own context"
			if tok == "" {
				what = "without a context"
			}
			_ = s.as(ctx, tok, false, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SELECT set_config($1, $2, true)", name, val); err != nil {
					r.checks++
					r.notef("set %s: refused (%s)", name, sqlState(err))
					return nil
				}
				got, err := strs(ctx, tx, rowText(t))
				if err != nil {
					// Failing closed (a cast of the setting that fails, a refusal) shows nothing.
					r.checks++
					if !refused(err) {
						r.notef("%s set %s: reading failed with SQLSTATE %s", name, what, sqlState(err))
					}
					return nil
				}
				f := s.foreignIn(strings.Join(got, "\n"), atk)
				r.expect(len(f) == 0, "%s set to T%d's key by the client, %s, it shows rows of %v: a policy trusts a setting any session may set", name, v, what, f)
				return nil
			})
		}
	}
}
