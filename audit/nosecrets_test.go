package audit_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tenantseal/tenantseal"

	"github.com/tenantseal/tenantseal/audit"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/authn/authntest"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

// capture is a slog handler that keeps every record, each attribute resolved and rendered.
type capture struct {
	buf   syncBuffer
	inner slog.Handler
}

func newCapture() *capture {
	c := &capture{}
	c.inner = slog.NewJSONHandler(&c.buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	return c
}

func (c *capture) logger() *slog.Logger { return slog.New(c.inner) }

// mustWrongPassword returns the connection string dsn with its password replaced by a wrong one, and that
// password.
func mustWrongPassword(t *testing.T, dsn string) (string, string) {
	t.Helper()
	re := regexp.MustCompile(`(://[^:/@]+:)([^@]*)(@)`)
	if !re.MatchString(dsn) {
		t.Fatalf("no password in %s", re.ReplaceAllString(dsn, "$1***$3"))
	}
	wrong := "Wrong-Pass-" + hex.EncodeToString([]byte(t.Name()))[:12]
	return re.ReplaceAllString(dsn, "${1}"+wrong+"${3}"), wrong
}

// The failing paths that log (an audit writer whose password the server refuses, so every event goes
// to the log and the spool; refused tokens; a keyset that the KEK does not open; a pool whose password is
// wrong; alerts on a burst) write no password, token, key or plaintext into any log record.
func TestNoSecretInAnyLogRecord(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	logs := newCapture()
	d := pgtest.NewDatabase(t)

	// The audit writer cannot log in: everything it is given is logged (and spooled).
	writerDSN, writerPassword := mustWrongPassword(t, d.AuditWriterDSN)
	acfg, err := audit.ParseConfig(writerDSN)
	if err != nil {
		t.Fatal(err)
	}
	acfg.SpoolPath, acfg.Logger = filepath.Join(t.TempDir(), "audit.spool"), logs.logger()
	acfg.FlushInterval, acfg.RetryInterval = 10*time.Millisecond, 20*time.Millisecond
	acfg.Detector = audit.NewDetector(audit.DetectorConfig{Threshold: 1, Logger: logs.logger()})
	w, err := audit.NewWriter(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())

	// A pool with a wrong password: refused, and the error says nothing of it either.
	appDSN, appPassword := mustWrongPassword(t, d.AppDSN)
	pcfg := d.Config(t, appDSN)
	pcfg.Logger, pcfg.Recorder = logs.logger(), w
	if p, err := db.Open(ctx, pcfg); err == nil {
		p.Close()
		t.Fatal("db.Open with a wrong password succeeded")
	} else if strings.Contains(err.Error(), appPassword) {
		t.Errorf("db.Open's error contains the password: %v", err)
	}
	pool := d.Pool(t, func(c *db.Config) { c.Logger, c.Recorder = logs.logger(), w })

	// Refused tokens: forged, of another audience, expired, garbage.
	srv, err := authntest.NewServer("127.0.0.1:0", authntest.Options{Issuers: []string{"idp"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	iss := srv.Issuer("idp")
	auth, err := authn.New(ctx, authn.Config{
		Issuers:  []authn.Issuer{{URL: iss.URL(), Audiences: []string{"api"}, Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"org"}}}},
		Registry: mustStaticRegistry(t, iss.URL()),
		Recorder: w, Logger: logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	good := iss.Token("alice", "api", map[string]any{"org": "org-a"})
	head, _, _ := strings.Cut(good, ".")
	forged := good[:len(good)-6] + "AAAAAA"
	tokens := []string{
		forged,
		iss.Token("alice", "other-api", map[string]any{"org": "org-a"}),
		iss.Token("alice", "api", map[string]any{"org": "org-a", "exp": time.Now().Add(-time.Hour).Unix()}),
		head + ".bm90LWpzb24.c2lnbmF0dXJlLW5vdC1sb2dnZWQ",
	}
	for _, tok := range tokens {
		if _, err := auth.Authenticate(ctx, tok); err == nil {
			t.Fatalf("token %d accepted", len(tok))
		}
	}

	// A keyset the KEK does not open, and a plaintext encrypted before.
	kekPath := filepath.Join(t.TempDir(), "kek.json")
	uri, err := keys.InitLocalKEK(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.OpenKEK(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	otherURI, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "other.json"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.OpenKEK(ctx, otherURI)
	if err != nil {
		t.Fatal(err)
	}
	tenant, err := pgstore.NewAdmin(mustConn(t, d.OwnerDSN), kek).CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	actx := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: "alice"})
	const plaintext = "Plain-Text-Never-Logged-7d1f"
	field := keys.Field{Table: "customers", Column: "notes", Row: "r1"}
	right, err := keys.NewKeyring(keys.Config{KEK: kek, Loader: pgstore.Loader(pool), Recorder: w})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := right.Encrypt(actx, field, []byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := keys.NewKeyring(keys.Config{KEK: other, Loader: pgstore.Loader(pool), Recorder: w})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Decrypt(actx, field, ct); err == nil {
		t.Fatal("a keyset opened with another KEK")
	}
	// A ciphertext moved to another row: tampered.
	if _, err := right.Decrypt(actx, keys.Field{Table: "customers", Column: "notes", Row: "r2"}, ct); err == nil {
		t.Fatal("a ciphertext of another row decrypted")
	}
	// A cross-tenant write, refused by the database.
	if _, err := pool.Exec(actx, "INSERT INTO customers (tenant_id, display_name) VALUES ($1, $2)",
		tenantseal.TenantIDFromUUID([16]byte{9}), plaintext); err == nil {
		t.Fatal("cross-tenant insert succeeded")
	}

	if ok, err := w.Flush(ctx); ok || err != nil {
		t.Fatalf("flush: ok=%v err=%v, want the events spooled (the writer cannot log in)", ok, err)
	}
	got := logs.buf.String()
	for _, want := range []string{"event spooled", "auth_refused", "key_unwrap", "tampered_ciphertext", "refused_write", "above threshold"} {
		if !strings.Contains(got, want) {
			t.Errorf("the log lacks %q: the failing paths did not all log", want)
		}
	}

	kekFile, err := os.ReadFile(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"the writer's password":  writerPassword,
		"the app's password":     appPassword,
		"the context key (hex)":  hex.EncodeToString(d.ContextKey.Secret),
		"the context key (b64)":  base64.StdEncoding.EncodeToString(d.ContextKey.Secret),
		"the plaintext":          plaintext,
		"the ciphertext (b64)":   base64.StdEncoding.EncodeToString(ct),
		"a good token's payload": strings.Split(good, ".")[1],
	}
	for i, tok := range tokens {
		secrets["token "+string(rune('0'+i))] = tok
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			secrets["token "+string(rune('0'+i))+" signature"] = parts[2]
		}
	}
	for _, m := range regexp.MustCompile(`"value":\s*"([^"]+)"`).FindAllStringSubmatch(string(kekFile), -1) {
		secrets["the KEK's key material"] = m[1]
	}
	if _, ok := secrets["the KEK's key material"]; !ok {
		t.Fatal("no key material found in the KEK file")
	}
	for what, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("%s is too short to look for: %q", what, s)
		}
		if strings.Contains(got, s) {
			t.Errorf("the log contains %s", what)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", got)
	}
}

func mustStaticRegistry(t *testing.T, issuer string) authn.Registry {
	t.Helper()
	reg, err := authn.NewStaticRegistry(authn.Binding{Tenant: tenantseal.TenantIDFromUUID([16]byte{1}), Claim: "org-a", Issuers: []string{issuer}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}
