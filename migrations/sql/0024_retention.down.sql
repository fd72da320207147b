-- Reverting drops the retention policies and the tenants' regions, policies and deletion dates
-- (migrations.LossRetention).
DROP TRIGGER tenant_deleted_at ON tenantseal.tenants;
DROP FUNCTION tenantseal.tenant_deleted_at();
ALTER TABLE tenantseal.tenants DROP COLUMN deleted_at;
DROP TABLE tenantseal.tenant_governance;
DROP TABLE tenantseal.retention_rules;
DROP FUNCTION tenantseal.retention_rule_check();
DROP TABLE tenantseal.retention_policies;
