package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tenantseal/tenantseal/keys/pgstore"

	"github.com/tenantseal/tenantseal/keys"
)

// kekFlags resolve the key-encryption key of the commands that wrap or unwrap tenant keysets.
type kekFlags struct {
	uri  string
	conn *connFlags
}

func (f *flags) kekFlag(conn *connFlags) *kekFlags {
	k := &kekFlags{conn: conn}
	f.StringVar(&k.uri, "kek", "", "KEK URI: local-keyset://<path> or a Tink KMS URI (default $"+keyKEKURI+", then the secrets file)")
	return k
}

// kekRef is a resolved KEK URI and where it was found, for messages.
type kekRef struct {
	uri, source string
}

// resolve finds the KEK URI: --kek, $TENANTSEAL_KEK_URI, the TENANTSEAL_KEK_URI line of the secrets file.
// It fails with a usage error naming the three when none is set.
func (k *kekFlags) resolve() (kekRef, error) {
	if k.uri != "" {
		return kekRef{k.uri, "--kek"}, nil
	}
	if v := os.Getenv(keyKEKURI); v != "" {
		return kekRef{v, "$" + keyKEKURI}, nil
	}
	sf, err := readSecrets(k.conn.secrets)
	switch {
	case errors.Is(err, os.ErrNotExist) && !k.conn.f.set("secrets"):
	case err != nil:
		return kekRef{}, err
	default:
		if v := sf.get(keyKEKURI); v != "" {
			return kekRef{v, k.conn.secrets}, nil
		}
	}
	return kekRef{}, usageErrorf("%s: no KEK configured: pass --kek <uri>, set $%s, or add a %s line to the secrets file %s ('tenantseal keys init-kek' writes a development KEK and records it there)",
		k.conn.f.name, keyKEKURI, keyKEKURI, k.conn.secrets)
}

// openKEK opens the KEK that ref names. A KMS URI names accounts and key paths: it is kept out of
// messages.
func openKEK(ctx context.Context, s *session, ref kekRef) (*keys.KEK, error) {
	if !strings.HasPrefix(ref.uri, keys.LocalKEKScheme) {
		s.secret(ref.uri)
		if _, rest, ok := strings.Cut(ref.uri, "://"); ok {
			s.secret(rest)
		}
	}
	kek, err := keys.OpenKEKWith(ctx, ref.uri, s.kmsClients(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("open the KEK from %s: %w", ref.source, err)
	}
	return kek, nil
}

// checkKEK fails unless kek opens the database's KEK canary (or no keyset exists yet), so that a wrong
// KEK is refused before anything changes.
func checkKEK(ctx context.Context, q pgstore.Querier, kek *keys.KEK, ref kekRef) error {
	err := pgstore.CheckKEK(ctx, q, kek)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keys.ErrKEK):
		return fmt.Errorf("wrong KEK: the KEK from %s (%s) does not open this database's KEK canary, so it does not wrap this database's keysets", ref.source, kek.ID)
	}
	return ownerError(err)
}

const localKEKWarning = "tenantseal: warning: a local KEK file holds the key in clear on disk: for development only; in production use a KMS URI (gcp-kms://, aws-kms://, hcvault://), and keep this file out of version control and backups"

func (r *keysRun) initKEK() error {
	// Decide about the secrets file first: a named one that is missing is a mistake to stop on.
	file, err := readSecrets(r.conn.secrets)
	switch {
	case errors.Is(err, os.ErrNotExist) && !r.conn.f.set("secrets"):
		file = nil
	case err != nil:
		return err
	}
	var pending *pendingWrite
	if file != nil && file.get(keyKEKURI) == "" {
		if pending, err = beginWrite(r.conn.secrets); err != nil {
			return err
		}
		defer pending.abort()
	}
	uri, err := keys.InitLocalKEK(r.outFile)
	if err != nil {
		return err
	}
	r.s.printf("%s\n", uri)
	fmt.Fprintln(r.s.stderr, localKEKWarning)
	switch {
	case pending != nil:
		file.set(keyKEKURI, uri)
		if err := pending.commit(file.bytes()); err != nil {
			return fmt.Errorf("wrote the KEK %s but not the secrets file: %w (set %s=%s by hand)", r.outFile, err, keyKEKURI, uri)
		}
		fmt.Fprintf(r.s.stderr, "recorded %s in %s\n", keyKEKURI, r.conn.secrets)
	case file != nil:
		fmt.Fprintf(r.s.stderr, "%s already names a KEK: left unchanged; to move the database to the new one, run 'tenantseal keys rotate-kek --new %s'\n", r.conn.secrets, uri)
	default:
		fmt.Fprintf(r.s.stderr, "no secrets file %s: set %s=%s where tenantseal runs\n", r.conn.secrets, keyKEKURI, uri)
	}
	return nil
}

