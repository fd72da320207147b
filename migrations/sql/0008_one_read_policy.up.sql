-- One permissive policy per command, whose tenant comparison is an index condition.
--
-- Up to migration 7 every tenant table had two permissive SELECT policies, the tenant's and the
-- elevation's. PostgreSQL ORs permissive policies: (tenant_id = $0) OR $1 is no index condition, so it
-- ran as a filter after the caller's own condition, and EXPLAIN (ANALYZE) counted, in "Rows Removed by
-- Filter", the rows of other tenants that matched that condition: any indexed column of any tenant could
-- be bisected. Now an elevation is the tenant of its support case (migration 7: current_tenant() returns
-- it, read-only), so the elevation policies go. This migrates forward every table that
-- tenantseal.protect_table protected, in any schema, and the product's own tables.
--
-- The planner's statistics are the same side channel through estimates: pg_stats hides them from the app
-- role, but a leakproof comparison (=, <, > on text, uuid, numbers, times) still lets the planner use the
-- most common values and histogram bounds of every tenant, and EXPLAIN shows the estimate. protect_table
-- now sets the statistics target of each column to 0, so ANALYZE collects none (the table's size,
-- reltuples, stays visible: a PostgreSQL-level limit). Statistics that ANALYZE collected before stay in
-- pg_statistic until a superuser removes them: tenantseal bootstrap does, idempotently.

-- hide_statistics collects no more column statistics for tbl (see above).
CREATE FUNCTION tenantseal.hide_statistics(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name;
BEGIN
    FOR col IN SELECT attname FROM pg_attribute WHERE attrelid = tbl AND attnum > 0 AND NOT attisdropped ORDER BY attnum LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS 0', tbl, col);
    END LOOP;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.hide_statistics(regclass) FROM PUBLIC;

-- protect_table puts a tenant table under forced row-level security: one permissive policy per command
-- for the app role, comparing tenant_id with the verified tenant once per statement (an index condition
-- on any index that leads with tenant_id), DML grants for the app role, the probe's view of (tenant_id,
-- id), and, unless hide_statistics is false, no column statistics that estimates could reveal. Use it for
-- your own tables too, and lead every index of the table with tenant_id.
DROP FUNCTION tenantseal.protect_table(regclass);
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

-- Forward: drop every elevation read policy (protect_table's, the registry's, the keysets'), and hide the
-- statistics of the tables that had one. A table the owner does not own is left as it is, with a
-- WARNING: its owner runs the same statements.
DO $$
DECLARE
    r record;
    analyzed text[] := '{}';
BEGIN
    FOR r IN SELECT p.polrelid::regclass AS tbl, p.polname, c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS owned
               FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
              WHERE p.polcmd = 'r' AND p.polpermissive
                AND pg_get_expr(p.polqual, p.polrelid) = '( SELECT tenantseal.elevated() AS elevated)'
              ORDER BY 1, 2 LOOP
        IF NOT r.owned THEN
            RAISE WARNING 'tenantseal: % is not the owner''s: drop its policy % and set its columns'' statistics to 0 yourself (ALTER TABLE ... ALTER COLUMN ... SET STATISTICS 0): ORed with the tenant policy it makes the tenant comparison a filter that EXPLAIN ANALYZE counts other tenants'' rows through',
                r.tbl, r.polname;
            CONTINUE;
        END IF;
        EXECUTE format('DROP POLICY %I ON %s', r.polname, r.tbl);
        PERFORM tenantseal.hide_statistics(r.tbl);
        IF (SELECT reltuples > 0 FROM pg_class WHERE oid = r.tbl) THEN
            analyzed := analyzed || r.tbl::text;
        END IF;
    END LOOP;
    FOR r IN SELECT p.polrelid::regclass AS tbl, p.polname FROM pg_policy p
              WHERE pg_get_expr(p.polqual, p.polrelid) LIKE '%tenantseal.elevated()%'
                 OR pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%tenantseal.elevated()%' LOOP
        RAISE WARNING 'tenantseal: policy % on % still calls tenantseal.elevated(): an elevation is now current_tenant(), the tenant of its support case; permissive policies ORed with the tenant policy let EXPLAIN ANALYZE count other tenants'' rows',
            r.polname, r.tbl;
    END LOOP;
    IF cardinality(analyzed) > 0 THEN
        RAISE NOTICE 'tenantseal: % collect no column statistics now; the statistics ANALYZE collected before stay until a superuser removes them: run tenantseal bootstrap again',
            array_to_string(analyzed, ', ');
    END IF;
END $$;
