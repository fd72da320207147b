-- tenantseal_verify back to 1.0 (tenantseal's migration 0021 reverted).
\echo Use "ALTER EXTENSION tenantseal_verify UPDATE TO '1.0'" to load this file. \quit

DROP FUNCTION @extschema@.c_current_tenant_key();
