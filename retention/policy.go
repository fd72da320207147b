package retention

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/tenants"
)

// Sentinel errors; use errors.Is.
var (
	// ErrInvalidPolicy means a policy [SetPolicy] refuses: a bad name, rule, age or grace period. The
	// message says which.
	ErrInvalidPolicy = errors.New("retention: invalid policy")
	// ErrNoPolicy means no retention policy has the name.
	ErrNoPolicy = errors.New("retention: no such policy")
	// ErrPolicyInUse means a policy that tenants have cannot be deleted.
	ErrPolicyInUse = errors.New("retention: the policy is in use")
)

// DB is a connection as the owner role: *pgx.Conn, *pgxpool.Pool and pgx.Tx satisfy it. It is the
// tenants package's, whose functions the run calls with it.
type DB = tenants.DB

// Policy is a named retention policy (tenantseal.retention_policies with its rules).
type Policy struct {
	// Name is 1 to 63 bytes: a lower-case letter, then lower-case letters, digits, '-' or '_'.
	Name string
	// Version is raised by every change; the deletion certificates name it. Set by [SetPolicy].
	Version int
	// Rules say which rows of which tables are deleted: at most one rule per table.
	Rules []Rule
	// ShredAfter is the grace period after which the keysets of a tenant deleted under this policy are
	// crypto-shredded; nil: never by the retention job.
	ShredAfter *time.Duration
	// UpdatedAt is when it last changed. Set by [SetPolicy].
	UpdatedAt time.Time
}

// Rule deletes the rows of Table whose Column is older than MaxAge.
type Rule struct {
	// Table is a table that tenantseal.protect_table protected, as PostgreSQL names it (schema-qualified
	// unless on the search path).
	Table string
	// Column is a timestamptz, timestamp or date column of it.
	Column string
	// MaxAge is how long a row is kept, counted from Column: positive.
	MaxAge time.Duration
}

func (r Rule) String() string {
	return fmt.Sprintf("%s.%s older than %s", r.Table, r.Column, FormatAge(r.MaxAge))
}

// String summarises p for a listing and the audit log.
func (p Policy) String() string {
	var rules []string
	for _, r := range p.Rules {
		rules = append(rules, r.String())
	}
	what := "deletes nothing"
	if len(rules) > 0 {
		what = "deletes rows of " + strings.Join(rules, ", ")
	}
	shred := "never shreds deleted tenants"
	if p.ShredAfter != nil {
		shred = "shreds deleted tenants' keysets " + FormatAge(*p.ShredAfter) + " after their deletion"
	}
	return fmt.Sprintf("%s version %d %s; %s", p.Name, p.Version, what, shred)
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ValidateName fails with [ErrInvalidPolicy] unless name is a policy name: 1 to 63 bytes, a lower-case
// letter, then lower-case letters, digits, '-' or '_'.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%w: a policy name is 1 to 63 bytes: a lower-case letter, then lower-case letters, digits, '-' or '_'", ErrInvalidPolicy)
	}
	return nil
}

func (p Policy) validate() error {
	if err := ValidateName(p.Name); err != nil {
		return err
	}
	if p.ShredAfter != nil && *p.ShredAfter < 0 {
		return fmt.Errorf("%w: the grace period before a shred must not be negative", ErrInvalidPolicy)
	}
	for _, r := range p.Rules {
		switch {
		case r.Table == "" || r.Column == "":
			return fmt.Errorf("%w: a rule names a table and a timestamp column", ErrInvalidPolicy)
		case r.MaxAge < time.Second:
			return fmt.Errorf("%w: the rule on %s keeps rows %s: a maximum age is at least a second", ErrInvalidPolicy, r.Table, r.MaxAge)
		}
	}
	return nil
}

// micros converts a duration to the microseconds PostgreSQL intervals hold.
func micros(d time.Duration) int64 { return d.Microseconds() }

