package cli_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/cli"
	"github.com/tenantseal/tenantseal/internal/pgtest"
)

func TestDemo(t *testing.T) {
	t.Parallel()
	prefix, database := freshNames(t)
	r := run(t, "demo", "--dsn", superDSN(t), "--prefix", prefix, "--database", database)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("got %v, want exit 0 and no stderr", r)
	}
	wantContains(t, "stdout", r.stdout,
		"created database "+database,
		"- created a development KEK (kek-",
		"with pgstore.Admin.CreateTenant: created tenants acme (",
		"== Encrypted fields",
		`"Acme buyer" through reference.Customers.Insert, which encrypts email, phone and notes with acme's key`,
		`"Globex buyer" through reference.Customers.Insert, which encrypts email, phone and notes with globex's key`,
		"PASS  acme's customer as stored, read as the superuser (no row-level security): email, phone and notes are ciphertext\n",
		"PASS  acme reads its customer back (reference.Customers.Get): email, phone and notes decrypt to what was inserted",
		`PASS  acme finds it with reference.Customers.FindByEmail(" Buyer@ACME.Example")`,
		"PASS  acme creates invoice ", "PASS  globex creates invoice ",
		"PASS  acme reads its invoice with its customer in one statement (reference.Invoices.GetWithCustomer)",
		"PASS  acme reads globex's invoice by its id (reference.Invoices.Get): repo.ErrNotFound",
		"PASS  acme reads globex's invoice by its id (reference.Invoices.GetWithCustomer): repo.ErrNotFound",
		`acme lists all customers and sees only its own: [`, `"Acme buyer"]`,
		`globex lists all customers and sees only its own: [`, `"Globex buyer"]`,
		"PASS  acme reads globex's customer by its id: no row",
		"PASS  acme updates globex's customer: 0 rows affected",
		"PASS  acme deletes globex's customer: 0 rows affected",
		"PASS  a call without a Principal is refused before any SQL is sent (tenantseal.ErrNoTenant)",
		"(SQLSTATE TS401): tenantseal: tenant context signature does not verify",
		"removed the development KEK",
		"dropped database "+database,
		"\nisolation demo passed (23 checks)\n")
	if strings.Contains(r.stdout, "FAIL") {
		t.Errorf("got FAIL lines:\n%s", r.stdout)
	}

	// The stored row is shown by its length and first bytes only: no plaintext of an encrypted field.
	stored := regexp.MustCompile(`(?m)^ {8}(email|email_bidx|phone|notes) +\d+ bytes  [0-9a-f]{16}\.\.\.`).FindAllString(r.stdout, -1)
	if len(stored) != 4 {
		t.Errorf("got %d lines of stored ciphertext %q, want 4 (email, email_bidx, phone, notes)", len(stored), stored)
	}
	for _, plain := range []string{"buyer@acme.example", "+1 555 0100", "pays by bank transfer", "buyer@globex.example", "Q1 licences", "March consulting"} {
		if strings.Contains(r.stdout, plain) {
			t.Errorf("stdout shows the plaintext %q of an encrypted field", plain)
		}
	}

	// The development KEK is gone.
	m := regexp.MustCompile(`created a development KEK \(kek-[0-9a-f]+\) in (\S+):`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stdout names no KEK directory:\n%s", r.stdout)
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("KEK directory %s: got %v, want it removed", m[1], err)
	}

	// It cleaned up after itself on a server it did not start.
	var n int
	roles := db.Roles(prefix)
	err := mustConn(t, superDSN(t)).QueryRow(testContext(t),
		"SELECT (SELECT count(*) FROM pg_database WHERE datname = $1) + (SELECT count(*) FROM pg_roles WHERE rolname = ANY($2))",
		database, []string{roles.Owner, roles.App, roles.Auditor, roles.Probe}).Scan(&n)
	if err != nil || n != 0 {
		t.Errorf("got %d leftover databases and roles (%v), want 0", n, err)
	}
}

func TestDemoLeavesExistingDatabasesAlone(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	r := run(t, "demo", "--dsn", superDSN(t), "--database", d.Name, "--prefix", prefixOf(d.Roles))
	wantFailure(t, r, 1, "database "+d.Name, "already exist", "--database and --prefix")
	c := mustConn(t, d.OwnerDSN)
	if err := c.Ping(testContext(t)); err != nil {
		t.Errorf("the database is gone after the refused demo: %v", err)
	}
	var n int
	if err := c.QueryRow(testContext(t), "SELECT count(*) FROM tenantseal.context_keys").Scan(&n); err != nil || n != 1 {
		t.Errorf("got %d context keys, %v, want the database untouched with its 1 key", n, err)
	}
}

// TestDemoAndBenchNeedAServer: the shipped binary starts no container; without --dsn the commands say
// what to do instead.
func TestDemoAndBenchNeedAServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ cmd, make string }{{"demo", "make demo"}, {"bench", "make bench"}} {
		r := run(t, tc.cmd)
		wantFailure(t, r, 2, tc.cmd+": no server", "--dsn", tc.make)
		if r.stdout != "" {
			t.Errorf("%s: got stdout %q, want none", tc.cmd, r.stdout)
		}
	}
}

// TestStartedServerIsStopped: demo and bench without --dsn use the build's server starter, and stop the
// server they started even when they fail; its password never shows.
func TestStartedServerIsStopped(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"demo"}, {"bench", "--tenants", "1", "--customers", "50", "--out", t.TempDir()}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			stopped := 0
			opts := cli.Options{StartServer: func(context.Context) (*cli.Server, error) {
				return &cli.Server{
					SuperDSN: "pgx5://postgres:starter-s3cret@127.0.0.1:1/postgres?connect_timeout=1",
					Describe: "a server that is not there",
					Stop:     func(context.Context) error { stopped++; return nil },
				}, nil
			}}
			var out, errb bytes.Buffer
			code := cli.RunWith(opts, args, strings.NewReader(""), &out, &errb)
			r := result{code: code, stdout: out.String(), stderr: errb.String()}
			if code != 1 || !strings.Contains(r.stdout+r.stderr, "a server that is not there") {
				t.Errorf("got %v, want exit 1 after starting the server", r)
			}
			if stopped != 1 {
				t.Errorf("got the server stopped %d times, want once", stopped)
			}
			if strings.Contains(r.stdout+r.stderr, "starter-s3cret") {
				t.Errorf("the output shows the server's password:\n%v", r)
			}
		})
	}

	t.Run("a failed start", func(t *testing.T) {
		t.Parallel()
		opts := cli.Options{StartServer: func(context.Context) (*cli.Server, error) {
			return nil, errors.New("pgtest: no image")
		}}
		var out, errb bytes.Buffer
		code := cli.RunWith(opts, []string{"demo"}, strings.NewReader(""), &out, &errb)
		wantFailure(t, result{code: code, stdout: out.String(), stderr: errb.String()}, 1, "pgtest: no image")
	})
}
