package isolation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/uuid"

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
	cfg.AllowPlaintextLoopback = s.cfg.AllowPlaintextLoopback
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
		sql, args := s.clone(t, s.leaf(t, v), s.tenants[v].String(), nil, nil)
		if _, err := s.exec(ctx, tok, sql, args...); err != nil && sqlState(err) != "23505" {
			// (A table keyed by the tenant or its foreign keys takes no second row: nothing to notify.)
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
	if truth == 0 {
		var hidden bool
		if err := s.super.QueryRow(ctx, `SELECT bool_and(attstattarget = 0) FROM pg_attribute
			WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`, t.oid).Scan(&hidden); err != nil {
			r.errorf("%v", err)
			return
		}
		r.control(hidden, "the table has statistics after ANALYZE (else nothing was tested)")
		r.notef("the table collects no column statistics (statistics target 0): pg_stats has nothing to show")
	}
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
		if err == nil || errors.Is(err, pgx.ErrNoRows) || refused(err) {
			r.expect(err != nil, "pg_statistic is readable: %d rows", n)
		} else {
			r.errorf("read pg_statistic: %v", err)
		}
		return nil
	})
}

// planShapes steer the planner: its own choice, then index scans, plain index scans, bitmap scans.
var planShapes = []string{
	"",
	"SET LOCAL enable_seqscan = off",
	"SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
	"SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off",
}

// casePlanner: the planner as a side channel. EXPLAIN (ANALYZE) tells, per plan node, how many rows it
// returned and removed ("Rows Removed by Filter" and friends), and EXPLAIN the planner's estimate: a
// condition on another tenant's values must give the same numbers as one on made-up values that no row
// holds, under every plan shape the attacker can force. Otherwise the plan visits other tenants' rows
// (the tenant comparison is a filter after the attacker's index condition, as when two permissive
// policies are ORed) or estimates from their values (column statistics), and bisecting recovers them.
func casePlanner(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	// The cases before wrote and restored rows: their dead index entries would count as visits
	// (heap fetches) of the attacker's own.
	for _, t := range s.cat.all() {
		if _, err := s.super.Exec(ctx, "VACUUM "+t.qname()); err != nil {
			emit(t.String()).errorf("VACUUM: %v", err)
			return
		}
	}
	for _, t := range s.cat.all() {
		s.plannerTable(ctx, t, atk, emit(t.String()))
	}
	// tenantseal's own tables the app role reads are not seeded: every index must lead with tenant_id,
	// or a condition on its columns is an index condition that reaches every tenant's rows.
	for _, t := range s.cat.internal {
		r := emit(t.String())
		for _, ix := range t.indexes {
			r.expect(len(ix.cols) > 0 && ix.cols[0] == t.tenantCol,
				"the app role reads it, and its index %s (%s) does not lead with %s: EXPLAIN ANALYZE counts the rows of every tenant that a condition on it reaches",
				ix.name, strings.Join(ix.cols, ", "), t.tenantCol)
		}
	}
}

func (s *suite) plannerTable(ctx context.Context, t *table, atk int, r *rec) {
	var stats int
	if err := s.super.QueryRow(ctx, "SELECT count(*) FROM pg_statistic WHERE starelid = $1", t.oid).Scan(&stats); err != nil {
		r.errorf("%v", err)
		return
	}
	r.expect(stats == 0, "pg_statistic holds %d column statistics of it: EXPLAIN shows estimates made from every tenant's values (most common values, histogram bounds)", stats)
	indexed := map[string]bool{}
	for _, ix := range t.indexes {
		for _, c := range ix.cols {
			indexed[c] = true
		}
	}
	victims := s.victims(atk)
	if s.cfg.Short {
		victims = victims[:1]
	}
	for _, v := range victims {
		vr := s.rows[t][v][0]
		for _, c := range t.cols {
			val := vr.vals[c.name]
			made := s.madeUp(t, c, atk, val)
			if val == nil || made == nil {
				continue
			}
			stmts := []string{"SELECT 1 FROM %s WHERE %s"}
			shapes := planShapes[:2]
			if indexed[c.name] {
				shapes = planShapes
				stmts = append(stmts, "UPDATE %s SET "+ident(t.tenantCol)+" = "+ident(t.tenantCol)+" WHERE %s", "DELETE FROM %s WHERE %s")
			}
			cond := fmt.Sprintf("%s = ($1::text)::%s", ident(c.name), c.typ)
			for i, stmt := range stmts {
				sql := fmt.Sprintf(stmt, t.qname(), cond)
				for _, shape := range shapes {
					if i > 0 && shape != planShapes[1] {
						continue // writes: one shape is enough
					}
					got, err1 := s.explain(ctx, atk, shape, sql, *val)
					base, err2 := s.explain(ctx, atk, shape, sql, *made)
					switch {
					case err1 != nil || err2 != nil:
						err := errors.Join(err1, err2)
						if refused(err) || sqlState(err) == "42883" {
							r.checks++ // not allowed, or no = operator for the type: nothing to compare
							continue
						}
						r.errorf("EXPLAIN %s: %v", sql, err)
					default:
						same := got.String() == base.String()
						if t.partitioned {
							// Partition pruning picks the partition from the value alone, and the plan of a
							// partition follows its size: which partition and which scan say nothing of the
							// rows; the rows returned, removed and fetched do.
							same = got.visits() == base.visits()
						}
						r.expect(same, "EXPLAIN ANALYZE %s (%s) with T%d's %s: %s: the plan visits or estimates other tenants' rows",
							sql, cmp.Or(shape, "the planner's choice"), v, c.name, got.diff(base))
					}
				}
			}
		}
	}
}

