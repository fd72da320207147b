package authn

import (
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the instrumentation scope of the Authenticator's instruments.
const MeterName = "github.com/tenantseal/tenantseal/authn"

// AttrKind is the attribute of tenantseal.authn.refusals: the refusal's event kind
// (tenantseal.EventAuthRefused, EventAuthExpired, EventTenantMismatch, ...). Never the token, its
// subject, its issuer or a tenant.
const AttrKind = attribute.Key("tenantseal.event.kind")

func newRefusalCounter(mp metric.MeterProvider) (metric.Int64Counter, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	c, err := mp.Meter(MeterName).Int64Counter("tenantseal.authn.refusals", metric.WithUnit("{refusal}"),
		metric.WithDescription("Requests and tokens refused by authentication, by kind."))
	if err != nil {
		return nil, fmt.Errorf("authn: metrics: %w", err)
	}
	return c, nil
}
