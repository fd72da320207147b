package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/authn"
	"github.com/tenantseal/tenantseal/authn/authntest"
	"github.com/tenantseal/tenantseal/examples/invoicing"
)

// serviceRead is the whole stack: the invoicing example service, on loopback, reads one customer per
// request (GET /v1/customers/{id}) for a caller with a signed access token of its tenant: the token
// verified (signature, issuer, audience, times), the tenant mapped through the registry, the signed
// context, the repository Get, the decryption, the JSON answer. The issuer serves only its discovery
// document and keys, on loopback; its signing key lives in this process.
func (ds *dataset) serviceRead() func(ctx context.Context, clients int) (op, func(), error) {
	return func(ctx context.Context, clients int) (op, func(), error) {
		var closers []func()
		cleanup := func() {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
		fail := func(err error) (op, func(), error) {
			cleanup()
			return nil, nil, fmt.Errorf("bench: service: %w", err)
		}
		idpLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		iss, err := authntest.NewIssuer("http://" + idpLn.Addr().String() + "/bench")
		if err != nil {
			idpLn.Close()
			return fail(err)
		}
		idp := &http.Server{Handler: iss.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go idp.Serve(idpLn)
		closers = append(closers, func() { idp.Close() })

		bindings := make([]authn.Binding, len(ds.tenants))
		for i, t := range ds.tenants {
			bindings[i] = authn.Binding{Tenant: t, Claim: t.String(), Issuers: []string{iss.URL()}}
		}
		reg, err := authn.NewStaticRegistry(bindings...)
		if err != nil {
			return fail(err)
		}
		envKey, err := authn.GenerateEnvelopeKey("bench")
		if err != nil {
			return fail(err)
		}
		dir, err := os.MkdirTemp("", "tenantseal-bench-service-")
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { os.RemoveAll(dir) })
		svc, err := invoicing.New(ctx, invoicing.Settings{
			AppDSN: ds.res.AppDSN, AuditDSN: ds.res.AuditWriterDSN,
			RolePrefix: strings.TrimSuffix(ds.res.Roles.Owner, "_owner"), ContextKey: ds.res.ContextKey, KEK: ds.kek,
			Issuers: []authn.Issuer{{URL: iss.URL(), Audiences: []string{"invoicing"},
				Claims: authn.ClaimMapping{Tenant: authn.ClaimPath{"org_id"}}}},
			Registry: reg, EnvelopeKey: envKey, AuditSpool: filepath.Join(dir, "audit.spool"),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { svc.Close(context.WithoutCancel(ctx)) })
		apiLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		api := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go api.Serve(apiLn)
		closers = append(closers, func() { api.Close() })
		base := "http://" + apiLn.Addr().String()
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
		closers = append(closers, client.CloseIdleConnections)

		// One token per tenant, minted again before it nears its expiry (authntest.DefaultLifetime).
		var mu sync.Mutex
		type minted struct {
			tok  string
			renw time.Time
		}
		tokens := map[tenantseal.TenantID]minted{}
		token := func(t tenantseal.TenantID) string {
			mu.Lock()
			defer mu.Unlock()
			if m, ok := tokens[t]; ok && time.Now().Before(m.renw) {
				return m.tok
			}
			m := minted{iss.Token("bench-user", "invoicing", map[string]any{"org_id": t.String()}), time.Now().Add(authntest.DefaultLifetime / 2)}
			tokens[t] = m
			return m.tok
		}
		o := func(ctx context.Context, rng *rand.Rand) error {
			t, id := ds.pick(rng)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/customers/"+id.String(), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+token(t))
			res, err := client.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if err == nil && res.StatusCode != http.StatusOK {
				err = fmt.Errorf("GET /v1/customers/{id}: %s", res.Status)
			}
			return err
		}
		// One request first: a service that does not answer fails the variant, not its measurement.
		if err := o(ctx, rand.New(rand.NewPCG(1, 2))); err != nil {
			return fail(fmt.Errorf("the first request: %w", err))
		}
		return o, cleanup, nil
	}
}