// madeUp returns a value of column c that no seeded row holds and that differs from val, or nil when
// val is one the attacker's own rows hold too (then own rows would tell the two apart).
func (s *suite) madeUp(t *table, c *column, atk int, val *string) *string {
	if val == nil {
		return nil
	}
	for _, own := range s.rows[t][atk] {
		if o := own.vals[c.name]; o != nil && *o == *val {
			return nil
		}
	}
	// Nor one the attacker's rows hold (an enum has few values): an own row would tell the two apart.
	for _, cand := range candidates(t, c, s.marker()) {
		if cand == nil || *cand == *val || slices.ContainsFunc(s.rows[t][atk], func(own *seedRow) bool {
			o := own.vals[c.name]
			return o != nil && *o == *cand
		}) {
			continue
		}
		return cand
	}
	return nil
}

// planNode is what one node of a plan says about rows.
type planNode struct {
	name   string // node type and index
	counts []string
}

func (n planNode) String() string { return n.name + " (" + strings.Join(n.counts, ", ") + ")" }

// plan is what a plan's nodes say about rows, in plan order.
type plan []planNode

func (p plan) String() string {
	var s []string
	for _, n := range p {
		s = append(s, n.String())
	}
	return strings.Join(s, "; ")
}

// visits sums, over the plan's nodes, the rows they returned, removed and fetched from the heap.
func (p plan) visits() string {
	sums := map[string]float64{}
	for _, n := range p {
		for _, c := range n.counts {
			i := strings.LastIndexByte(c, ' ')
			k, v := c[:i], c[i+1:]
			if k == "actual rows" || k == "heap fetches" || strings.HasPrefix(k, "removed by") {
				f, _ := strconv.ParseFloat(v, 64)
				sums[strings.Fields(k)[0]] += f
			}
		}
	}
	return fmt.Sprintf("returned %v, removed %v, fetched %v", sums["actual"], sums["removed"], sums["heap"])
}

// diff names the nodes whose numbers differ between p and base, shortly.
func (p plan) diff(base plan) string {
	if len(p) != len(base) {
		return fmt.Sprintf("the plan %s, and for a made-up value %s", p, base)
	}
	var out []string
	for i := range p {
		if p[i].String() != base[i].String() {
			out = append(out, fmt.Sprintf("%s where a made-up value gives (%s)", p[i], strings.Join(base[i].counts, ", ")))
		}
	}
	return strings.Join(out, "; ")
}

// explain runs EXPLAIN (ANALYZE) of sql with arg as tenant atk after shape, in a transaction that rolls
// back, and returns what the plan's nodes say about rows: estimated, returned and removed rows, loops,
// heap fetches.
func (s *suite) explain(ctx context.Context, atk int, shape, sql, arg string) (plan, error) {
	var pl plan
	err := s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
		if shape != "" {
			if _, err := tx.Exec(ctx, shape); err != nil {
				return err
			}
		}
		var out []map[string]any
		if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, COSTS, TIMING OFF, SUMMARY OFF, FORMAT JSON) "+sql, arg).Scan(&out); err != nil {
			return err
		}
		for _, o := range out {
			if p, ok := o["Plan"].(map[string]any); ok {
				pl = planRows(p, pl)
			}
		}
		return nil
	})
	return pl, err
}

// planRows appends what node p and its children say about rows.
func planRows(p map[string]any, pl plan) plan {
	n := planNode{name: fmt.Sprint(p["Node Type"])}
	if ix, ok := p["Index Name"]; ok {
		n.name += fmt.Sprintf(" on %v", ix)
	}
	for _, k := range []string{"Plan Rows", "Actual Rows", "Actual Loops", "Rows Removed by Filter", "Rows Removed by Index Recheck",
		"Rows Removed by Join Filter", "Heap Fetches"} {
		if v, ok := p[k]; ok {
			n.counts = append(n.counts, fmt.Sprintf("%s %v", strings.ToLower(strings.TrimPrefix(k, "Rows ")), v))
		}
	}
	pl = append(pl, n)
	if kids, ok := p["Plans"].([]any); ok {
		for _, k := range kids {
			if kp, ok := k.(map[string]any); ok {
				pl = planRows(kp, pl)
			}
		}
	}
	return pl
}

