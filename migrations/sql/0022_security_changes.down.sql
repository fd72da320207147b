-- Reverts 0022. The event triggers that bootstrap installed belong to a superuser: run as the owner,
-- this refuses while they exist, naming the statements a superuser runs first. The chain keeps every
-- entry recorded; the recorded security state goes, and a new baseline is recorded after 0022 again.
DO $$
DECLARE
    t text := (SELECT string_agg(format('DROP EVENT TRIGGER %I;', evtname), ' ' ORDER BY evtname) FROM pg_event_trigger
                WHERE evtfoid IN ('tenantseal.audit_ddl()'::regprocedure, 'tenantseal.audit_ddl_drop()'::regprocedure));
BEGIN
    IF t IS NULL THEN
        RETURN;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'tenantseal: the event triggers that record DDL belong to a superuser: as one, run % in this database, then revert again', t
            USING ERRCODE = '42501';
    END IF;
    EXECUTE t;
END $$;
DROP FUNCTION tenantseal.security_watch(text);
DROP FUNCTION tenantseal.audit_ddl_drop();
DROP FUNCTION tenantseal.audit_ddl();
DROP FUNCTION tenantseal.security_ddl_recorded();
DROP FUNCTION tenantseal.security_compare(text, jsonb, jsonb);
DROP FUNCTION tenantseal.security_snapshot();
DROP FUNCTION tenantseal.security_roles();
DROP FUNCTION tenantseal.security_relation(oid);
DROP TABLE tenantseal.security_state;
