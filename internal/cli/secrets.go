package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tenantseal/tenantseal/bootstrap"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/internal/dsn"
)

// Keys of the secrets file.
const (
	keyOwnerDSN   = "TENANTSEAL_OWNER_DSN"
	keyAppDSN     = "TENANTSEAL_APP_DSN"
	keyAuditorDSN = "TENANTSEAL_AUDITOR_DSN"
	keyContextKey = "TENANTSEAL_CONTEXT_KEY"
	keyKEKURI     = "TENANTSEAL_KEK_URI"

	// keyAuditWriterDSN connects as the audit writer role, the only one that appends to the audit log.
	keyAuditWriterDSN = "TENANTSEAL_AUDIT_WRITER_DSN"
)

const secretsHeader = "# tenantseal secrets: keep out of version control"

// secretsFile is an env-format file of KEY=VALUE lines. Comments, blank lines and unknown keys survive
// an update.
type secretsFile struct {
	lines []string
}

func parseSecrets(data []byte) *secretsFile {
	text := strings.TrimSuffix(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	if text == "" {
		return &secretsFile{}
	}
	return &secretsFile{lines: strings.Split(text, "\n")}
}

// readSecrets reads the secrets file at path; a missing file is an error that matches os.ErrNotExist.
// A file that others than its owner may read or write is refused: it holds the owner's password.
func readSecrets(path string) (*secretsFile, error) { return readSecretsMode(path, true) }

// readSecretsMode reads the secrets file at path; strict refuses one open to others than its owner, as
// every command does but bootstrap, which tightens it when it writes it again.
func readSecretsMode(path string, strict bool) (*secretsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read secrets file: %w", err)
	}
	defer f.Close()
	if err := checkSecretsMode(f, path); err != nil && strict {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read secrets file: %w", err)
	}
	return parseSecrets(data), nil
}

// checkSecretsMode refuses a secrets file that its group or others may read or write, as ssh refuses a
// private key.
func checkSecretsMode(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read secrets file: %w", err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("secrets file %s is open to its group or others (mode %04o): it holds the owner's password; run 'chmod 600 %s'", path, m, path)
	}
	return nil
}

// envSecrets names the secrets file when --secrets is not given.
const envSecrets = "TENANTSEAL_SECRETS"

// secretsPath is the secrets file of commands not told one: $TENANTSEAL_SECRETS, else
// tenantseal-secrets.env in the working directory.
func secretsPath() string {
	if p := os.Getenv(envSecrets); p != "" {
		return p
	}
	return defaultSecrets
}

// entry splits a KEY=VALUE line; export prefixes and quotes around the value are accepted.
func entry(line string) (key, value string, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return "", "", false
	}
	line = strings.TrimPrefix(line, "export ")
	key, value, ok = strings.Cut(line, "=")
	if !ok {
		return "", "", false
	}
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
		value = value[1 : len(value)-1]
	}
	return key, value, true
}

// get returns the value of the last line that sets key, or "".
func (f *secretsFile) get(key string) string {
	var v string
	for _, l := range f.lines {
		if k, val, ok := entry(l); ok && k == key {
			v = val
		}
	}
	return v
}

// set replaces every line that sets key with one line, or appends it.
func (f *secretsFile) set(key, value string) {
	line := key + "=" + value
	done := false
	out := f.lines[:0:0]
	for _, l := range f.lines {
		if k, _, ok := entry(l); ok && k == key {
			if !done {
				out = append(out, line)
				done = true
			}
			continue
		}
		out = append(out, l)
	}
	if !done {
		out = append(out, line)
	}
	f.lines = out
}

func (f *secretsFile) bytes() []byte {
	if len(f.lines) == 0 {
		return nil
	}
	return []byte(strings.Join(f.lines, "\n") + "\n")
}

// passwords returns the passwords of the connection strings in f, by role name.
func (f *secretsFile) passwords() bootstrap.Passwords {
	pw := bootstrap.Passwords{}
	for _, key := range []string{keyOwnerDSN, keyAppDSN, keyAuditorDSN, keyAuditWriterDSN} {
		s, err := dsn.Parse(f.get(key))
		if err == nil && s.Get(dsn.User) != "" && s.Has(dsn.Password) {
			pw[s.Get(dsn.User)] = s.Get(dsn.Password)
		}
	}
	return pw
}

// contextKey returns the context key in f, if it holds a valid one.
func (f *secretsFile) contextKey() (*db.ContextKey, error) {
	v := f.get(keyContextKey)
	if v == "" {
		return nil, nil
	}
	k, err := db.ParseContextKey(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyContextKey, err)
	}
	return &k, nil
}

func formatContextKey(k db.ContextKey) string {
	return fmt.Sprintf("%s:%x", k.ID, k.Secret)
}

// pendingWrite is a secrets file being written: a 0600 temp file in the target's directory, renamed over
// the target on commit so that readers never see half a file. Creating it first proves the directory is
// writable before any secret is generated that could then be lost.
type pendingWrite struct {
	tmp  *os.File
	path string
}

func beginWrite(path string) (*pendingWrite, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("write secrets file: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("write secrets file: %w", err)
	}
	return &pendingWrite{tmp: tmp, path: path}, nil
}

func (w *pendingWrite) commit(data []byte) error {
	_, err := w.tmp.Write(data)
	if err == nil {
		err = w.tmp.Sync()
	}
	if cerr := w.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.tmp.Name())
		return fmt.Errorf("write secrets file %s: %w", w.path, err)
	}
	return nil
}

// abort removes the temp file; harmless after commit.
func (w *pendingWrite) abort() {
	if w == nil {
		return
	}
	w.tmp.Close()
	os.Remove(w.tmp.Name())
}

// setSecret rewrites the secrets file at path with key set to value, keeping every other line, mode
// 0600.
func setSecret(path, key, value string) error {
	file, err := readSecrets(path)
	if err != nil {
		return err
	}
	w, err := beginWrite(path)
	if err != nil {
		return err
	}
	defer w.abort()
	file.set(key, value)
	return w.commit(file.bytes())
}

// unchanged reports whether path already holds exactly data with mode 0600.
func unchanged(path string, data []byte) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		return false
	}
	old, err := os.ReadFile(path)
	return err == nil && bytes.Equal(old, data)
}
