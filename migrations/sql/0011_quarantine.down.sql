DROP TABLE tenantseal.quarantine;
