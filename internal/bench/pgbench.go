package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tenantseal/tenantseal/internal/dsn"
	"github.com/tenantseal/tenantseal/internal/token"
)

// The server-only variants: the statements of the Go variants, sent by pgbench (-M prepared; the
// context and the statement queued in one pipeline, as db.Pool sends them: one round trip, one implicit
// transaction), so that no Go client is measured. Each transaction picks one of pgbenchScripts scripts,
// one per tenant, at random.

// pgbenchScripts is how many (tenant, customer) pairs a run draws from: pgbench takes at most 128.
const pgbenchScripts = 128

// pair is one tenant's customer and the tenant's signed token.
type pair struct{ tenant, customer, token string }

// script is a pgbench variant's transaction for one pair.
type script func(p pair) string

const pointPlainLit = "SELECT " + pointCols + " FROM customers_plain WHERE tenant_id = '%s' AND id = '%s';\n"
const pointRLSLit = "SELECT " + pointCols + " FROM customers WHERE tenant_id = '%s' AND id = '%s';\n"

func pipeline(stmts ...string) string {
	return `\startpipeline` + "\n" + strings.Join(stmts, "") + `\endpipeline` + "\n"
}

func setContextLit(tok string) string {
	return fmt.Sprintf("SELECT set_config('tenantseal.context', '%s', true);\n", tok)
}

var (
	scriptRaw   script = func(p pair) string { return fmt.Sprintf(pointPlainLit, p.tenant, p.customer) }
	scriptBatch script = func(p pair) string {
		return pipeline(setContextLit(p.token), fmt.Sprintf(pointPlainLit, p.tenant, p.customer))
	}
	scriptSigned script = func(p pair) string {
		return pipeline(setContextLit(p.token), fmt.Sprintf(pointRLSLit, p.tenant, p.customer))
	}
	scriptUnsigned script = func(p pair) string {
		return pipeline(setContextLit("u1."+p.tenant), fmt.Sprintf(pointRLSLit, p.tenant, p.customer))
	}
	// scriptLibrary is what db.Pool sends for a point read where the database has no
	// tenantseal.c_enter (the plpgsql verifier, or an extension older than 1.2): the context, the
	// statement, RESET ALL.
	scriptLibrary script = func(p pair) string {
		return pipeline(setContextLit(p.token), fmt.Sprintf(pointRLSLit, p.tenant, p.customer), "RESET ALL;\n")
	}
	// scriptEnter is what db.Pool sends for a point read with the C verifier: tenantseal.c_enter (the
	// context, and the session's settings reset at commit) and the statement.
	scriptEnter script = func(p pair) string {
		return pipeline(fmt.Sprintf("SELECT tenantseal.c_enter('%s');\n", p.token), fmt.Sprintf(pointRLSLit, p.tenant, p.customer))
	}
)

// pgbenchVariant is one server-only variant.
type pgbenchVariant struct {
	ID       int
	Name     string
	verifier string // "", verifierC or verifierPLpgSQL: what the database must run
	cacheOff bool   // with tenantseal_verify.token_cache_size = 0: every token verified anew
	script   script
}

func (ds *dataset) pgbenchVariants() []pgbenchVariant {
	return []pgbenchVariant{
		{ID: 101, Name: "raw point read, no RLS", script: scriptRaw},
		{ID: 102, Name: "set_config + read, no RLS (the batch alone)", script: scriptBatch},
		{ID: 104, Name: "unsigned context, C verifier", verifier: verifierC, script: scriptUnsigned},
		{ID: 105, Name: "signed context, C verifier", verifier: verifierC, script: scriptSigned},
		{ID: 106, Name: "signed context, C verifier, + RESET ALL (db.Pool's batch without c_enter)", verifier: verifierC, script: scriptLibrary},
		{ID: 107, Name: "signed context, C verifier, c_enter instead of set_config and RESET ALL (db.Pool's batch)", verifier: verifierC, script: scriptEnter},
		{ID: 115, Name: "signed context, plpgsql verifier", verifier: verifierPLpgSQL, script: scriptSigned},
	}
}

// pairs draws n tenants (all when there are fewer) and one customer of each, with tokens valid for
// two hours.
func (ds *dataset) pairs(n int) ([]pair, error) {
	idx := rand.Perm(len(ds.tenants))
	if len(idx) > n {
		idx = idx[:n]
	}
	var out []pair
	for _, i := range idx {
		t := ds.tenants[i]
		tok, err := token.Sign(ds.res.ContextKey.ID, ds.res.ContextKey.Secret,
			token.Claims{Tenant: t.Handle(), Subject: "bench", Expires: time.Now().Add(2 * time.Hour)})
		if err != nil {
			return nil, err
		}
		ids := ds.ids[i]
		out = append(out, pair{tenant: t.String(), customer: ids[rand.IntN(len(ids))].String(), token: tok})
	}
	return out, nil
}

// pgbench runs scripts of one variant against a database.
type pgbench struct {
	exe      string
	connInfo string // without the password
	password string
	dir      string
}

// newPgbench writes v's scripts for ps to a new directory under dir.
func newPgbench(exe, appDSN, dir string, v pgbenchVariant, ps []pair) (*pgbench, error) {
	set, err := dsn.Parse(appDSN)
	if err != nil {
		return nil, err
	}
	pw := set.Get(dsn.Password)
	set.Delete(dsn.Password)
	d, err := os.MkdirTemp(dir, fmt.Sprintf("v%d-", v.ID))
	if err != nil {
		return nil, err
	}
	for i, p := range ps {
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("%03d.sql", i)), []byte(v.script(p)), 0o600); err != nil {
			return nil, err
		}
	}
	return &pgbench{exe: exe, connInfo: set.ConnString(), password: pw, dir: d}, nil
}

var (
	tpsLine     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	latencyLine = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

// run runs pgbench with clients for d, or for transactions per client when transactions > 0.
func (b *pgbench) run(ctx context.Context, clients int, d time.Duration, transactions int) (Measurement, error) {
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2))}
	if transactions > 0 {
		args = append(args, "-t", strconv.Itoa(transactions))
	} else {
		args = append(args, "-T", strconv.Itoa(max(1, int(d.Round(time.Second).Seconds()))))
	}
	files, err := filepath.Glob(filepath.Join(b.dir, "*.sql"))
	if err != nil {
		return Measurement{}, err
	}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	args = append(args, b.connInfo)
	cmd := exec.CommandContext(ctx, b.exe, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+b.password)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	text := out.String()
	if runErr != nil || strings.Contains(text, "aborted") {
		return Measurement{}, fmt.Errorf("pgbench: %v: %s", runErr, lastLines(text, 3))
	}
	m := tpsLine.FindStringSubmatch(text)
	if m == nil {
		return Measurement{}, fmt.Errorf("pgbench: no tps in its output: %s", lastLines(text, 3))
	}
	tps, _ := strconv.ParseFloat(m[1], 64)
	res := Measurement{Throughput: tps}
	if l := latencyLine.FindStringSubmatch(text); l != nil {
		ms, _ := strconv.ParseFloat(l[1], 64)
		res.P50 = time.Duration(ms * float64(time.Millisecond))
	}
	return res, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// findPgbench returns the pgbench to use: exe when given, else the one on PATH, else PostgreSQL 15's.
func findPgbench(exe string) (string, error) {
	if exe != "" {
		return exe, nil
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/pgbench"); err == nil {
		return "/usr/lib/postgresql/15/bin/pgbench", nil
	}
	return "", fmt.Errorf("pgbench not found (Debian: apt-get install postgresql-client-15)")
}
