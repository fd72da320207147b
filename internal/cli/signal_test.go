package cli_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/keys"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// tenantsealBinary builds cmd/tenantseal once per test binary, for tests that need a process of its own
// (to be signalled).
func tenantsealBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tenantseal-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "tenantseal")
		out, err := exec.Command("go", "build", "-o", binaryPath, "github.com/tenantseal/tenantseal/cmd/tenantseal").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// insertMany stores n customers of tenant with encrypted notes in one transaction, as kr encrypts them.
func (e *keysEnv) insertMany(t *testing.T, kr *keys.Keyring, tenant tenantseal.TenantID, n int) {
	t.Helper()
	ctx := as(testContext(t), tenant)
	err := e.pool.Tx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i := range n {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
			ct, err := kr.Encrypt(ctx, keys.Field{Table: "customers", Column: "notes", Row: id}, []byte(fmt.Sprintf("notes %d", i)))
			if err != nil {
				return err
			}
			b.Queue("INSERT INTO customers (tenant_id, id, display_name, notes) VALUES ($1, $2, 'c', $3)", tenant, id, ct)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// underKey counts, through owner (a superuser), the tenant's customers whose notes are under AEAD key id.
func underKey(t *testing.T, owner *pgx.Conn, tenant tenantseal.TenantID, id uint32) int64 {
	t.Helper()
	prefix := binary.BigEndian.AppendUint32(nil, id)
	var n int64
	if err := owner.QueryRow(context.Background(), "SELECT count(*) FROM customers WHERE tenant_id = $1 AND substring(notes FROM 2 FOR 4) = $2",
		tenant, prefix).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

var stoppedLine = regexp.MustCompile(`examined (\d+), rewritten (\d+), raced 0, unreadable 0 \(stopped: these committed; run again to resume\)`)

// A re-encryption signalled mid-run stops after the batch in flight, reports exactly what committed, and
// exits 143 (SIGTERM) or 130 (SIGINT); a second run for the tenant meanwhile is refused, not interleaved.
func TestReencryptInterruptedAndExclusive(t *testing.T) {
	t.Parallel()
	bin := tenantsealBinary(t)
	e := newKeysEnv(t)
	a := e.tenant(t, "a")
	const n = 3000
	e.insertMany(t, e.keyring(t, e.kek), a, n)
	owner := mustConn(t, e.d.SuperDSN) // the table forces row-level security on its owner too

	for _, sig := range []struct {
		s    syscall.Signal
		code int
		name string
	}{{syscall.SIGTERM, 143, "SIGTERM"}, {syscall.SIGINT, 130, "SIGINT"}} {
		t.Run(sig.name, func(t *testing.T) {
			mustRun(t, "keys", "rotate", "--tenant", a.String(), "--secrets", e.secrets)
			primary, _, err := e.keyring(t, e.kek).PrimaryKeyIDs(as(testContext(t), a))
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "keys", "reencrypt", "--tenant", a.String(), "--batch", "5", "--secrets", e.secrets)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Dir = t.TempDir()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			for deadline := time.Now().Add(30 * time.Second); underKey(t, owner, a, primary) == 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the run moved nothing in 30s: %s", stderr.String())
				}
			}
			// One run per tenant: a second one now is refused at once.
			r := run(t, "keys", "reencrypt", "--tenant", a.String(), "--secrets", e.secrets)
			wantFailure(t, r, 1, "another re-encryption of this tenant is running", "backend pid", "one run per tenant at a time")
			if r.stdout != "" {
				t.Errorf("the refused run printed %q, want nothing: it touched no row", r.stdout)
			}

			if err := cmd.Process.Signal(sig.s); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			if cmd.ProcessState.ExitCode() != sig.code {
				t.Fatalf("got %v, want exit %d; stdout %q, stderr %q", err, sig.code, stdout.String(), stderr.String())
			}
			if !bytes.HasSuffix(stderr.Bytes(), []byte("tenantseal: interrupted ("+sig.name+")\n")) {
				t.Errorf("got stderr %q, want it to end with the interruption", stderr.String())
			}
			m := stoppedLine.FindStringSubmatch(stdout.String())
			if m == nil {
				t.Fatalf("got stdout %q, want the counts of what committed", stdout.String())
			}
			rewritten, _ := strconv.ParseInt(m[2], 10, 64)
			if moved := underKey(t, owner, a, primary); moved != rewritten || moved == n {
				t.Errorf("reported %d rows rewritten, the database holds %d under the new key: want them equal, and the run stopped short of %d", rewritten, moved, n)
			}
			// The lock went with the process: a new run resumes and finishes.
			r = mustRun(t, "keys", "reencrypt", "--tenant", a.String(), "--secrets", e.secrets)
			wantContains(t, "stdout", r.stdout, fmt.Sprintf("examined %d, rewritten %d, raced 0, unreadable 0", n, n-int(rewritten)))
			if got := underKey(t, owner, a, primary); got != n {
				t.Errorf("after the resumed run: got %d rows under the new key, want %d", got, n)
			}
		})
	}
}
