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

DROP FUNCTION tenantseal.release_registry(regclass);
DROP FUNCTION tenantseal.adopt_registry(regclass, name, name);
DROP FUNCTION tenantseal.register_tenant();
DROP FUNCTION tenantseal.unprotect_table(regclass);
DROP FUNCTION tenantseal.protect_table(regclass, boolean, name);
DROP FUNCTION tenantseal.tenant_condition(regclass, name);
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
DROP FUNCTION tenantseal.current_tenant_key();
DROP TRIGGER tenant_key_check ON tenantseal.tenants;
DROP FUNCTION tenantseal.tenant_key_check();
DROP FUNCTION tenantseal.tenant_key_problem(text, text);
ALTER TABLE tenantseal.tenants DROP COLUMN key;
DROP FUNCTION tenantseal.tenant_handle(text);
ALTER TABLE tenantseal.settings
    DROP COLUMN tenant_key_type, DROP COLUMN tenant_column, DROP COLUMN registry,
    DROP COLUMN registry_key, DROP COLUMN registry_name;
