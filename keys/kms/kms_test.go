package kms_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/internal/kmstest"
	"github.com/tenantseal/tenantseal/internal/pgtest"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/keys/kms"
	"github.com/tenantseal/tenantseal/keys/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The shipped clients reach a real AWS KMS API (the emulator, on loopback) with nothing but the SDK's
// standard environment, and a database's keysets move from a local KEK to a key held there.
func TestRotateFromALocalKEKToAWSKMS(t *testing.T) {
	emu := kmstest.Start(t)
	emu.Setenv(t)
	uri := emu.NewKey(t)
	ctx := pgtest.Context(t)
	clients := kms.Clients(ctx)

	d := pgtest.NewDatabase(t)
	localURI, err := keys.InitLocalKEK(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := keys.OpenKEK(ctx, localURI)
	if err != nil {
		t.Fatal(err)
	}
	owner := pgtest.Conn(t, d.OwnerDSN)
	pool := d.Pool(t)
	tenant, err := pgstore.NewAdmin(owner, local).CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	as := tenantseal.WithPrincipal(ctx, tenantseal.Principal{Tenant: tenant, Subject: "ada"})
	f := keys.Field{Table: "customers", Column: "email", Row: "1"}
	kr, err := keys.NewKeyring(keys.Config{KEK: local, Loader: pgstore.Loader(pool)})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := kr.Encrypt(as, f, []byte("ada@example.com"))
	if err != nil {
		t.Fatal(err)
	}

	remote, err := keys.OpenKEKWith(ctx, uri, clients...)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := pgstore.NewAdmin(owner, local).RotateKEK(ctx, remote); err != nil || n != 2 {
		t.Fatalf("rotate-kek to the KMS: got %d (%v), want 2 keysets", n, err)
	}
	// A fresh process that opens the KMS key by URI, as the CLI and the application do.
	again, err := keys.OpenKEKWith(ctx, uri, kms.Clients(ctx)...)
	if err != nil || again.ID != remote.ID {
		t.Fatalf("open again: got %v (%v), want the same KEK id %s", again, err, remote.ID)
	}
	if err := pgstore.CheckKEK(as, pool, again); err != nil {
		t.Errorf("CheckKEK with the KMS key: %v", err)
	}
	if err := pgstore.CheckKEK(as, pool, local); !errors.Is(err, keys.ErrKEK) {
		t.Errorf("CheckKEK with the old local key: got %v, want ErrKEK", err)
	}
	kr2, err := keys.NewKeyring(keys.Config{KEK: again, Loader: pgstore.Loader(pool)})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := kr2.Decrypt(as, f, ct); err != nil || string(pt) != "ada@example.com" {
		t.Fatalf("decrypt under the KMS KEK: got %q (%v), want the value written under the local one", pt, err)
	}

	// Revoked in the KMS: the keysets no longer open, and nothing of the ARN shows.
	emu.DisableKey(t, uri)
	kr3, err := keys.NewKeyring(keys.Config{KEK: again, Loader: pgstore.Loader(pool)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = kr3.Decrypt(as, f, ct)
	if !errors.Is(err, keys.ErrKEK) && !errors.Is(err, keys.ErrKeysetTampered) {
		t.Errorf("after the key was disabled: got %v, want the keysets refused", err)
	}
	if err != nil && strings.Contains(err.Error(), kmstest.Account) {
		t.Errorf("error %q names the account", err)
	}
}

func TestClientsServeTheirSchemes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		client keys.KMSClient
		yes    []string
		no     []string
	}{
		{kms.AWS(ctx), []string{"aws-kms://arn:aws:kms:eu-west-1:1:key/k", "AWS-KMS://arn:aws:kms:eu-west-1:1:key/k"}, []string{"gcp-kms://x", "hcvault://h/k"}},
		{kms.GCP(ctx), []string{"gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k"}, []string{"aws-kms://arn"}},
		{kms.Vault(ctx), []string{"hcvault://vault:8200/transit/keys/k"}, []string{"local-keyset:///x"}},
	} {
		for _, u := range tc.yes {
			if !tc.client.Supported(u) {
				t.Errorf("%T: does not support %s", tc.client, u)
			}
		}
		for _, u := range tc.no {
			if tc.client.Supported(u) {
				t.Errorf("%T: supports %s", tc.client, u)
			}
		}
	}
	_, err := keys.OpenKEKWith(ctx, "aws-kms://not-an-arn/secret-name", kms.Clients(ctx)...)
	if !errors.Is(err, keys.ErrKEK) || strings.Contains(err.Error(), "secret-name") {
		t.Errorf("a malformed ARN: got %v, want ErrKEK without the URI", err)
	}
}
