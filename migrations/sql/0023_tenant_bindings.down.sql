-- Reverting drops the tenants' identity bindings (migrations.LossBindings) and forgets which staff
-- tokens were spent.
DROP FUNCTION tenantseal.spend_token(text, text, interval);
DROP TABLE tenantseal.spent_tokens;
DROP FUNCTION tenantseal.tenant_binding(text, text);
DROP SEQUENCE tenantseal.binding_refusals;
DROP TABLE tenantseal.tenant_bindings;
