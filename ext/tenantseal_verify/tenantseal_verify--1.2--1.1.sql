-- tenantseal_verify back to 1.1 (tenantseal's migration 0026 reverted).
\echo Use "ALTER EXTENSION tenantseal_verify UPDATE TO '1.1'" to load this file. \quit

DROP FUNCTION @extschema@.c_enter(pg_catalog.text);
