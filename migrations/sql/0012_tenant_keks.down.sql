DROP TABLE tenantseal.tenant_keks;
