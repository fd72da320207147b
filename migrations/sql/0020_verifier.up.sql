-- The verifier of the tenant context, fast: in C where the server has the extension tenantseal_verify
-- (ext/tenantseal_verify; `make install` on a self-hosted server, built into the local image), in
-- plpgsql everywhere else (managed PostgreSQL, where no custom C can be installed). Both answer exactly
-- alike for every token, and raise the same TS401: the C one accepts only what it verified itself and
-- hands every other value to the plpgsql one.
--
--   * tenantseal.select_verifier() (run here, and after installing or before dropping the extension)
--     makes tenantseal.current_tenant() and tenantseal.elevated(), which the policies call, either
--     one-line SQL functions that the planner inlines into a call of the C functions, or SECURITY
--     DEFINER copies of plpgsql_current_tenant() and plpgsql_elevated(). No policy changes.
--   * plpgsql_current_tenant(): the key and the tenant's status in one query per statement (migration 7
--     runs two), the tenant id cast once (an InitPlan) after a regular expression admitted it, and the
--     signature compared as lower-case hex, as verify_token's grammar has it, so that a forged signature
--     that is not hex is refused with TS401 like any other (decode() raised 22023 for it, uncounted).
--   * The extension is installed here when the server offers it: CREATE EXTENSION needs CREATE on the
--     database, which its owner has; the extension is trusted, so its script runs as the bootstrap
--     superuser and hands its functions to this owner. It is used only when its functions belong to the
--     owner of tenantseal.current_tenant() or to a superuser: whoever owns them could pin the tenant
--     context with ALTER FUNCTION ... SET.
--   * The C verifier caches what it verified, per backend: the statement triggers below drop those
--     caches on every backend when the keys, the tenants or the settings change (enabled ALWAYS, so
--     that session_replication_role does not silence them). Without them it caches nothing.

-- plpgsql_current_tenant is the plpgsql verifier: the tenant whose rows the statement may see and
-- write; under an elevation, the tenant of the support case, in a read-only transaction. NULL without
-- a context. A valid signed token of an active tenant is checked in one query; every other value goes
-- through verify_token, which raises TS401 with the precise reason. It runs with its caller's rights:
-- select_verifier copies its body into tenantseal.current_tenant() (SECURITY DEFINER) when the C
-- verifier is not used, and the C verifier runs it as its owner for every value it does not accept
-- itself. Only the owner may call it.
CREATE FUNCTION tenantseal.plpgsql_current_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tok text := current_setting('tenantseal.context', true);
    p text[] := string_to_array(tok, '.');
    r uuid;
BEGIN
    IF cardinality(p) = 7 AND p[1] = 'v1' AND length(p[7]) = 64 THEN
        -- One query: the key, and the tenant's status looked up by an id that is cast once (an
        -- InitPlan), after the regular expression admitted it. Then, in this order and each only once
        -- the ones before held, so that no field the signer did not write is cast: the status, the
        -- signature (which means the signer, who holds the key, wrote every field), the expiry, and
        -- for an elevation a READ ONLY transaction.
        SELECT CASE WHEN t.status = 'active'
                     AND encode(sha256(ck.opad || sha256(ck.ipad || convert_to(left(tok, -65), 'UTF8'))), 'hex') = p[7]
                     AND to_timestamp(p[4]::bigint) > now()
                     AND (strpos(p[5], 'e') = 0 OR current_setting('transaction_read_only') = 'on')
                    THEN t.id END
          INTO r
          FROM tenantseal.context_keys ck
          LEFT JOIN tenantseal.tenants t
            ON t.id = (SELECT CASE WHEN p[3] ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN p[3]::uuid END)
         WHERE ck.kid = p[2] AND (ck.not_after IS NULL OR ck.not_after > now());
        IF r IS NOT NULL THEN
            RETURN r;
        END IF;
    ELSIF tok IS NULL OR tok = '' THEN
        RETURN NULL;
    ELSIF p[1] = 'u1' AND cardinality(p) = 2
       AND p[2] ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       AND (SELECT allow_unsigned FROM tenantseal.settings)
       AND (SELECT t.status FROM tenantseal.tenants t WHERE t.id = (SELECT p[2]::uuid)) = 'active' THEN
        -- The explicit unsigned mode (a plain id), only when an owner allowed it.
        RETURN p[2]::uuid;
    END IF;
    RETURN (tenantseal.verify_token(tok)).tenant_id;
