package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/tenants"
)

// bindingFlags requires --issuer and --claim of `tenants bind|unbind`, checked as tenants.Bind checks
// them.
func bindingFlags(sub, issuer, claim string) error {
	if issuer == "" || claim == "" {
		return usageErrorf("tenants %s: --issuer URL and --claim VALUE are required", sub)
	}
	if err := tenants.CheckBinding(issuer, claim); err != nil {
		return usageErrorf("tenants %s: %s", sub, strings.TrimPrefix(err.Error(), tenants.ErrInvalidBinding.Error()+": "))
	}
	return nil
}

// bindTenant runs `tenants bind T --issuer URL --claim V`.
func bindTenant(ctx context.Context, s *session, conn *connFlags, id tenantseal.TenantID, issuer, claim string) error {
	c, log, err := ownerWithLog(ctx, s, conn, "tenants bind")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	err = tenants.Bind(asOperator(ctx), c, id, issuer, claim, tenants.Recording(log.w))
	switch {
	case errors.Is(err, tenants.ErrBound):
		err = fmt.Errorf("tenants bind: %s: run 'tenantseal tenants unbind' first", strings.TrimPrefix(err.Error(), "tenants: "))
	case err != nil:
		err = tenantError("bind", id, err)
	default:
		s.printf("tenant %s is bound to issuer %s by claim value %s\n", id, printable(issuer), printable(claim))
	}
	return log.close(ctx, err)
}

// unbindTenant runs `tenants unbind --issuer URL --claim V`.
func unbindTenant(ctx context.Context, s *session, conn *connFlags, issuer, claim string) error {
	c, log, err := ownerWithLog(ctx, s, conn, "tenants unbind")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	err = tenants.Unbind(asOperator(ctx), c, issuer, claim, tenants.Recording(log.w))
	switch {
	case errors.Is(err, tenants.ErrNotBound):
		err = fmt.Errorf("tenants unbind: %s (see 'tenantseal tenants bindings')", strings.TrimPrefix(err.Error(), "tenants: "))
	case err != nil:
		err = ownerError(err)
	default:
		s.printf("issuer %s names no tenant by claim value %s\n", printable(issuer), printable(claim))
	}
	return log.close(ctx, err)
}

// bindingJSON is one binding of `tenants bindings --format json`, schema tenantseal/tenant-bindings/v1.
type bindingJSON struct {
	Tenant    string    `json:"tenant"`
	Status    string    `json:"status"`
	Issuer    string    `json:"issuer"`
	Claim     string    `json:"claim"`
	CreatedAt time.Time `json:"created_at"`
}

// listBindings runs `tenants bindings [T]`.
func listBindings(ctx context.Context, s *session, conn *connFlags, asJSON bool, of []tenantseal.TenantID) error {
	c, err := ownerConnect(ctx, conn, "tenants bindings")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	bs, err := tenants.Bindings(ctx, c, of...)
	if err != nil {
		return ownerError(err)
	}
	refused, err := tenants.RefusedLookups(ctx, c)
	if err != nil {
		return ownerError(err)
	}
	if asJSON {
		doc := struct {
			Schema   string        `json:"schema"`
			Refused  int64         `json:"refused_lookups"`
			Bindings []bindingJSON `json:"bindings"`
		}{Schema: "tenantseal/tenant-bindings/v1", Refused: refused, Bindings: []bindingJSON{}}
		for _, b := range bs {
			doc.Bindings = append(doc.Bindings, bindingJSON{Tenant: b.Tenant.String(), Status: string(b.Status), Issuer: b.Issuer, Claim: b.Claim, CreatedAt: b.CreatedAt})
		}
		return writeJSON(s, doc)
	}
	tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSTATUS\tISSUER\tCLAIM\tCREATED_AT")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Tenant, b.Status, printable(b.Issuer), printable(b.Claim), b.CreatedAt.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s.printf("%d lookups found no active tenant bound\n", refused)
	return nil
}
