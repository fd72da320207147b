-- tenantseal_verify 1.0. Installed by tenantseal's migration 0020 (CREATE EXTENSION tenantseal_verify as
-- the owner of the database); tenantseal.select_verifier() then points tenantseal.current_tenant() and
-- tenantseal.elevated() at the functions below. Every name is schema-qualified: this script may run as
-- the bootstrap superuser on behalf of a non-superuser (trusted).
\echo Use "CREATE EXTENSION tenantseal_verify" to load this file. \quit

-- The tenant of the session's valid tenant context, NULL without one; TS401 otherwise (see
-- tenantseal.current_tenant()).
CREATE FUNCTION @extschema@.c_current_tenant() RETURNS pg_catalog.uuid
    AS 'MODULE_PATHNAME', 'ts_current_tenant' LANGUAGE c STABLE;

-- Whether the session's tenant context is a valid elevation (see tenantseal.elevated()).
CREATE FUNCTION @extschema@.c_elevated() RETURNS pg_catalog.bool
    AS 'MODULE_PATHNAME', 'ts_elevated' LANGUAGE c STABLE;

-- The statement trigger on tenantseal.context_keys, tenantseal.tenants and tenantseal.settings that
-- drops what every backend cached from them.
CREATE FUNCTION @extschema@.c_invalidate_verifier() RETURNS pg_catalog.trigger
    AS 'MODULE_PATHNAME', 'ts_invalidate' LANGUAGE c;

-- This backend's cache counters: hits, tokens verified here, values handed to the plpgsql verifier,
-- entries, capacity, and whether caching is on.
CREATE FUNCTION @extschema@.c_verifier_stats(OUT hits pg_catalog.int8, OUT verified pg_catalog.int8,
    OUT delegated pg_catalog.int8, OUT entries pg_catalog.int4, OUT capacity pg_catalog.int4, OUT caching pg_catalog.bool)
    AS 'MODULE_PATHNAME', 'ts_stats' LANGUAGE c VOLATILE;

REVOKE ALL ON FUNCTION @extschema@.c_current_tenant(), @extschema@.c_elevated(), @extschema@.c_verifier_stats() FROM PUBLIC;
ALTER FUNCTION @extschema@.c_current_tenant() OWNER TO @extowner@;
ALTER FUNCTION @extschema@.c_elevated() OWNER TO @extowner@;
ALTER FUNCTION @extschema@.c_invalidate_verifier() OWNER TO @extowner@;
ALTER FUNCTION @extschema@.c_verifier_stats() OWNER TO @extowner@;
