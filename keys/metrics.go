package keys

import (
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the instrumentation scope of the Keyring's instruments.
const MeterName = "github.com/tenantseal/tenantseal/keys"

// Attributes of tenantseal.keys.unwraps: the keyset's purpose (PurposeAEAD, PurposePRF), which KEK
// unwrapped it ("shared", or "own" for a tenant's own KEK) and the outcome ("ok", "error"). Never the
// tenant, the KEK's id or URI, or anything of a key.
const (
	AttrPurpose = attribute.Key("tenantseal.key.purpose")
	AttrKEK     = attribute.Key("tenantseal.kek")
	AttrOutcome = attribute.Key("tenantseal.outcome")
)

func newUnwrapCounter(mp metric.MeterProvider) (metric.Int64Counter, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	c, err := mp.Meter(MeterName).Int64Counter("tenantseal.keys.unwraps", metric.WithUnit("{keyset}"),
		metric.WithDescription("Tenant keysets unwrapped with a KEK (cache misses), by purpose, KEK and outcome."))
	if err != nil {
		return nil, fmt.Errorf("keys: metrics: %w", err)
	}
	return c, nil
}