func (r *keysRun) check(ctx context.Context) error {
	o, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer o.close(ctx, nil)
	var n int
	if err := o.conn.QueryRow(ctx, "SELECT count(*) FROM tenantseal.kek_canary").Scan(&n); err != nil {
		return fmt.Errorf("keys check: %w", ownerError(err))
	}
	if n == 0 {
		r.s.printf("KEK ok (%s): no keyset exists yet; the first one records this KEK\n", o.kek.ID)
	} else {
		r.s.printf("KEK ok (%s)\n", o.kek.ID)
	}
	// The tenants that bring their own key: each KEK opened and checked against its canary.
	checks, err := o.admin.CheckTenantKEKs(ctx)
	if err != nil {
		return fmt.Errorf("keys check: %w", ownerError(err))
	}
	failed := 0
	for _, c := range checks {
		if c.Err != nil {
			failed++
			r.s.printf("tenant %s: its own KEK %s does not open: %v\n", c.Tenant, c.URI, c.Err)
			continue
		}
		r.s.printf("tenant %s: its own KEK ok (%s)\n", c.Tenant, c.KEKID)
	}
	if failed > 0 {
		return fmt.Errorf("keys check: the own KEKs of %d tenants do not open: their encrypted fields are unreadable until they do", failed)
	}
	return nil
}

func (r *keysRun) rotateKEK(ctx context.Context) error {
	if !r.tenant.IsZero() {
		return r.rotateTenantKEK(ctx)
	}
	// Resolve the current KEK first, so that a --new naming it is a usage error before anything opens.
	ref, err := r.kek.resolve()
	if err != nil {
		return err
	}
	if r.next == ref.uri {
		return usageErrorf("keys rotate-kek: --new names the KEK in use (from %s)", ref.source)
	}
	next, err := openKEK(ctx, r.s, kekRef{r.next, "--new"})
	if err != nil {
		return err
	}
	o, err := r.connect(ctx)
	if err != nil {
		return err
	}
	n, err := o.admin.RotateKEK(o.ctx, next)
	if err != nil {
		return o.close(ctx, fmt.Errorf("keys rotate-kek: %w", ownerError(err)))
	}
	r.s.printf("re-wrapped %d keysets and the KEK canary under the new KEK %s (was %s); row data is unchanged\n", n, next.ID, o.kek.ID)
	if err := o.close(ctx, nil); err != nil {
		return err
	}

	file, err := readSecrets(r.conn.secrets)
	switch {
	case err == nil && file.get(keyKEKURI) != "":
		if err := setSecret(r.conn.secrets, keyKEKURI, r.next); err != nil {
			return fmt.Errorf("the keysets are re-wrapped under the new KEK, but %w: set %s to the --new URI by hand", err, keyKEKURI)
		}
		r.s.printf("updated %s in %s\n", keyKEKURI, r.conn.secrets)
	case errors.Is(err, os.ErrNotExist) || err == nil:
		r.s.printf("set %s to the --new URI wherever tenantseal runs\n", keyKEKURI)
	default:
		return fmt.Errorf("the keysets are re-wrapped under the new KEK, but %w: set %s to the --new URI by hand", err, keyKEKURI)
	}
	if o.ref.source == "$"+keyKEKURI {
		r.s.printf("$%s still names the old KEK: change it\n", keyKEKURI)
	}
	r.s.info("now switch every process to the new KEK: one that still holds the old one fails to open keysets (keys.ErrKEK) as soon as its keyring cache expires\n")
	r.s.info("keep the old KEK while backups taken before now exist (their keysets are wrapped by it); then destroy it\n")
	return nil
}

// rotateTenantKEK gives one tenant a KEK of its own (bring your own key), moves it to another, or with
// --shared back to the shared KEK.
func (r *keysRun) rotateTenantKEK(ctx context.Context) error {
	var next *keys.KEK
	if !r.shared {
		var err error
		if next, err = openKEK(ctx, r.s, kekRef{r.next, "--new"}); err != nil {
			return err
		}
	}
	o, err := r.connect(ctx)
	if err != nil {
		return err
	}
	if err := requireTenant(ctx, o.conn, "keys rotate-kek", r.tenant); err != nil {
		return o.close(ctx, err)
	}
	if r.shared {
		err = o.admin.UseSharedKEK(o.ctx, r.tenant)
	} else {
		err = o.admin.UseTenantKEK(o.ctx, r.tenant, r.next, next)
	}
	if err != nil {
		return o.close(ctx, r.tenantError(r.tenant, err))
	}
	if r.shared {
		r.s.printf("tenant %s: keysets wrapped by the shared KEK %s; row data is unchanged\n", r.tenant, o.kek.ID)
	} else {
		r.s.printf("tenant %s: keysets wrapped by its own KEK %s; row data is unchanged\n", r.tenant, next.ID)
		r.s.info("every application process must be able to open that KEK by its URI (its KMS client and credentials); disabling the key in its KMS makes this tenant's data, and only this tenant's, unreadable\n")
	}
	return o.close(ctx, nil)
}
