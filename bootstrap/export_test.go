package bootstrap

import "context"

// Steps are the steps of Run after which WithStepHook's hook is called, in order.
var Steps = []string{"roles", "database", "public schema", "migrate", "context key"}

// WithStepHook returns ctx with hook, which Run calls after each of Steps: an error it returns stops
// Run there.
func WithStepHook(ctx context.Context, hook func(step string) error) context.Context {
	return context.WithValue(ctx, stepHookKey{}, hook)
}
