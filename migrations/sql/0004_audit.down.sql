-- protect_table as migration 1 made it.
CREATE OR REPLACE FUNCTION tenantseal.protect_table(tbl regclass) RETURNS void
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
END $$;

-- The probe keeps the (tenant_id, id) grants that protect_table gave it on tables: harmless without
-- exists_elsewhere, and what it needs again after the next up.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON SCHEMA tenantseal FROM %I', tenantseal.role_name('probe'));
    EXECUTE format('REVOKE ALL ON FUNCTION tenantseal.current_tenant() FROM %I', tenantseal.role_name('probe'));
END $$;
DROP FUNCTION tenantseal.exists_elsewhere(regclass, uuid);
DROP FUNCTION tenantseal.audit_canonical(tenantseal.audit_log);
DROP TABLE tenantseal.audit_log;
DROP TABLE tenantseal.audit_head;
DROP FUNCTION tenantseal.audit_refuse();
DROP FUNCTION tenantseal.audit_append(jsonb);
