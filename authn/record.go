package authn

import (
	"context"
	"errors"

	"github.com/tenantseal/tenantseal"

	"go.opentelemetry.io/otel/metric"
)

type sourceKey struct{}

// WithSource returns a copy of ctx naming the client that a request came from (an address), for the
// refusals recorded under it and for burst alerts. The middleware sets it from Config.Source; set it
// yourself before [Authenticator.Authenticate] for tokens that do not come over HTTP.
func WithSource(ctx context.Context, source string) context.Context {
	return context.WithValue(ctx, sourceKey{}, source)
}

func sourceFrom(ctx context.Context) string {
	s, _ := ctx.Value(sourceKey{}).(string)
	if s == "" {
		return "unknown"
	}
	return s
}

// kindOf is the event kind of a refusal.
func kindOf(err error) tenantseal.EventKind {
	switch {
	case errors.Is(err, ErrExpired):
		return tenantseal.EventAuthExpired
	case errors.Is(err, ErrUnknownTenant):
		return tenantseal.EventUnknownTenant
	case errors.Is(err, ErrIssuerMismatch):
		return tenantseal.EventIssuerMismatch
	case errors.Is(err, tenantseal.ErrTenantMismatch):
		return tenantseal.EventTenantMismatch
	case errors.Is(err, ErrStepUpRequired):
		return tenantseal.EventStepUpRefused
	case errors.Is(err, ErrEnvelope):
		return tenantseal.EventEnvelopeRefused
	}
	return tenantseal.EventAuthRefused
}

// refuse records a refusal and counts it for burst alerts. A token that failed before its signature
// verified names nobody: the event carries no Principal. One that failed after names its subject, and
// ErrUnavailable, which is no attempt, is not recorded.
func (a *Authenticator) refuse(ctx context.Context, err error) {
	if errors.Is(err, ErrUnavailable) {
		return
	}
	ev := tenantseal.Event{Kind: kindOf(err), Operation: "authenticate", Detail: err.Error() + "; source " + sourceFrom(ctx)}
	if te := (*TokenError)(nil); errors.As(err, &te) {
		ev.TargetTenant = te.Tenant
		if te.subject != "" {
			ctx = tenantseal.WithPrincipal(ctx, tenantseal.Principal{Subject: te.subject})
		}
	}
	a.record(ctx, ev)
}

// record records ev, counts it in tenantseal.authn.refusals and against the request's source.
func (a *Authenticator) record(ctx context.Context, ev tenantseal.Event) {
	a.refusals.Add(ctx, 1, metric.WithAttributes(AttrKind.String(string(ev.Kind))))
	a.cfg.Recorder.Record(ctx, ev)
	a.bursts.observe(ctx, sourceFrom(ctx), ev.Kind)
}
