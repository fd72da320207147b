ALTER TABLE tenantseal.tenants DROP COLUMN shredded_at;
DROP TABLE tenantseal.tenant_keys;
ALTER TABLE tenantseal.tenant_keysets DROP COLUMN primary_since, DROP COLUMN version;
DROP FUNCTION tenantseal.key_retire_wait();
DROP TABLE tenantseal.key_settings;
