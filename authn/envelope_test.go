package authn_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
)

func mustEnvelopeKey(t testing.TB, id string) authn.EnvelopeKey {
	t.Helper()
	k, err := authn.GenerateEnvelopeKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSealer(t testing.TB, cfg authn.SealerConfig) *authn.Sealer {
	t.Helper()
	s, err := authn.NewSealer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// queue is a job queue of the simplest kind.
type queue chan job

type job struct {
	envelope string
	payload  []byte
}

func TestEnvelope(t *testing.T) {
	t.Parallel()
	clk, rec := newClock(), &events{}
	k1, k2 := mustEnvelopeKey(t, "k1"), mustEnvelopeKey(t, "k2")
	sealer := mustSealer(t, authn.SealerConfig{Key: k1, Recorder: rec, Now: clk.Now, TTL: time.Hour})
	alice := tenantseal.Principal{Tenant: tenantA, Subject: "https://idp/#alice", Roles: []string{"clerk"},
		Auth: tenantseal.Authentication{Issuer: "https://idp/", AMR: []string{"mfa"}}}
	ctx := tenantseal.WithPrincipal(testContext(t), alice)
	payload := []byte(`{"invoice":"42","action":"issue"}`)

	q := make(queue, 1)
	env, err := sealer.Seal(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	q <- job{env, payload}

	// The worker: a context of its own, no Principal until the envelope opens.
	worker := testContext(t)
	j := <-q
	jobCtx, err := sealer.Open(worker, j.envelope, j.payload)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := tenantseal.PrincipalFrom(jobCtx)
	want := tenantseal.Principal{Tenant: tenantA, Subject: alice.Subject, Roles: alice.Roles} // no Auth: a job never elevates
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the job's Principal differs (-want +got):\n%s", diff)
	}

	parts := strings.Split(env, ".")
	claims := mustDecode(t, parts[1])
	retenanted := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(claims, tenantA.String(), tenantB.String(), 1))) + "." + parts[2]
	rotated := mustSealer(t, authn.SealerConfig{Key: k2, Previous: []authn.EnvelopeKey{k1}, Recorder: rec, Now: clk.Now})
	otherQueue := mustSealer(t, authn.SealerConfig{Key: k1, Audience: "reports", Recorder: rec, Now: clk.Now})
	stranger := mustSealer(t, authn.SealerConfig{Key: mustEnvelopeKey(t, "k1"), Recorder: rec, Now: clk.Now})
	tests := []struct {
		name     string
		sealer   *authn.Sealer
		envelope string
		payload  []byte
		advance  time.Duration
		reason   string // "" for opened
		target   tenantseal.TenantID
	}{
		{"after a key rotation, by the previous key", rotated, env, payload, 0, "", tenantseal.TenantID{}},
		{"tampered: another tenant", sealer, retenanted, payload, 0, "signature does not verify", tenantseal.TenantID{}},
		{"another job's payload", sealer, env, []byte(`{"invoice":"43","action":"issue"}`), 0, "sealed for another job", tenantA},
		{"another queue", otherQueue, env, payload, 0, "sealed for another queue", tenantA},
		{"a key of the same name but another secret", stranger, env, payload, 0, "signature does not verify", tenantseal.TenantID{}},
		{"not a JWS", sealer, "garbage", payload, 0, "not a compact JWS", tenantseal.TenantID{}},
		{"an access token", sealer, newWorld(t).userToken(nil), payload, 0, "not a compact JWS signed with HS256", tenantseal.TenantID{}},
		{"expired", sealer, env, payload, time.Hour + authn.DefaultSkew + time.Second, "expired", tenantA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk.Add(tc.advance)
			got, err := tc.sealer.Open(worker, tc.envelope, tc.payload)
			evs := rec.take()
			if tc.reason == "" {
				if err != nil || len(evs) != 0 {
					t.Fatalf("got %v and events %v, want opened, nothing recorded", err, kinds(evs))
				}
				return
			}
			if !errors.Is(err, authn.ErrEnvelope) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want ErrEnvelope with %q", err, tc.reason)
			}
			if _, ok := tenantseal.PrincipalFrom(got); ok {
				t.Error("the refused context carries a Principal")
			}
			if len(evs) != 1 || evs[0].Kind != tenantseal.EventEnvelopeRefused || evs[0].TargetTenant != tc.target {
				t.Errorf("got events %+v, want one envelope_refused naming %v", evs, tc.target)
			}
		})
	}
}

func TestSealRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := mustSealer(t, authn.SealerConfig{Key: mustEnvelopeKey(t, "k"), Recorder: w.events})
	staff := mustAuthenticate(t, w, w.staffToken(nil))
	for name, ctx := range map[string]context.Context{
		"no Principal":                 testContext(t),
		"a staff Principal, no tenant": staff,
	} {
		if _, err := s.Seal(ctx, nil); !errors.Is(err, tenantseal.ErrNoTenant) {
			t.Errorf("%s: got %v, want ErrNoTenant", name, err)
		}
	}
	for _, tc := range []struct {
		name   string
		id     string
		secret []byte
	}{
		{"short secret", "k", make([]byte, 31)},
		{"bad id", "K!", make([]byte, 32)},
	} {
		if _, err := authn.NewEnvelopeKey(tc.id, tc.secret); err == nil || !strings.HasPrefix(err.Error(), "authn: ") {
			t.Errorf("%s: got %v, want an authn error", tc.name, err)
		}
	}
	k := mustEnvelopeKey(t, "secret-id")
	for _, s := range []string{k.String(), k.GoString()} {
		if s != "EnvelopeKey(secret-id)" {
			t.Errorf("got %q, want the id only", s)
		}
	}
}
