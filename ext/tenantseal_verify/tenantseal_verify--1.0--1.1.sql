-- tenantseal_verify 1.1: c_current_tenant_key(), the key of the verified tenant (tenantseal's migration
-- 0021 points tenantseal.current_tenant_key() at it, for tenant columns that are not uuids).
\echo Use "ALTER EXTENSION tenantseal_verify UPDATE TO '1.1'" to load this file. \quit

CREATE FUNCTION @extschema@.c_current_tenant_key() RETURNS pg_catalog.text
    AS 'MODULE_PATHNAME', 'ts_current_tenant_key' LANGUAGE c STABLE;
REVOKE ALL ON FUNCTION @extschema@.c_current_tenant_key() FROM PUBLIC;
ALTER FUNCTION @extschema@.c_current_tenant_key() OWNER TO @extowner@;
