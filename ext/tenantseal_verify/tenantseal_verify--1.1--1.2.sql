-- tenantseal_verify 1.2: c_enter(token), the tenant context of a pooled statement in one call:
-- tenantseal.context set to token for the transaction, and what RESET ALL does when the transaction
-- commits (tenantseal's migration 0026 grants it to the app role). Not STRICT: NULL is the empty context.
\echo Use "ALTER EXTENSION tenantseal_verify UPDATE TO '1.2'" to load this file. \quit

CREATE FUNCTION @extschema@.c_enter(token pg_catalog.text) RETURNS pg_catalog.void
    AS 'MODULE_PATHNAME', 'ts_enter' LANGUAGE c VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION @extschema@.c_enter(pg_catalog.text) FROM PUBLIC;
ALTER FUNCTION @extschema@.c_enter(pg_catalog.text) OWNER TO @extowner@;
