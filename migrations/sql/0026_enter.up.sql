-- The tenant context of a scoped statement in one call: tenantseal.c_enter(token) (tenantseal_verify
-- 1.2) sets tenantseal.context to the token for the transaction, as set_config('tenantseal.context',
-- token, true) does, and does what RESET ALL does when the transaction commits. A pooled statement is
-- then two protocol statements, c_enter and the application's, instead of three (set_config, the
-- statement, RESET ALL), and still leaves nothing of the session's settings to the next user of the
-- connection.
--
--   * An installed tenantseal_verify is updated to 1.2 where the server has it. A self-hosted server
--     whose build is older keeps what it has, with a WARNING, and has no c_enter (make install in
--     ext/tenantseal_verify, then migrate down to 25 and up again; or, as the owner, ALTER EXTENSION
--     tenantseal_verify UPDATE and SELECT tenantseal.select_verifier(), which grants it when it
--     selects the C verifier).
--   * The app role may EXECUTE c_enter wherever it may execute the other C functions: granted here,
--     whichever verifier is selected, and by select_verifier whenever it selects the C one. It gives
--     the app role nothing it could not do already: RESET ALL and set_config are everyone's.

-- select_verifier as migration 21 made it, and c_enter granted with the other C functions.
CREATE OR REPLACE FUNCTION tenantseal.select_verifier(prefer text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    app name := tenantseal.role_name('app');
    owner oid := (SELECT proowner FROM pg_proc WHERE oid = 'tenantseal.current_tenant()'::regprocedure);
    ext oid := (SELECT oid FROM pg_extension WHERE extname = 'tenantseal_verify');
    foreign_owner text;
    choice text;
    tbl regclass;
BEGIN
    prefer := coalesce(prefer, nullif(current_setting('tenantseal.verifier', true), ''));
    IF prefer IS NOT NULL AND prefer NOT IN ('c', 'plpgsql') THEN
        RAISE EXCEPTION 'tenantseal: no verifier %: choose c or plpgsql', prefer USING ERRCODE = '22023';
    END IF;
    IF ext IS NOT NULL THEN
        SELECT string_agg(DISTINCT p.proowner::regrole::text, ', ') INTO foreign_owner
          FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
         WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext
           AND d.deptype = 'e' AND p.proowner <> owner
           AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = p.proowner);
    END IF;
    IF prefer = 'c' AND ext IS NULL THEN
        RAISE EXCEPTION 'tenantseal: the C verifier is not installed in this database: CREATE EXTENSION tenantseal_verify (make install in ext/tenantseal_verify first)'
            USING ERRCODE = '58P01';
    END IF;
    IF ext IS NOT NULL AND foreign_owner IS NOT NULL THEN
        IF prefer = 'c' THEN
            RAISE EXCEPTION 'tenantseal: the functions of tenantseal_verify belong to % instead of the owner of tenantseal.current_tenant(): whoever owns them could pin the tenant context', foreign_owner
                USING ERRCODE = '42501';
        END IF;
        RAISE WARNING 'tenantseal: not using the C verifier: the functions of tenantseal_verify belong to % instead of the owner of tenantseal.current_tenant(); reinstall the extension as that owner', foreign_owner;
    END IF;
    choice := CASE WHEN ext IS NOT NULL AND foreign_owner IS NULL AND prefer IS DISTINCT FROM 'plpgsql' THEN 'c' ELSE 'plpgsql' END;

    IF choice = 'c' THEN
        FOREACH tbl IN ARRAY ARRAY['tenantseal.context_keys', 'tenantseal.tenants', 'tenantseal.settings']::regclass[] LOOP
            IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'verifier_invalidate') THEN
                EXECUTE format('CREATE TRIGGER verifier_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION tenantseal.c_invalidate_verifier()', tbl);
            END IF;
            IF (SELECT tgenabled FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'verifier_invalidate') <> 'A' THEN
                EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER verifier_invalidate', tbl);
            END IF;
        END LOOP;
        IF (SELECT proowner FROM pg_proc WHERE oid = 'tenantseal.c_current_tenant()'::regprocedure) = owner THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.c_current_tenant(), tenantseal.c_elevated() TO %I', app);
        END IF;
        CREATE OR REPLACE FUNCTION tenantseal.current_tenant() RETURNS uuid LANGUAGE sql STABLE
            BEGIN ATOMIC SELECT tenantseal.c_current_tenant(); END;
        CREATE OR REPLACE FUNCTION tenantseal.elevated() RETURNS boolean LANGUAGE sql STABLE
            BEGIN ATOMIC SELECT tenantseal.c_elevated(); END;
        -- The tenant's key from the same cache entry, where the extension has it (1.1 and later).
        IF to_regprocedure('tenantseal.c_current_tenant_key()') IS NOT NULL THEN
            IF (SELECT proowner FROM pg_proc WHERE oid = 'tenantseal.c_current_tenant_key()'::regprocedure) = owner THEN
                EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.c_current_tenant_key() TO %I', app);
            END IF;
            EXECUTE 'CREATE OR REPLACE FUNCTION tenantseal.current_tenant_key() RETURNS text LANGUAGE sql STABLE BEGIN ATOMIC SELECT tenantseal.c_current_tenant_key(); END';
        ELSE
            EXECUTE format('CREATE OR REPLACE FUNCTION tenantseal.current_tenant_key() RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                (SELECT prosrc FROM pg_proc WHERE oid = 'tenantseal.plpgsql_current_tenant_key()'::regprocedure));
        END IF;
        -- c_enter, which scoped statements start with, where the extension has it (1.2 and later).
        IF (SELECT proowner FROM pg_proc WHERE oid = to_regprocedure('tenantseal.c_enter(text)')) = owner THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.c_enter(text) TO %I', app);
        END IF;
    ELSE
        -- The plpgsql bodies themselves, with the owner's rights: no second function call per statement.
        EXECUTE format('CREATE OR REPLACE FUNCTION tenantseal.current_tenant() RETURNS uuid LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
            (SELECT prosrc FROM pg_proc WHERE oid = 'tenantseal.plpgsql_current_tenant()'::regprocedure));
        EXECUTE format('CREATE OR REPLACE FUNCTION tenantseal.elevated() RETURNS boolean LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
            (SELECT prosrc FROM pg_proc WHERE oid = 'tenantseal.plpgsql_elevated()'::regprocedure));
        EXECUTE format('CREATE OR REPLACE FUNCTION tenantseal.current_tenant_key() RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
            (SELECT prosrc FROM pg_proc WHERE oid = 'tenantseal.plpgsql_current_tenant_key()'::regprocedure));
        -- Nothing of the extension stays in use: it can be dropped.
        FOREACH tbl IN ARRAY ARRAY['tenantseal.context_keys', 'tenantseal.tenants', 'tenantseal.settings']::regclass[] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS verifier_invalidate ON %s', tbl);
        END LOOP;
    END IF;
    RETURN choice;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.select_verifier(text) FROM PUBLIC;

DO $$
BEGIN
    IF (SELECT extversion FROM pg_extension WHERE extname = 'tenantseal_verify') IN ('1.0', '1.1') THEN
        IF EXISTS (SELECT 1 FROM pg_available_extension_versions WHERE name = 'tenantseal_verify' AND version = '1.2') THEN
            BEGIN
                ALTER EXTENSION tenantseal_verify UPDATE TO '1.2';
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING 'tenantseal: tenantseal_verify could not be updated to 1.2 (%): tenantseal.c_enter() is not available', SQLERRM;
            END;
        ELSE
            RAISE WARNING 'tenantseal: the server''s tenantseal_verify has no version 1.2 (make install in ext/tenantseal_verify): tenantseal.c_enter() is not available';
        END IF;
    END IF;
    -- As migration 20 does for the others: granted now, whichever verifier is selected.
    IF (SELECT proowner FROM pg_proc WHERE oid = to_regprocedure('tenantseal.c_enter(text)')) = (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.c_enter(text) TO %I', tenantseal.role_name('app'));
    END IF;
    PERFORM tenantseal.select_verifier();
END $$;