// SetPolicy creates the policy p, or replaces the rules and grace period of the policy of that name,
// and raises its version; a policy set as it is changes nothing. Each rule's table must be a protected
// tenant table and its column a timestamp or date, or [ErrInvalidPolicy] says why. Every creation and
// change is recorded through rec (required) as a tenantseal.EventRetentionPolicy, with the operator in
// ctx. It returns the policy as stored and whether it changed.
func SetPolicy(ctx context.Context, db DB, rec tenantseal.Recorder, p Policy) (Policy, bool, error) {
	if rec == nil {
		return Policy{}, false, errors.New("retention: set policy: a Recorder is required")
	}
	if err := p.validate(); err != nil {
		return Policy{}, false, err
	}
	var stored Policy
	changed, created := false, false
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// The tables as PostgreSQL names them, so that "orders" and "public.orders" are one table.
		want := Policy{Name: p.Name, ShredAfter: p.ShredAfter}
		for _, r := range p.Rules {
			var name *string
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1)::text", r.Table).Scan(&name); err != nil {
				return fmt.Errorf("%w: table %q: %s", ErrInvalidPolicy, r.Table, pgMessage(err))
			}
			if name == nil {
				return fmt.Errorf("%w: no table %q", ErrInvalidPolicy, r.Table)
			}
			r.Table = *name
			if slices.ContainsFunc(want.Rules, func(o Rule) bool { return o.Table == r.Table }) {
				return fmt.Errorf("%w: two rules on %s: one rule per table", ErrInvalidPolicy, r.Table)
			}
			want.Rules = append(want.Rules, r)
		}
		sortRules(want.Rules)
		old, err := getPolicy(ctx, tx, p.Name, true)
		switch {
		case errors.Is(err, ErrNoPolicy):
			created = true
			if _, err := tx.Exec(ctx, "INSERT INTO tenantseal.retention_policies (name, shred_after) VALUES ($1, $2 * interval '1 microsecond')",
				p.Name, shredMicros(p.ShredAfter)); err != nil {
				return err
			}
		case err != nil:
			return err
		case sameRules(old, want):
			stored = old
			return nil
		default:
			if _, err := tx.Exec(ctx, `UPDATE tenantseal.retention_policies SET version = version + 1, shred_after = $2 * interval '1 microsecond',
				updated_at = now() WHERE name = $1`, p.Name, shredMicros(p.ShredAfter)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DELETE FROM tenantseal.retention_rules WHERE policy = $1", p.Name); err != nil {
				return err
			}
		}
		for _, r := range want.Rules {
			if _, err := tx.Exec(ctx, "INSERT INTO tenantseal.retention_rules (policy, relid, time_column, max_age) VALUES ($1, $2::regclass, $3, $4 * interval '1 microsecond')",
				p.Name, r.Table, r.Column, micros(r.MaxAge)); err != nil {
				return ruleError(r, err)
			}
		}
		changed = true
		stored, err = getPolicy(ctx, tx, p.Name, false)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrInvalidPolicy) {
			return Policy{}, false, err
		}
		return Policy{}, false, fmt.Errorf("retention: set policy %s: %w", p.Name, err)
	}
	if changed {
		op := "change"
		if created {
			op = "create"
		}
		rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventRetentionPolicy, Table: "tenantseal.retention_policies", Operation: op,
			RowKey: stored.Name, Detail: stored.String()})
	}
	return stored, changed, nil
}

// ruleError explains why the database refused rule r.
func ruleError(r Rule, err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && (pg.Code == "22023" || pg.Code == "42703" || pg.Code == "42804") {
		return fmt.Errorf("%w: %s", ErrInvalidPolicy, strings.TrimPrefix(pg.Message, "tenantseal: "))
	}
	return err
}

// pgMessage is the message of a PostgreSQL error in err, or err's text.
func pgMessage(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Message
	}
	return err.Error()
}

func shredMicros(d *time.Duration) *int64 {
	if d == nil {
		return nil
	}
	m := micros(*d)
	return &m
}

func sortRules(rs []Rule) {
	slices.SortFunc(rs, func(a, b Rule) int { return strings.Compare(a.Table, b.Table) })
}

func sameRules(a, b Policy) bool {
	if (a.ShredAfter == nil) != (b.ShredAfter == nil) || (a.ShredAfter != nil && *a.ShredAfter != *b.ShredAfter) {
		return false
	}
	return slices.Equal(a.Rules, b.Rules)
}

