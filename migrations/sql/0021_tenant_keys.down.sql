-- Tenant keys of uuid only again, in columns named tenant_id, and protect_table as migration 8 made
-- it. Refused while a table is protected on a tenant column of another name or type, or a registry is
-- adopted, or while a tenant's key is not its uuid id: unprotect and release those first (tenantseal
-- adopt's down files do). It loses no data.
DO $$
DECLARE
    odd text;
BEGIN
    SELECT string_agg(format('%s (%s)', relid, tenant_column), ', ') INTO odd FROM tenantseal.tenant_tables
     WHERE tenant_column <> 'tenant_id'
        OR (SELECT atttypid FROM pg_attribute WHERE attrelid = relid AND attname = tenant_column) <> 'uuid'::regtype;
    IF odd IS NOT NULL THEN
        RAISE EXCEPTION 'tenantseal: cannot revert migration 21 while % are protected on a tenant column other than a uuid tenant_id: run tenantseal.unprotect_table on them first', odd
            USING ERRCODE = '55000';
    END IF;
    IF (SELECT registry FROM tenantseal.settings) IS NOT NULL THEN
        RAISE EXCEPTION 'tenantseal: cannot revert migration 21 while % is the adopted registry: run tenantseal.release_registry first', (SELECT registry FROM tenantseal.settings)
            USING ERRCODE = '55000';
    END IF;
    IF EXISTS (SELECT 1 FROM tenantseal.tenants WHERE key <> id::text) THEN
        RAISE EXCEPTION 'tenantseal: cannot revert migration 21: % tenants have keys that are not uuids, which only this migration can name', (SELECT count(*) FROM tenantseal.tenants WHERE key <> id::text)
            USING ERRCODE = '55000', HINT = 'nothing was changed; a revert would leave their rows and keysets without a tenant id';
    END IF;
END $$;

-- audit_append as migration 9 made it.
CREATE OR REPLACE FUNCTION tenantseal.audit_append(events jsonb) RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    max_events constant int := 1000;
    max_checks constant int := 100;
    checks int := 0;
    h record;
    e jsonb;
    l tenantseal.audit_log;
    n bigint;
    foreign_id boolean;
    tbl regclass;
    row_id uuid;
BEGIN
    IF jsonb_typeof(events) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'tenantseal: audit_append takes a JSON array' USING ERRCODE = '22023';
    END IF;
    IF jsonb_array_length(events) > max_events THEN
        RAISE EXCEPTION 'tenantseal: audit_append takes at most % events per call, got %', max_events, jsonb_array_length(events)
            USING ERRCODE = '54000';
    END IF;
    SELECT seq, hash INTO h FROM tenantseal.audit_head FOR UPDATE;
    FOR e IN SELECT * FROM jsonb_array_elements(events) LOOP
        l := jsonb_populate_record(NULL::tenantseal.audit_log, e);
        IF l.kind IS NULL OR l.kind = '' THEN
            RAISE EXCEPTION 'tenantseal: audit event without a kind' USING ERRCODE = '22023';
        END IF;
        l.event_id := coalesce(l.event_id, gen_random_uuid());
        -- The database's clock dates the entry; what the writer said (its "at") is kept, never later.
        l.reported_at := CASE WHEN l.at IS NOT NULL THEN date_trunc('microseconds', least(l.at, clock_timestamp())) END;
        l.at := date_trunc('microseconds', clock_timestamp());
        foreign_id := false;
        IF l.kind = 'lookup_miss' THEN
            IF checks < max_checks THEN
                checks := checks + 1;
                BEGIN
                    tbl := to_regclass(l.table_name);
                    row_id := l.row_key::uuid;
                    foreign_id := tbl IS NOT NULL AND tenantseal.exists_elsewhere(tbl, row_id, l.tenant_id);
                EXCEPTION WHEN OTHERS THEN
                    -- Not a table or an id the probe can answer for: nothing to tell.
                    foreign_id := false;
                END;
                IF NOT foreign_id THEN
                    -- Nobody's id (or no table to look in): an ordinary miss, not an attempt.
                    CONTINUE;
                END IF;
                l.kind := 'foreign_id';
                l.table_name := tbl::text;
            ELSE
                l.detail := left(coalesce(l.detail || '; ', '') || format('not checked: more than %s lookup misses in one append', max_checks), 2048);
            END IF;
        END IF;
        l.seq := h.seq + 1;
        l.prev_hash := h.hash;
        l.hash := sha256(h.hash || tenantseal.audit_canonical(l));
        -- An event already stored (a replayed batch) inserts nothing and leaves the head where it was.
        INSERT INTO tenantseal.audit_log VALUES (l.*) ON CONFLICT (event_id) DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 1 THEN
            h.seq := l.seq;
            h.hash := l.hash;
            IF foreign_id THEN
                RETURN NEXT l.event_id;
            END IF;
        END IF;
    END LOOP;
    UPDATE tenantseal.audit_head SET seq = h.seq, hash = h.hash;
    RETURN;
