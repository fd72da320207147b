-- Two read policies again, the tenant's and the elevation's, and protect_table as migration 4 made it.
DROP FUNCTION tenantseal.protect_table(regclass, boolean);
CREATE FUNCTION tenantseal.protect_table(tbl regclass) RETURNS void
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
    EXECUTE format('CREATE POLICY %I ON %s FOR SELECT TO %I USING ((SELECT tenantseal.elevated()))', n || '_elevated_read', tbl, app);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %I', tbl, app);
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = 'id' AND NOT attisdropped) THEN
        EXECUTE format('GRANT SELECT (tenant_id, id) ON %s TO %I', tbl, tenantseal.role_name('probe'));
    END IF;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.protect_table(regclass) FROM PUBLIC;

DO $$
DECLARE
    app name := tenantseal.role_name('app');
    r record;
BEGIN
    -- Every table with protect_table's read policy, the registry and the keysets among them.
    FOR r IN SELECT p.polrelid::regclass AS tbl, c.relname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
              WHERE p.polcmd = 'r' AND p.polpermissive AND p.polname = c.relname || '_select'
                AND pg_get_expr(p.polqual, p.polrelid) IN ('(tenant_id = ( SELECT tenantseal.current_tenant() AS current_tenant))',
                                                           '(id = ( SELECT tenantseal.current_tenant() AS current_tenant))')
                AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) LOOP
        EXECUTE format('CREATE POLICY %I ON %s FOR SELECT TO %I USING ((SELECT tenantseal.elevated()))', r.relname || '_elevated_read', r.tbl, app);
        EXECUTE format('ALTER TABLE %s ' || (SELECT string_agg(format('ALTER COLUMN %I SET STATISTICS -1', attname), ', ' ORDER BY attnum)
                         FROM pg_attribute WHERE attrelid = r.tbl AND attnum > 0 AND NOT attisdropped), r.tbl);
    END LOOP;
END $$;
DROP FUNCTION tenantseal.hide_statistics(regclass);
