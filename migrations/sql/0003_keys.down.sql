DROP TABLE tenantseal.encrypted_columns;
DROP TABLE tenantseal.kek_canary;
DROP TABLE tenantseal.tenant_keysets;