END $$;

-- plpgsql_elevated is the plpgsql verifier of tenantseal.elevated(): true under a valid, unexpired
-- elevation claim in a read-only transaction. Copied and run as plpgsql_current_tenant is.
CREATE FUNCTION tenantseal.plpgsql_elevated() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tok text := current_setting('tenantseal.context', true);
BEGIN
    -- Cheap refusal for ordinary tokens: the flags field carries no 'e'.
    IF tok IS NULL OR split_part(tok, '.', 5) !~ 'e' THEN
        RETURN false;
    END IF;
    RETURN coalesce((tenantseal.verify_token(tok)).elevated, false);
END $$;

REVOKE EXECUTE ON FUNCTION tenantseal.plpgsql_current_tenant(), tenantseal.plpgsql_elevated() FROM PUBLIC;

-- verifier names the implementation that tenantseal.current_tenant() runs: 'c' (the extension
-- tenantseal_verify) or 'plpgsql'. db.Open reports it.
CREATE FUNCTION tenantseal.verifier() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN EXISTS (
        SELECT 1 FROM pg_depend d
         WHERE d.classid = 'pg_proc'::regclass AND d.objid = 'tenantseal.current_tenant()'::regprocedure
           AND d.refclassid = 'pg_proc'::regclass AND d.refobjid = to_regprocedure('tenantseal.c_current_tenant()'))
    THEN 'c' ELSE 'plpgsql' END
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.verifier() FROM PUBLIC;

-- select_verifier points tenantseal.current_tenant() and tenantseal.elevated() at the C verifier when
-- the extension tenantseal_verify is installed and its functions belong to the owner of
-- tenantseal.current_tenant() or a superuser, and at the plpgsql one otherwise, or as prefer ('c',
-- 'plpgsql') says ('c' fails without a usable extension); without prefer, as the setting
-- tenantseal.verifier says when set (ALTER DATABASE ... SET tenantseal.verifier = 'plpgsql' keeps the
-- plpgsql verifier through every migration). It returns the choice. Run it after CREATE EXTENSION
-- tenantseal_verify, and with 'plpgsql' before DROP EXTENSION.
CREATE FUNCTION tenantseal.select_verifier(prefer text DEFAULT NULL) RETURNS text
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
    ELSE
        -- The plpgsql bodies themselves, with the owner's rights: no second function call per statement.
        EXECUTE format('CREATE OR REPLACE FUNCTION tenantseal.current_tenant() RETURNS uuid LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
            (SELECT prosrc FROM pg_proc WHERE oid = 'tenantseal.plpgsql_current_tenant()'::regprocedure));
        EXECUTE format('CREATE OR REPLACE FUNCTION tenantseal.elevated() RETURNS boolean LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
            (SELECT prosrc FROM pg_proc WHERE oid = 'tenantseal.plpgsql_elevated()'::regprocedure));
        -- Nothing of the extension stays in use: it can be dropped.
        FOREACH tbl IN ARRAY ARRAY['tenantseal.context_keys', 'tenantseal.tenants', 'tenantseal.settings']::regclass[] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS verifier_invalidate ON %s', tbl);
        END LOOP;
    END IF;
    RETURN choice;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.select_verifier(text) FROM PUBLIC;

DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.verifier() TO %I', app);
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'tenantseal_verify')
       AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'tenantseal_verify') THEN
        BEGIN
            CREATE EXTENSION tenantseal_verify;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'tenantseal: the C verifier tenantseal_verify is on the server but could not be installed (%): using the plpgsql verifier', SQLERRM;
        END;
    END IF;
    -- The app role calls the C functions once they are selected; granted now, whichever is selected.
    IF (SELECT proowner FROM pg_proc WHERE oid = to_regprocedure('tenantseal.c_current_tenant()')) = (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.c_current_tenant(), tenantseal.c_elevated() TO %I', app);
    END IF;
    -- Which one: SELECT tenantseal.verifier(), or db.Pool.Verifier().
    PERFORM tenantseal.select_verifier();
END $$;