// policyColumns read a policy's row; its rules come from rulesOf.
const policyColumns = "name, version, (extract(epoch FROM shred_after) * 1000000)::bigint, updated_at"

const rulesOf = `SELECT relid::text, time_column, (extract(epoch FROM max_age) * 1000000)::bigint
	FROM tenantseal.retention_rules WHERE policy = $1 ORDER BY relid::text`

// getPolicy reads the policy name with its rules (its row locked with lock), or ErrNoPolicy.
func getPolicy(ctx context.Context, q DB, name string, lock bool) (Policy, error) {
	sql := "SELECT " + policyColumns + " FROM tenantseal.retention_policies WHERE name = $1"
	if lock {
		sql += " FOR UPDATE"
	}
	rows, err := q.Query(ctx, sql, name)
	if err != nil {
		return Policy{}, err
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPolicy)
	if errors.Is(err, pgx.ErrNoRows) {
		return Policy{}, fmt.Errorf("%w: %q", ErrNoPolicy, name)
	}
	if err != nil {
		return Policy{}, err
	}
	if p.Rules, err = readRules(ctx, q, name); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func scanPolicy(r pgx.CollectableRow) (Policy, error) {
	var p Policy
	var shred *int64
	err := r.Scan(&p.Name, &p.Version, &shred, &p.UpdatedAt)
	if shred != nil {
		d := time.Duration(*shred) * time.Microsecond
		p.ShredAfter = &d
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	return p, err
}

func readRules(ctx context.Context, q DB, policy string) ([]Rule, error) {
	rows, err := q.Query(ctx, rulesOf, policy)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rule, error) {
		var rule Rule
		var age int64
		err := r.Scan(&rule.Table, &rule.Column, &age)
		rule.MaxAge = time.Duration(age) * time.Microsecond
		return rule, err
	})
}

// GetPolicy returns the policy name with its rules, or [ErrNoPolicy].
func GetPolicy(ctx context.Context, db DB, name string) (Policy, error) {
	p, err := getPolicy(ctx, db, name, false)
	if err != nil && !errors.Is(err, ErrNoPolicy) {
		return Policy{}, fmt.Errorf("retention: get policy %s: %w", name, err)
	}
	return p, err
}

// Policies returns every policy with its rules, by name.
func Policies(ctx context.Context, db DB) ([]Policy, error) {
	rows, err := db.Query(ctx, "SELECT "+policyColumns+" FROM tenantseal.retention_policies ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("retention: list policies: %w", err)
	}
	ps, err := pgx.CollectRows(rows, scanPolicy)
	if err != nil {
		return nil, fmt.Errorf("retention: list policies: %w", err)
	}
	for i := range ps {
		if ps[i].Rules, err = readRules(ctx, db, ps[i].Name); err != nil {
			return nil, fmt.Errorf("retention: list policies: %w", err)
		}
	}
	return ps, nil
}

// DeletePolicy deletes the policy name and its rules, recorded through rec (required). A policy that
// tenants have is refused with [ErrPolicyInUse], an unknown one with [ErrNoPolicy].
func DeletePolicy(ctx context.Context, db DB, rec tenantseal.Recorder, name string) error {
	if rec == nil {
		return errors.New("retention: delete policy: a Recorder is required")
	}
	var users int64
	var p Policy
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var err error
		if p, err = getPolicy(ctx, tx, name, true); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM tenantseal.tenant_governance WHERE retention_policy = $1", name).Scan(&users); err != nil || users > 0 {
			return err
		}
		_, err = tx.Exec(ctx, "DELETE FROM tenantseal.retention_policies WHERE name = $1", name)
		return err
	})
	switch {
	case errors.Is(err, ErrNoPolicy):
		return err
	case err != nil:
		return fmt.Errorf("retention: delete policy %s: %w", name, err)
	case users > 0:
		return fmt.Errorf("%w: %d tenants have policy %s: give them another first ('tenantseal tenants set-retention T POLICY')", ErrPolicyInUse, users, name)
	}
	rec.Record(ctx, tenantseal.Event{Kind: tenantseal.EventRetentionPolicy, Table: "tenantseal.retention_policies", Operation: "delete",
		RowKey: name, Detail: "deleted " + p.String()})
	return nil
}
