ALTER TABLE tenantseal.tenants SET SCHEMA public;
