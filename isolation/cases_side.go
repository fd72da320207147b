package isolation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
)

func timeNowPlusMinute() time.Time { return time.Now().Add(time.Minute) }

const probeTag = "/* tenantseal-isolation-probe */"

// casePgStatActivity: while a victim's transaction is open, the attacker (the same database role, so
// allowed to see its query text) reads pg_stat_activity. The victim runs through db.Pool, as an
// application would: neither its token nor the values it sent may show.
func casePgStatActivity(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("pg_stat_activity")
	v := s.victims(atk)[0]
	t := s.cat.tables[0]
	var textCol string
	for _, c := range t.cols {
		if c.category == "S" && c.name != t.tenantCol {
			textCol = c.name
			break
		}
	}
	mark := s.markers[v][len(s.markers[v])-1]
	sql := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s::text = $1 %s", t.qname(), ident(t.tenantCol), probeTag)
	args := []any{s.tenants[v].String()}
	if textCol != "" {
		sql = fmt.Sprintf("SELECT count(*) FROM %s WHERE %s::text = $1 AND %s::text <> $2 %s", t.qname(), ident(t.tenantCol), ident(textCol), probeTag)
		args = append(args, mark)
	}
	kid := s.tokenParts(atk)[1]
	look := func() {
		_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
			got, err := strs(ctx, tx, "SELECT coalesce(query, '') FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()")
			if err != nil {
				r.errorf("read pg_stat_activity: %v", err)
				return nil
			}
			all := strings.Join(got, "\n")
			r.control(strings.Contains(all, probeTag), "the victim's statement is visible in pg_stat_activity (else nothing was tested)")
			f := s.foreignIn(all, atk)
			r.expect(len(f) == 0 && !strings.Contains(all, "v1."+kid+"."), "pg_stat_activity shows another session's token or values: %v", f)
			return nil
		})
	}
	if s.cfg.Sign != nil {
		// No key for a db.Pool: the victim sets the context as db.Pool does, as a bind parameter.
		r.notef("Config.Sign is set: the victim session binds the token as db.Pool does, without a db.Pool")
		err := s.as(ctx, s.token(v), false, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, sql, args...); err != nil {
				return err
			}
			look()
			return nil
		})
		if err != nil {
			r.errorf("victim session: %v", err)
		}
		return
	}
	cfg, err := db.ParseConfig(s.cfg.AppDSN)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	cfg.SigningKey = s.cfg.ContextKey
	cfg.PoolConfig.MaxConns = 1
	pool, err := db.Open(ctx, cfg)
	if err != nil {
		r.errorf("open a db.Pool as the victim: %v", err)
		return
	}
	defer pool.Close()
	err = pool.Tx(tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: s.tenants[v], Subject: subject}), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return err
		}
		look()
		return nil
	})
	if err != nil {
		r.errorf("victim session: %v", err)
	}
}

// caseListenNotify: the attacker listens on every channel that function bodies notify on, the tables'
// names and tenantseal, while a victim writes each table; no notification may carry the victim's data.
func caseListenNotify(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("LISTEN/NOTIFY")
	v := s.victims(atk)[0]
	conn, err := pgx.Connect(ctx, s.cfg.AppDSN)
	if err != nil {
		r.errorf("connect: %v", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	channels := append([]string{"tenantseal"}, s.cat.notifies...)
	for _, t := range s.cat.all() {
		channels = append(channels, t.name)
	}
	for _, ch := range dedupe(channels) {
		if _, err := conn.Exec(ctx, "LISTEN "+ident(ch)); err != nil {
			r.errorf("LISTEN %s: %v", ch, err)
			return
		}
	}
	tok := s.token(v)
	for _, t := range s.cat.tables {
		where, args := whereRow(t, s.leaf(t, v), 1)
		if _, err := s.exec(ctx, tok, fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.qname(), change(t), where), args...); err != nil {
			r.errorf("victim update of %s: %v", t, err)
		}
		sql, args := clone(t, s.leaf(t, v), s.tenants[v].String(), nil, nil)
		if _, err := s.exec(ctx, tok, sql, args...); err != nil {
			r.errorf("victim insert into %s: %v", t, err)
		}
	}
	control := "tenantseal-isolation-control-" + randomHex(4)
	if _, err := s.exec(ctx, tok, "SELECT pg_notify('tenantseal', $1)", control); err != nil {
		r.errorf("notify: %v", err)
		return
	}
	// Notifications arrive in commit order: once the control one is here, every earlier one is too.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n := 0
	for {
		note, err := conn.WaitForNotification(wctx)
		if err != nil {
			r.control(false, "the control notification did not arrive within 10s: %v", err)
			break
		}
		if note.Payload == control {
			r.control(true, "")
			break
		}
		n++
		f := s.foreignIn(note.Channel+" "+note.Payload, atk)
		r.expect(len(f) == 0, "a notification on %q carries data of %v", note.Channel, f)
	}
	r.checks++
	r.notef("listened on %d channels; %d notifications besides the control one", len(dedupe(channels)), n)
	// The victim's own writes are undone without counting them as a leak.
	s.verify(ctx, r, v)
}

// casePgStats: the planner's statistics hold real values (most common values, histograms); pg_stats
// must hide them for tables under row-level security, and pg_statistic must stay closed.
func casePgStats(ctx context.Context, s *suite, t *table, atk int, r *rec) {
	var truth int
	if err := s.super.QueryRow(ctx, "SELECT count(*) FROM pg_stats WHERE schemaname = $1 AND tablename = $2", t.schema, t.name).Scan(&truth); err != nil {
		r.errorf("%v", err)
		return
	}
	r.control(truth > 0, "the table has statistics after ANALYZE (else nothing was tested)")
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		var n int
		var vals string
		err := tx.QueryRow(ctx, `SELECT count(*), coalesce(string_agg(coalesce(most_common_vals::text, '') || ' ' || coalesce(histogram_bounds::text, ''), ' '), '')
			FROM pg_stats WHERE schemaname = $1 AND tablename = $2`, t.schema, t.name).Scan(&n, &vals)
		if err != nil {
			r.errorf("read pg_stats: %v", err)
			return nil
		}
		f := s.foreignIn(vals, atk)
		r.expect(n == 0 && len(f) == 0, "pg_stats shows %d column statistics (values of %v)", n, f)
		return nil
	})
	_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		var n int
		err := tx.QueryRow(ctx, "SELECT count(*) FROM pg_statistic WHERE starelid = $1::regclass", t.qname()).Scan(&n)
		r.expect(refused(err) || errors.Is(err, pgx.ErrNoRows), "pg_statistic is readable: %d rows (%v)", n, err)
		return nil
	})
}
