package cli_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal/audit"

	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
)

// keysEnv is a migrated database whose secrets file also names a fresh local KEK, with the app pool.
type keysEnv struct {
	d       *pgtest.Database
	secrets string
	kekURI  string
	kek     *keys.KEK
	pool    *db.Pool
}

func newKeysEnv(t *testing.T) *keysEnv {
	t.Helper()
	d := pgtest.NewDatabase(t)
	e := &keysEnv{d: d, secrets: secretsFor(t, d)}
	e.kekURI = mustInitKEK(t, e.secrets)
	e.kek = mustOpenKEK(t, e.kekURI)
	e.pool = mustPool(t, d.AppDSN, prefixOf(d.Roles), d.ContextKey)
	return e
}

// mustInitKEK writes a new local KEK with `keys init-kek` and returns its URI.
func mustInitKEK(t testing.TB, secrets string) string {
	t.Helper()
	r := mustRun(t, "keys", "init-kek", "--out", filepath.Join(t.TempDir(), "kek.json"), "--secrets", secrets)
	return strings.TrimSpace(r.stdout)
}

// newLocalKEK writes a local KEK without the CLI and returns its URI.
func newLocalKEK(t testing.TB) string {
	t.Helper()
	uri, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	return uri
}

func mustOpenKEK(t testing.TB, uri string) *keys.KEK {
	t.Helper()
	k, err := keys.OpenKEK(testContext(t), uri)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tenant creates a tenant with its keysets through the CLI, the KEK coming from the secrets file.
func (e *keysEnv) tenant(t *testing.T, name string) tenantseal.TenantID {
	t.Helper()
	return parseTenant(t, mustRun(t, "tenants", "create", "--name", name, "--secrets", e.secrets))
}

// pastRetireWait moves the tenant's last rotation back by a day, as if every application cache had
// expired since.
func (e *keysEnv) pastRetireWait(t *testing.T, id tenantseal.TenantID) {
	t.Helper()
	mustExec(t, e.d.OwnerDSN, "UPDATE tenantseal.tenant_keysets SET primary_since = primary_since - interval '1 day' WHERE tenant_id = $1", id)
}

// keysets counts the tenant's keysets as the owner.
func (e *keysEnv) keysets(t *testing.T, id tenantseal.TenantID) int {
	t.Helper()
	var n int
	if err := mustConn(t, e.d.OwnerDSN).QueryRow(testContext(t), "SELECT count(*) FROM tenantseal.tenant_keysets WHERE tenant_id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// keyring returns a fresh Keyring over the app pool: nothing cached from before.
func (e *keysEnv) keyring(t *testing.T, kek *keys.KEK) *keys.Keyring {
	t.Helper()
	kr, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(e.pool)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// insertCustomer stores a customer with encrypted fields and a blind index through the app pool, as an
// application would, and returns its id.
func (e *keysEnv) insertCustomer(t *testing.T, kr *keys.Keyring, tenant tenantseal.TenantID, email, notes string) string {
	t.Helper()
	ctx := as(testContext(t), tenant)
	var id string
	err := e.pool.Tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT gen_random_uuid()::text").Scan(&id); err != nil {
			return err
		}
		enc := func(col, v string) []byte {
			ct, err := kr.Encrypt(ctx, keys.Field{Table: "customers", Column: col, Row: id}, []byte(v))
			if err != nil {
				t.Fatal(err)
			}
			return ct
		}
		bidx, err := kr.BlindIndex(ctx, keys.Field{Table: "customers", Column: "email"}, email, keys.NormalizeEmail)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO customers (tenant_id, id, display_name, email, email_bidx, phone, notes)
			VALUES ($1, $2, 'c', $3, $4, $5, $6)`, tenant, id, enc("email", email), bidx, enc("phone", "+1 555"), enc("notes", notes))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// notes reads and decrypts a customer's notes, and returns the id of the key they are under.
func (e *keysEnv) notes(t *testing.T, kr *keys.Keyring, tenant tenantseal.TenantID, id string) (string, uint32, error) {
	t.Helper()
	ctx := as(testContext(t), tenant)
	var ct []byte
	if err := e.pool.QueryRow(ctx, "SELECT notes FROM customers WHERE tenant_id = $1 AND id = $2", tenant, id).Scan(&ct); err != nil {
		t.Fatal(err)
	}
	keyID, _ := keys.CiphertextKeyID(ct)
	pt, err := kr.Decrypt(ctx, keys.Field{Table: "customers", Column: "notes", Row: id}, ct)
	return string(pt), keyID, err
}

func TestKeysInitKEK(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d)
	mustWrite(t, secrets, mustRead(t, secrets)+"# operator comment\nMY_SETTING=kept\n")
	dir := t.TempDir()
	path := filepath.Join(dir, "kek.json")

	r := mustRun(t, "keys", "init-kek", "--out", path, "--secrets", secrets)
	uri := "local-keyset://" + path
	if r.stdout != uri+"\n" {
		t.Errorf("got stdout %q, want the URI %q alone", r.stdout, uri)
	}
	wantContains(t, "stderr", r.stderr, "development only", "KMS", "recorded TENANTSEAL_KEK_URI in "+secrets)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("KEK file: got mode %04o, want 0600", got)
	}
	env := readSecretsFile(t, secrets)
	if env["TENANTSEAL_KEK_URI"] != uri || env["MY_SETTING"] != "kept" || env["TENANTSEAL_OWNER_DSN"] != d.OwnerDSN {
		t.Errorf("got secrets %v, want TENANTSEAL_KEK_URI=%s and every other line kept", env, uri)
	}
	if !strings.Contains(mustRead(t, secrets), "# operator comment\n") {
		t.Errorf("the secrets file lost its comment")
	}
	kek := mustRead(t, path)

	// Never overwrites a KEK: every keyset it wraps would be lost.
	r = run(t, "keys", "init-kek", "--out", path, "--secrets", secrets)
	wantFailure(t, r, 1, path, "refusing to overwrite")
	if mustRead(t, path) != kek {
		t.Errorf("the refused init-kek changed the KEK file")
	}

	// A second KEK is written, but the secrets file keeps naming the first.
	before := mustRead(t, secrets)
	r = mustRun(t, "keys", "init-kek", "--out", filepath.Join(dir, "next.json"), "--secrets", secrets)
	wantContains(t, "stderr", r.stderr, "already names a KEK", "rotate-kek --new local-keyset://"+filepath.Join(dir, "next.json"))
	if mustRead(t, secrets) != before {
		t.Errorf("init-kek replaced the KEK the secrets file names")
	}

	// A secrets file named but absent is a mistake: nothing is written.
	absent := filepath.Join(dir, "absent.json")
	r = run(t, "keys", "init-kek", "--out", absent, "--secrets", filepath.Join(dir, "absent.env"))
	wantFailure(t, r, 1, "absent.env", "no such file")
	if _, err := os.Stat(absent); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want no KEK written", err)
	}
}

// Not parallel: it changes the working directory.
func TestKeysInitKEKWithoutSecretsFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	r := mustRun(t, "keys", "init-kek")
	path := filepath.Join(dir, "tenantseal-kek.json")
	if r.stdout != "local-keyset://"+path+"\n" {
		t.Errorf("got stdout %q, want the URI of %s", r.stdout, path)
	}
	wantContains(t, "stderr", r.stderr, "no secrets file", "TENANTSEAL_KEK_URI=local-keyset://"+path)
	if _, err := os.Stat(filepath.Join(dir, "tenantseal-secrets.env")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("init-kek created a secrets file (%v)", err)
	}
}

func TestTenantsCreateWithKeys(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	acme := e.tenant(t, "acme")
	if n := e.keysets(t, acme); n != 2 {
		t.Errorf("tenants create with a KEK: got %d keysets, want 2", n)
	}
	// The KEK from --kek works as well as from the secrets file.
	r := mustRun(t, "tenants", "create", "--name", "globex", "--dsn", e.d.OwnerDSN, "--audit-dsn", e.d.AuditWriterDSN, "--kek", e.kekURI)
	if n := e.keysets(t, parseTenant(t, r)); n != 2 {
		t.Errorf("tenants create --kek: got %d keysets, want 2", n)
	}

	bare := parseTenant(t, mustRun(t, "tenants", "create", "--name", "bare", "--no-keys", "--secrets", e.secrets))
	if n := e.keysets(t, bare); n != 0 {
		t.Errorf("tenants create --no-keys: got %d keysets, want 0", n)
	}
	r = mustRun(t, "keys", "create", "--tenant", bare.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "tenant "+bare.String()+": created its keysets", e.kek.ID)
	if n := e.keysets(t, bare); n != 2 {
		t.Errorf("keys create: got %d keysets, want 2", n)
	}
	// The keysets work: a row encrypted with them decrypts.
	kr := e.keyring(t, e.kek)
	id := e.insertCustomer(t, kr, bare, "a@x", "hello")
	if got, _, err := e.notes(t, e.keyring(t, e.kek), bare, id); err != nil || got != "hello" {
		t.Errorf("got %q (%v), want hello", got, err)
	}

	r = mustRun(t, "keys", "create", "--tenant", bare.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "already has its keysets")
	unknown := "00000000-0000-4000-8000-000000000001"
	wantFailure(t, run(t, "keys", "create", "--tenant", unknown, "--secrets", e.secrets), 1, "no tenant "+unknown)

	// --all gives every tenant without keysets its keysets, and only those.
	b1 := parseTenant(t, mustRun(t, "tenants", "create", "--name", "bare1", "--no-keys", "--secrets", e.secrets))
	b2 := parseTenant(t, mustRun(t, "tenants", "create", "--name", "bare2", "--no-keys", "--secrets", e.secrets))
	r = mustRun(t, "keys", "create", "--all", "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "tenant "+b1.String()+": created its keysets", "tenant "+b2.String()+": created its keysets")
	if strings.Contains(r.stdout, bare.String()) || strings.Contains(r.stdout, acme.String()) {
		t.Errorf("keys create --all touched tenants that had keysets:\n%s", r.stdout)
	}
	for _, id := range []tenantseal.TenantID{b1, b2} {
		if n := e.keysets(t, id); n != 2 {
			t.Errorf("keys create --all: %s has %d keysets, want 2", id, n)
		}
	}
	wantContains(t, "stdout", mustRun(t, "keys", "create", "--all", "--secrets", e.secrets).stdout, "nothing to do")
	wantFailure(t, run(t, "keys", "create", "--all", "--tenant", b1.String(), "--secrets", e.secrets), 2, "either --tenant T or --all")
}

// Not parallel: it sets TENANTSEAL_KEK_URI.
func TestKEKFromEnvironment(t *testing.T) {
	t.Setenv("TENANTSEAL_KEK_URI", "")
	d := pgtest.NewDatabase(t)
	secrets := secretsFor(t, d) // names no KEK
	r := run(t, "tenants", "create", "--name", "acme", "--secrets", secrets)
	wantFailure(t, r, 2, "no KEK configured", "cannot use encrypted fields", "--kek", "$TENANTSEAL_KEK_URI", secrets, "--no-keys")
	var n int
	if err := mustConn(t, d.OwnerDSN).QueryRow(testContext(t), "SELECT count(*) FROM tenantseal.tenants").Scan(&n); err != nil || n != 0 {
		t.Errorf("got %d tenants (%v), want none created", n, err)
	}
	for _, sub := range []string{"check", "rotate --all", "rotate-kek --new local-keyset:///x"} {
		r := run(t, append(append([]string{"keys"}, strings.Fields(sub)...), "--secrets", secrets)...)
		wantFailure(t, r, 2, "no KEK configured", "--kek", "$TENANTSEAL_KEK_URI", "TENANTSEAL_KEK_URI line", "init-kek")
	}

	// $TENANTSEAL_KEK_URI is the second source, after --kek.
	uri := newLocalKEK(t)
	t.Setenv("TENANTSEAL_KEK_URI", uri)
	id := parseTenant(t, mustRun(t, "tenants", "create", "--name", "acme", "--secrets", secrets))
	var n2 int
	if err := mustConn(t, d.OwnerDSN).QueryRow(testContext(t), "SELECT count(*) FROM tenantseal.tenant_keysets WHERE tenant_id = $1", id).Scan(&n2); err != nil || n2 != 2 {
		t.Errorf("got %d keysets (%v), want 2", n2, err)
	}
	wantFailure(t, run(t, "keys", "check", "--secrets", secrets, "--kek", newLocalKEK(t)), 1, "wrong KEK", "from --kek")
	before := mustRead(t, secrets)
	r = mustRun(t, "keys", "rotate-kek", "--new", newLocalKEK(t), "--secrets", secrets)
	wantContains(t, "stdout", r.stdout, "re-wrapped 2 keysets", "set TENANTSEAL_KEK_URI to the --new URI", "$TENANTSEAL_KEK_URI still names the old KEK")
	if mustRead(t, secrets) != before {
		t.Errorf("rotate-kek added a KEK line to a secrets file that named none")
	}
}

func TestWrongKEK(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	e.tenant(t, "acme") // the first keysets record the KEK in the canary
	r := mustRun(t, "keys", "check", "--secrets", e.secrets)
	if r.stdout != fmt.Sprintf("KEK ok (%s)\n", e.kek.ID) {
		t.Errorf("got %q, want KEK ok (%s)", r.stdout, e.kek.ID)
	}

	other := mustInitKEK(t, e.secrets) // the secrets file keeps naming the right one
	otherID := mustOpenKEK(t, other).ID
	for _, args := range [][]string{
		{"keys", "check"},
		{"keys", "rotate", "--all"},
		{"keys", "reencrypt", "--all"},
		{"tenants", "create", "--name", "globex"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := run(t, append(args, "--secrets", e.secrets, "--kek", other)...)
			wantFailure(t, r, 1, "wrong KEK", "the KEK from --kek ("+otherID+")", "does not open this database's KEK canary")
		})
	}
	var n int
	if err := mustConn(t, e.d.OwnerDSN).QueryRow(testContext(t), "SELECT count(*) FROM tenantseal.tenants").Scan(&n); err != nil || n != 1 {
		t.Errorf("got %d tenants (%v), want the wrong KEK to create none", n, err)
	}
	missing := "local-keyset://" + filepath.Join(t.TempDir(), "missing.json")
	wantFailure(t, run(t, "keys", "check", "--secrets", e.secrets, "--kek", missing), 1, "open the KEK from --kek", "missing.json")
}

func TestRotateReencryptRetire(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	b := e.tenant(t, "b")
	kr := e.keyring(t, e.kek)
	const n = 25
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.insertCustomer(t, kr, a, fmt.Sprintf("c%d@x", i), fmt.Sprintf("notes %d", i))
	}
	bID := e.insertCustomer(t, kr, b, "b@x", "b notes")
	_, oldKey, _ := e.notes(t, kr, a, ids[0])
	_, bKey, _ := e.notes(t, kr, b, bID)

	r := mustRun(t, "keys", "rotate", "--tenant", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "tenant "+a.String()+": rotated; new primary keys: aead key ", ", prf key ")
	wantContains(t, "stderr", r.stderr, "keys reencrypt --tenant "+a.String(), "keys status")

	// Until every application cache can have seen the rotation, retire refuses, saying until when.
	r = run(t, "keys", "retire", "--tenant", a.String(), "--secrets", e.secrets)
	wantFailure(t, r, 1, "keys retire: tenant "+a.String()+" was rotated at", "may cache its old keysets", "max_cache_ttl plus write_grace", "(in ")
	if !regexp.MustCompile(`\(in (6m0s|5m[0-5]\ds)[:)]`).MatchString(r.stderr) {
		t.Errorf("got %q, want the wait of about 6m left", r.stderr)
	}
	e.pastRetireWait(t, a)
	// Every row still needs the old key: retire refuses and changes nothing.
	r = run(t, "keys", "retire", "--tenant", a.String(), "--secrets", e.secrets)
	wantFailure(t, r, 1, "keys retire", "stored values of tenant "+a.String()+" still need", "reencrypt")

	r = mustRun(t, "keys", "reencrypt", "--tenant", a.String(), "--batch", "7", "--secrets", e.secrets)
	if want := fmt.Sprintf("tenant %s: examined %d, rewritten %d, raced 0, unreadable 0\n", a, n, n); !strings.HasPrefix(r.stdout, want) {
		t.Errorf("got stdout %q, want it to start with %q", r.stdout, want)
	}
	// Not a terminal: one plain final progress line, no carriage returns, and the next step.
	if lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n"); len(lines) != 2 || strings.Contains(r.stderr, "\r") {
		t.Errorf("got stderr %q, want one plain progress line and the next step", r.stderr)
	}
	wantContains(t, "stderr", r.stderr, "tenant "+a.String()+" [", "100%", fmt.Sprintf("%d/%d rows", n, n), "rows/s", " in ", "next: 'tenantseal keys retire")
	if q := mustRun(t, "keys", "reencrypt", "--tenant", a.String(), "--secrets", e.secrets, "--quiet"); q.stderr != "" {
		t.Errorf("--quiet: got stderr %q, want none", q.stderr)
	}

	// Resumable: a second run finds nothing left to do.
	r = mustRun(t, "keys", "reencrypt", "--tenant", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, fmt.Sprintf("examined %d, rewritten 0, raced 0, unreadable 0", n))

	r = mustRun(t, "keys", "retire", "--tenant", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "tenant "+a.String()+": retired aead key "+fmt.Sprint(oldKey), "keys enable --tenant "+a.String())
	fresh := e.keyring(t, e.kek)
	for i, id := range ids {
		got, keyID, err := e.notes(t, fresh, a, id)
		if err != nil || got != fmt.Sprintf("notes %d", i) || keyID == oldKey {
			t.Fatalf("row %d after retire: got %q under key %d (%v), want notes %d under the new key", i, got, keyID, err, i)
		}
	}
	if got, keyID, err := e.notes(t, fresh, b, bID); err != nil || got != "b notes" || keyID != bKey {
		t.Errorf("tenant b: got %q under key %d (%v), want it untouched under key %d", got, keyID, err, bKey)
	}
	r = mustRun(t, "keys", "retire", "--tenant", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "no key to retire")

	// The same for every tenant at once.
	r = mustRun(t, "keys", "rotate", "--all", "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "tenant "+a.String()+": rotated", "tenant "+b.String()+": rotated")
	wantContains(t, "stderr", r.stderr, "reencrypt --all")
	r = mustRun(t, "keys", "reencrypt", "--all", "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, fmt.Sprintf("tenant %s: examined %d, rewritten %d", a, n, n), fmt.Sprintf("tenant %s: examined 1, rewritten 1", b))
	e.pastRetireWait(t, a)
	e.pastRetireWait(t, b)
	r = mustRun(t, "keys", "retire", "--all", "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "tenant "+a.String()+": retired aead key", "tenant "+b.String()+": retired aead key")
}

// Values that do not decrypt are named, recorded and quarantined; the way forward is documented and
// works: retire goes on without them when told to.
func TestReencryptQuarantinesTamperedRows(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	kr := e.keyring(t, e.kek)
	one := e.insertCustomer(t, kr, a, "1@x", "one")
	two := e.insertCustomer(t, kr, a, "2@x", "two")
	e.insertCustomer(t, kr, a, "3@x", "three")
	// An attacker with database access copies row two's notes into row one.
	mustExec(t, e.d.SuperDSN, "UPDATE customers SET notes = (SELECT notes FROM customers WHERE id = $2) WHERE id = $1", one, two)
	_, oldKey, _ := e.notes(t, kr, a, two)
	mustRun(t, "keys", "rotate", "--tenant", a.String(), "--secrets", e.secrets)

	r := run(t, "keys", "reencrypt", "--tenant", a.String(), "--secrets", e.secrets)
	if r.code != 1 {
		t.Fatalf("got %v, want exit 1", r)
	}
	wantContains(t, "stdout", r.stdout, fmt.Sprintf("tenant %s: examined 3, rewritten 3, raced 0, unreadable 1", a),
		fmt.Sprintf("tenant %s: unreadable: customers.notes row %s (key %d, tampered)", a, one, oldKey))
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "tenantseal: ") || strings.Count(r.stderr, "tenantseal: ") != 1 {
		t.Errorf("got stderr %q, want progress, then one last line starting with \"tenantseal: \"", r.stderr)
	}
	wantContains(t, "stderr", last, "left untouched", "recorded in the audit log (kind tampered_ciphertext)", "quarantined (1 of tenant "+a.String(),
		"restore them from a backup", "keys retire --skip-quarantined")
	// Recorded, with the row.
	entries, err := audit.Query(testContext(t), mustConn(t, e.d.AuditorDSN), audit.Filter{Kind: tenantseal.EventTampered})
	if err != nil || len(entries) != 1 || *entries[0].RowKey != one || !strings.Contains(*entries[0].Detail, "column notes") {
		t.Errorf("audit log: got %+v (%v), want one tampered event naming row %s, column notes", entries, err, one)
	}
	// Listed.
	r = mustRun(t, "keys", "quarantine", "--tenant", a.String(), "--secrets", e.secrets, "--format", "json")
	var q struct {
		Schema, Tenant string
		Values         []struct {
			Table, Column, Row, Reason string
			KeyID                      uint32 `json:"key_id"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &q); err != nil || q.Schema != "tenantseal/quarantine/v1" || len(q.Values) != 1 ||
		q.Values[0].Row != one || q.Values[0].Column != "notes" || q.Values[0].KeyID != oldKey || q.Values[0].Reason != "tampered" {
		t.Errorf("quarantine list: got %+v (%v) from %s", q, err, r.stdout)
	}
	// A second run leaves it alone, and finds nothing new.
	r = mustRun(t, "keys", "reencrypt", "--tenant", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "unreadable 0, quarantined left alone 1")
	e.pastRetireWait(t, a)
	// Retire refuses: the quarantined row still names the old key; it says how to go on without it.
	wantFailure(t, run(t, "keys", "retire", "--tenant", a.String(), "--secrets", e.secrets), 1, "still need", "quarantined as unreadable", "--skip-quarantined")
	r = mustRun(t, "keys", "retire", "--tenant", a.String(), "--secrets", e.secrets, "--skip-quarantined")
	wantContains(t, "stdout", r.stdout, "retired aead key")
	// Undone: the retired keys come back, and the quarantine list can be examined again.
	r = mustRun(t, "keys", "enable", "--tenant", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "enabled aead key")
	r = mustRun(t, "keys", "quarantine", "--tenant", a.String(), "--secrets", e.secrets, "--release")
	wantContains(t, "stdout", r.stdout, "released 1 quarantined values")
	entries, err = audit.Query(testContext(t), mustConn(t, e.d.AuditorDSN), audit.Filter{})
	var kinds []string
	for _, en := range entries {
		if en.Kind.Operator() {
			if en.TenantID != nil || en.Subject == nil || *en.Subject == "" {
				t.Errorf("operator entry %+v: want a subject and no tenant", en)
			}
			kinds = append(kinds, string(en.Kind))
		}
	}
	if want := []string{"tenant_change", "key_rotate", "key_reencrypt", "key_reencrypt", "key_retire", "key_enable", "quarantine_release"}; err != nil || !slices.Equal(kinds, want) {
		t.Errorf("operator actions recorded: got %v (%v), want %v", kinds, err, want)
	}
}

func TestRotateKEK(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	id := e.insertCustomer(t, e.keyring(t, e.kek), a, "a@x", "kept")
	next := mustInitKEK(t, e.secrets) // not recorded: the file names the current KEK
	nextKEK := mustOpenKEK(t, next)

	wantFailure(t, run(t, "keys", "rotate-kek", "--new", e.kekURI, "--secrets", e.secrets), 2, "--new names the KEK in use")

	r := mustRun(t, "keys", "rotate-kek", "--new", next, "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "re-wrapped 2 keysets", nextKEK.ID, "updated TENANTSEAL_KEK_URI in "+e.secrets)
	wantContains(t, "stderr", r.stderr, "switch every process", "keep the old KEK")
	if got := readSecretsFile(t, e.secrets)["TENANTSEAL_KEK_URI"]; got != next {
		t.Errorf("secrets file: got TENANTSEAL_KEK_URI=%s, want %s", got, next)
	}

	r = mustRun(t, "keys", "check", "--secrets", e.secrets)
	if r.stdout != fmt.Sprintf("KEK ok (%s)\n", nextKEK.ID) {
		t.Errorf("check with the new KEK: got %q, want KEK ok (%s)", r.stdout, nextKEK.ID)
	}
	wantFailure(t, run(t, "keys", "check", "--secrets", e.secrets, "--kek", e.kekURI), 1, "wrong KEK", e.kek.ID)

	if got, _, err := e.notes(t, e.keyring(t, nextKEK), a, id); err != nil || got != "kept" {
		t.Errorf("with the new KEK: got %q (%v), want the row unchanged", got, err)
	}
	if _, _, err := e.notes(t, e.keyring(t, e.kek), a, id); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("with the old KEK: got %v, want keys.ErrKEK", err)
	}
}

func TestTenantsShred(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	b := e.tenant(t, "b")
	kr := e.keyring(t, e.kek)
	aRow := e.insertCustomer(t, kr, a, "a@x", "a notes")
	bRow := e.insertCustomer(t, kr, b, "b@x", "b notes")

	wantFailure(t, run(t, "tenants", "shred", a.String(), "--secrets", e.secrets), 2, "--confirm", "unreadable")
	wantFailure(t, run(t, "tenants", "shred", a.String(), "--confirm", b.String(), "--secrets", e.secrets), 2, "does not repeat", "nothing was shredded")
	wantFailure(t, run(t, "tenants", "shred", "--confirm", "ac\tme", "ac\tme", "--secrets", e.secrets), 2, `"ac\tme" is not a tenant id`)
	if n := e.keysets(t, a); n != 2 {
		t.Fatalf("after refused shreds: got %d keysets, want 2", n)
	}

	r := mustRun(t, "tenants", "shred", a.String(), "--confirm", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "shredded tenant "+a.String()+": destroyed its 2 keysets (aead, prf)")
	wantContains(t, "stderr", r.stderr, "next version check", keys.DefaultRevalidate.String(), "max_cache_ttl",
		"backups taken before now", e.kek.ID, "rotate-kek", "recorded the shred in the audit log")
	if n := e.keysets(t, a); n != 0 {
		t.Errorf("after shred: got %d keysets of the shredded tenant, want 0", n)
	}
	if n := e.keysets(t, b); n != 2 {
		t.Errorf("after shred: got %d keysets of the other tenant, want 2", n)
	}
	fresh := e.keyring(t, e.kek)
	if _, _, err := e.notes(t, fresh, a, aRow); !errors.Is(err, keys.ErrShredded) || errors.Is(err, keys.ErrTampered) {
		t.Errorf("shredded tenant's row: got %v, want keys.ErrShredded, not tampered", err)
	}
	if got, _, err := e.notes(t, fresh, b, bRow); err != nil || got != "b notes" {
		t.Errorf("other tenant: got %q (%v), want b notes", got, err)
	}
	// Idempotent: a second shred does nothing, and succeeds.
	r = mustRun(t, "tenants", "shred", a.String(), "--confirm", a.String(), "--secrets", e.secrets)
	wantContains(t, "stdout", r.stdout, "tenant "+a.String()+" was shredded already", "nothing to do")
	wantFailure(t, run(t, "keys", "rotate", "--tenant", a.String(), "--secrets", e.secrets), 1, "was crypto-shredded", "keys create --tenant "+a.String())
	if l := mustRun(t, "tenants", "list", "--secrets", e.secrets).stdout; !strings.Contains(l, a.String()) || !regexp.MustCompile(a.String()+` +a +active +shredded `).MatchString(l) {
		t.Errorf("tenants list: got\n%s\nwant %s shown as shredded", l, a)
	}
}

func TestReencryptNeedsTheAppRole(t *testing.T) {
	t.Parallel()
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	// The owner cannot stand in for the app role: the pool's role guard refuses it.
	r := run(t, "keys", "reencrypt", "--tenant", a.String(), "--secrets", e.secrets, "--app-dsn", e.d.OwnerDSN)
	wantFailure(t, r, 1, "open the app pool", "refusing to serve as role")
	if r.stdout != "" {
		t.Errorf("got stdout %q, want none", r.stdout)
	}
	// A prefix that names no role would make the pool's owner-membership check vacuous.
	r = run(t, "keys", "reencrypt", "--tenant", a.String(), "--secrets", e.secrets, "--prefix", "nosuch")
	wantFailure(t, r, 1, `--prefix "nosuch"`, "no role nosuch_owner")
	r = mustRun(t, "keys", "retire", "--tenant", a.String(), "--secrets", e.secrets, "--prefix", prefixOf(e.d.Roles))
	wantContains(t, "stdout", r.stdout, "no key to retire")
}

func TestKeysNeedTheKeysSchema(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDatabase(t)
	mustRun(t, "migrate", "goto", "2", "--dsn", d.OwnerDSN, "--audit-dsn", d.AuditWriterDSN,
		"--confirm-loss", "keysets,audit-log,tenant-keks", "--archive-audit", filepath.Join(t.TempDir(), "audit.jsonl"))
	r := run(t, "keys", "check", "--dsn", d.OwnerDSN, "--kek", newLocalKEK(t))
	wantFailure(t, r, 1, "run 'tenantseal migrate up' first", "kek_canary")
}