END $$;
DROP FUNCTION tenantseal.exists_elsewhere(regclass, text, text);
DROP FUNCTION tenantseal.row_key_column(regclass, name);
DROP FUNCTION tenantseal.release_registry(regclass);
DROP FUNCTION tenantseal.adopt_registry(regclass, name, name);
DROP FUNCTION tenantseal.register_tenant();
DROP FUNCTION tenantseal.unprotect_table(regclass);
DROP FUNCTION tenantseal.protect_table(regclass, boolean, name);
DROP FUNCTION tenantseal.tenant_condition(regclass, name);
DROP FUNCTION tenantseal.opaque_key(text);
CREATE FUNCTION tenantseal.protect_table(tbl regclass, hide_statistics boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    app name := tenantseal.role_name('app');
    n text := (SELECT relname FROM pg_class WHERE oid = tbl);
    cond text := 'tenant_id = (SELECT tenantseal.current_tenant())';
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY %I ON %s FOR SELECT TO %I USING (%s)', n || '_select', tbl, app, cond);
    EXECUTE format('CREATE POLICY %I ON %s FOR INSERT TO %I WITH CHECK (%s)', n || '_insert', tbl, app, cond);
    EXECUTE format('CREATE POLICY %I ON %s FOR UPDATE TO %I USING (%s) WITH CHECK (%s)', n || '_update', tbl, app, cond, cond);
    EXECUTE format('CREATE POLICY %I ON %s FOR DELETE TO %I USING (%s)', n || '_delete', tbl, app, cond);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %I', tbl, app);
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = 'id' AND NOT attisdropped) THEN
        EXECUTE format('GRANT SELECT (tenant_id, id) ON %s TO %I', tbl, tenantseal.role_name('probe'));
    END IF;
    IF hide_statistics THEN
        PERFORM tenantseal.hide_statistics(tbl);
    END IF;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.protect_table(regclass, boolean) FROM PUBLIC;

DROP TABLE tenantseal.tenant_tables;
-- select_verifier as migration 20 made it, and tenantseal_verify back to 1.0.
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
DROP FUNCTION tenantseal.current_tenant_key();
DROP FUNCTION tenantseal.plpgsql_current_tenant_key();
DO $$
BEGIN
    -- 1.2 too: migration 20 installs the server's default version, which may be later than 1.1.
    IF (SELECT extversion FROM pg_extension WHERE extname = 'tenantseal_verify') IN ('1.1', '1.2') THEN
        ALTER EXTENSION tenantseal_verify UPDATE TO '1.0';
    END IF;
END $$;
DROP TRIGGER tenant_key_check ON tenantseal.tenants;
DROP FUNCTION tenantseal.tenant_key_check();
DROP FUNCTION tenantseal.tenant_key_problem(text, text);
DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    EXECUTE format('REVOKE SELECT (%s) ON tenantseal.tenants FROM %I',
        (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
          WHERE attrelid = 'tenantseal.tenants'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'key'), app);
    EXECUTE format('GRANT SELECT ON tenantseal.tenants TO %I', app);
END $$;
ALTER TABLE tenantseal.tenants DROP COLUMN key;
DROP FUNCTION tenantseal.tenant_handle(text);
ALTER TABLE tenantseal.settings
    DROP COLUMN tenant_key_type, DROP COLUMN tenant_column, DROP COLUMN registry,
    DROP COLUMN registry_key, DROP COLUMN registry_name;