// execModes are pgx's ways to send a statement: all but the simple protocol bind parameters.
var execModes = []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
	pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}

// caseStatementText: in every exec mode db.Open accepts, a victim's statements through db.Pool must leave
// its token nowhere another session of the role reads statement text: pg_stat_activity (where the last
// statement of an idle connection stays), pg_stat_statements when it is installed, and
// pg_prepared_statements. A mode db.Open refuses passes. The server log at the current settings is
// judged from the settings: bind parameters are logged with log_statement = all or
// log_min_duration_statement >= 0 (and log_parameter_max_length <> 0).
func caseStatementText(ctx context.Context, s *suite, atk int, emit func(string) *rec) {
	r := emit("(session)")
	if s.cfg.Sign != nil {
		r.na = "Config.Sign is set: no db.Pool to test"
		return
	}
	v := s.victims(atk)[0]
	t := s.cat.tables[0]
	kid := s.tokenParts(atk)[1]
	var statements bool
	if err := s.super.QueryRow(ctx, "SELECT to_regclass('pg_stat_statements') IS NOT NULL").Scan(&statements); err != nil {
		r.errorf("%v", err)
		return
	}
	// The victim's sessions are told apart by their application_name; the token looked for is one that
	// names the victim's tenant, as db.Pool signs it.
	app := "tenantseal-isolation-victim-" + randomHex(4)
	views := []string{"SELECT coalesce(query, '') FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND application_name = '" + app + "'",
		"SELECT statement FROM pg_prepared_statements"}
	if statements {
		// Less the suite's own SET attacks (cases_context.go), which carry tokens in their text.
		views = append(views, "SELECT query FROM pg_stat_statements WHERE query NOT LIKE 'SET tenantseal.context%'")
	} else {
		r.notef("pg_stat_statements is not installed: not looked at")
	}
	for _, mode := range execModes {
		pool, err := s.victimPool(ctx, func(c *db.Config) {
			c.ExecMode = mode
			c.PoolConfig.ConnConfig.RuntimeParams["application_name"] = app
		})
		if errors.Is(err, db.ErrUnsafeExecMode) {
			r.checks++
			continue
		}
		if err != nil {
			r.errorf("%s: %v", mode, err)
			continue
		}
		victim := s.principal(ctx, v)
		// look reads, as the attacker, every view of statement text; seeing tells whether the victim's
		// statement must be among them.
		look := func(seeing bool) {
			_ = s.as(ctx, s.token(atk), false, func(tx pgx.Tx) error {
				var seen []string
				for _, q := range views {
					got, err := strs(ctx, tx, q)
					if err != nil {
						r.errorf("%s: %v", q, err)
						return nil
					}
					seen = append(seen, got...)
				}
				all := strings.Join(seen, "\n")
				if seeing {
					r.control(strings.Contains(all, probeTag), "%s: the victim's statement is visible in pg_stat_activity (else nothing was tested)", mode)
				}
				r.expect(!strings.Contains(all, "v1."+kid+"."+uuid.Format(s.tenants[v].Handle())+"."), "with exec mode %s, another session of the role reads the victim's tenant context token in its statement text", mode)
				return nil
			})
		}
		var n int
		err = pool.QueryRow(victim, fmt.Sprintf("SELECT count(*) %s FROM %s", probeTag, t.qname())).Scan(&n)
		if err == nil {
			look(false) // the victim's connection idles, its last statement on show
			err = pool.Tx(victim, func(tx pgx.Tx) error {
				if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) %s FROM %s", probeTag, t.qname())).Scan(&n); err != nil {
					return err
				}
				look(true)
				return nil
			})
		}
		if err != nil {
			r.errorf("%s: the victim's statements: %v", mode, err)
		}
		pool.Close()
	}
	var logStatement, minDuration, paramLen, canRead string
	if err := s.super.QueryRow(ctx, `SELECT current_setting('log_statement'), current_setting('log_min_duration_statement'),
		current_setting('log_parameter_max_length'),
		(pg_has_role($1, 'pg_read_server_files', 'USAGE') OR pg_has_role($1, 'pg_monitor', 'USAGE'))::text`, s.appRole).
		Scan(&logStatement, &minDuration, &paramLen, &canRead); err != nil {
		r.errorf("%v", err)
		return
	}
	logged := (logStatement == "all" || minDuration != "-1") && paramLen != "0"
	switch {
	case logged && canRead == "true":
		r.leakf("the server logs bind parameters (log_statement = %s, log_min_duration_statement = %s), tokens among them, and the app role may read server files", logStatement, minDuration)
	case logged:
		r.checks++
		r.notef("the server logs bind parameters (log_statement = %s, log_min_duration_statement = %s): whoever reads the server log can replay a token for its lifetime", logStatement, minDuration)
	default:
		r.checks++
	}
}
