-- Citus, the distributed engine: tenant tables sharded by their tenant column across workers, every
-- guarantee kept on every node.
--
--   * tenantseal's own schema is node-local: the same migrations run on the coordinator and on every
--     worker (with Citus' DDL propagation off in those sessions, see migrations.Migrator), so that the
--     verifier finds its keys, tenants and settings in plain tables of the node it runs on. A shard query
--     cannot read a Citus reference table ("cannot execute a distributed query from a query on a
--     shard"), which is why these are not reference tables.
--   * The verifier's tables (context_keys, tenants, settings) are kept alike on every node: on the
--     coordinator, a statement trigger sends every change to every worker (run_command_on_workers, as
--     the role that made it) before the coordinator's transaction commits, and fails the statement when
--     a worker did not take it. A key rotation, a new tenant, a suspension thus reach every worker first.
--     sync_nodes() sends everything (after a worker is added); node_state_digest() lets a check compare.
--     The rows travel in statement text, context keys' HMAC pads among them: the push refuses while any
--     worker logs every statement (log_statement = all, log_min_duration_statement = 0) or the
--     coordinator logs the commands it sends (citus.log_remote_commands).
--   * A policy on a distributed table cannot hold a sub-select ("Subqueries are not supported in policies
--     on distributed tables"): tenant_condition compares the tenant column with the verifier's STABLE
--     function directly there, which on the workers is still an index condition on the tenant column (or,
--     with the statement's own tenant predicate, a one-time filter), so it is evaluated once per scan,
--     not per row. On every other table the condition keeps its sub-select.
--   * distribute_table shards a tenant table by its tenant column (colocated with the other tenant
--     tables) and re-protects it in the Citus form.

-- citus_node_role is 'coordinator' or 'worker' in a database with the citus extension, NULL elsewhere.
CREATE FUNCTION tenantseal.citus_node_role() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO g;
    RETURN CASE WHEN g = 0 THEN 'coordinator' ELSE 'worker' END;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.citus_node_role() FROM PUBLIC;
DO $$ BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.citus_node_role() TO %I', tenantseal.role_name('app'));
END $$;

-- is_distributed: whether Citus distributes tbl (hash-distributed, reference or Citus-local): its
-- policies may then hold no sub-select.
CREATE FUNCTION tenantseal.is_distributed(tbl regclass) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d boolean;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)' INTO d USING tbl;
    RETURN d;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.is_distributed(regclass) FROM PUBLIC;

-- citus_sharded: whether tbl is a hash-distributed or reference table of Citus (not a Citus local
-- table, which Citus makes of a table that a foreign key ties to a reference table).
CREATE FUNCTION tenantseal.citus_sharded(tbl regclass) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d boolean;
BEGIN
    IF NOT tenantseal.is_distributed(tbl) THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT partmethod = ''h'' OR repmodel = ''t'' FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1' INTO d USING tbl;
    RETURN d;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.citus_sharded(regclass) FROM PUBLIC;

-- tenant_condition as migration 21 made it, with the Citus form on distributed tables.
CREATE OR REPLACE FUNCTION tenantseal.tenant_condition(tbl regclass, col name) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kt text := (SELECT tenant_key_type FROM tenantseal.settings);
    typ regtype;
    not_null boolean;
    -- Once per statement: a sub-select (an InitPlan); on a distributed table, where Citus refuses
    -- sub-selects in policies, the STABLE call itself (an index condition on the workers).
    pre text := CASE WHEN tenantseal.is_distributed(tbl) THEN '' ELSE 'SELECT ' END;
BEGIN
    SELECT a.atttypid::regtype, a.attnotnull INTO typ, not_null
      FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenantseal: % has no column %: name its tenant column, protect_table(%L, tenant_column => ...)', tbl, quote_ident(col), tbl::text
            USING ERRCODE = '42703';
    END IF;
    IF NOT not_null THEN
        RAISE EXCEPTION 'tenantseal: %.% may be NULL: a row of no tenant is nobody''s, and a NULL tenant is no policy''s to keep', tbl, quote_ident(col)
            USING ERRCODE = '23502', HINT = 'backfill the column and ALTER TABLE ... ALTER COLUMN ... SET NOT NULL first (tenantseal adopt writes both)';
    END IF;
    IF typ = 'uuid'::regtype AND kt = 'uuid' THEN
        RETURN format('%I = (%stenantseal.current_tenant())', col, pre);
    END IF;
    IF (kt = 'uuid' AND typ IN ('text'::regtype, 'character varying'::regtype))
       OR (kt = 'bigint' AND typ = 'bigint'::regtype)
       OR (kt = 'integer' AND typ IN ('integer'::regtype, 'bigint'::regtype))
       OR (kt = 'text' AND typ IN ('text'::regtype, 'character varying'::regtype)) THEN
        RETURN format('%I = (%stenantseal.current_tenant_key()::%s)', col, pre, typ);
    END IF;
    RAISE EXCEPTION 'tenantseal: %.% is of type %, which cannot hold this database''s tenant keys (%)', tbl, quote_ident(col), typ, kt
        USING ERRCODE = '42804', HINT = 'uuid keys: uuid or text columns; bigint keys: bigint; integer keys: integer or bigint; text keys: text or varchar';
END $$;

-- hide_statistics as migration 8 made it, skipping the columns that collect none already: Citus cannot
-- change a column's statistics target on a distributed table (it copies the targets to the shards when
-- it distributes the table, so distribute_table hides them first), and refuses to with a clear reason.
CREATE OR REPLACE FUNCTION tenantseal.hide_statistics(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name;
BEGIN
    FOR col IN SELECT attname FROM pg_attribute WHERE attrelid = tbl AND attnum > 0 AND NOT attisdropped AND attstattarget <> 0 ORDER BY attnum LOOP
        IF tenantseal.citus_sharded(tbl) THEN
            RAISE EXCEPTION 'tenantseal: %.% collects column statistics, and Citus cannot change that on a distributed table', tbl, quote_ident(col)
                USING ERRCODE = '0A000', HINT = 'distribute tenant tables with tenantseal.distribute_table, which hides them first, or pass hide_statistics => false to protect_table';
        END IF;
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS 0', tbl, col);
    END LOOP;
END $$;

-- distribute_table shards tbl across the Citus workers by its tenant column (tenant_column, else the one
-- protect_table recorded, else the deployment's), colocated with colocate_with ('default': with the other tables of
-- that column type and shard count), and protects it in the Citus form. While Citus distributes it the
-- table stays under forced row-level security with no policy for the app role: it admits nothing.
CREATE FUNCTION tenantseal.distribute_table(tbl regclass, tenant_column name DEFAULT NULL, colocate_with text DEFAULT 'default') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    n text := (SELECT relname FROM pg_class WHERE oid = tbl);
    col name := coalesce(tenant_column, (SELECT t.tenant_column FROM tenantseal.tenant_tables t WHERE t.relid = tbl),
                         (SELECT s.tenant_column FROM tenantseal.settings s));
    cmd text;
BEGIN
    IF tenantseal.citus_node_role() IS DISTINCT FROM 'coordinator' THEN
        RAISE EXCEPTION 'tenantseal: distribute_table runs on a Citus coordinator (this database has %)',
            coalesce('a Citus ' || tenantseal.citus_node_role(), 'no citus extension') USING ERRCODE = '0A000';
    END IF;
    -- A Citus local table (one Citus made of a table a foreign key ties to a reference table) may be
    -- distributed; a distributed or reference table is one already.
    IF tenantseal.citus_sharded(tbl) THEN
        RAISE EXCEPTION 'tenantseal: % is distributed already', tbl USING ERRCODE = '42P07';
    END IF;
    PERFORM tenantseal.tenant_condition(tbl, col); -- refuses a missing, nullable or mistyped column first
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    FOREACH cmd IN ARRAY ARRAY['select', 'insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON %s', n || '_' || cmd, tbl);
    END LOOP;
    PERFORM tenantseal.hide_statistics(tbl);
    EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2, colocate_with => $3)' USING tbl, col::text, colocate_with;
    PERFORM tenantseal.protect_table(tbl, tenant_column => col);
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.distribute_table(regclass, name, text) FROM PUBLIC;

-- node_state_key is the primary key column of one of the verifier's tables, NULL for any other name.
CREATE FUNCTION tenantseal.node_state_key(tbl text) RETURNS name
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE tbl WHEN 'context_keys' THEN 'kid' WHEN 'tenants' THEN 'id' WHEN 'settings' THEN 'singleton' END::name
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.node_state_key(text) FROM PUBLIC;

-- apply_node_state writes, on a worker, what the coordinator sent of table tbl: upserts, the rows as
-- the coordinator has them; deletes, the rows it no longer has (by key). With full, every row absent
-- from upserts is deleted.
CREATE FUNCTION tenantseal.apply_node_state(tbl text, upserts jsonb, deletes jsonb, full_state boolean) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k name := tenantseal.node_state_key(tbl);
    cols text;
    excl text;
    n bigint;
BEGIN
    IF k IS NULL THEN
        RAISE EXCEPTION 'tenantseal: % is not one of the verifier''s tables', tbl USING ERRCODE = '22023';
    END IF;
    IF tenantseal.citus_node_role() IS DISTINCT FROM 'worker' THEN
        RAISE EXCEPTION 'tenantseal: node state is applied on Citus workers only' USING ERRCODE = '0A000';
    END IF;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum), string_agg('excluded.' || quote_ident(attname), ', ' ORDER BY attnum)
      INTO cols, excl
      FROM pg_attribute
     WHERE attrelid = format('tenantseal.%I', tbl)::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
    IF full_state THEN
        EXECUTE format('DELETE FROM tenantseal.%1$I t WHERE NOT EXISTS (SELECT 1 FROM jsonb_populate_recordset(NULL::tenantseal.%1$I, $1) r WHERE r.%2$I = t.%2$I)', tbl, k)
            USING upserts;
    ELSE
        EXECUTE format('DELETE FROM tenantseal.%1$I t WHERE t.%2$I IN (SELECT r.%2$I FROM jsonb_populate_recordset(NULL::tenantseal.%1$I, $1) r)', tbl, k)
            USING deletes;
    END IF;
    EXECUTE format('INSERT INTO tenantseal.%1$I AS t (%2$s) SELECT %2$s FROM jsonb_populate_recordset(NULL::tenantseal.%1$I, $1) '
                   'ON CONFLICT (%3$I) DO UPDATE SET (%2$s) = ROW(%4$s)', tbl, cols, k, excl)
        USING upserts;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.apply_node_state(text, jsonb, jsonb, boolean) FROM PUBLIC;

-- send_node_state sends a change of tbl to every worker and raises unless every one took it.
CREATE FUNCTION tenantseal.send_node_state(tbl text, upserts jsonb, deletes jsonb, full_state boolean) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    IF current_setting('citus.log_remote_commands') = 'on' THEN
        RAISE EXCEPTION 'tenantseal: citus.log_remote_commands is on: the change of tenantseal.% would be written to the coordinator''s log', tbl
            USING ERRCODE = '55000', HINT = 'SET citus.log_remote_commands = off';
    END IF;
    FOR r IN SELECT * FROM pg_catalog.run_command_on_workers(
            $q$SELECT current_setting('log_statement') || ' ' || current_setting('log_min_duration_statement')$q$) LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'tenantseal: Citus worker %:% cannot be reached as %: %', r.nodename, r.nodeport, current_user, r.result
                USING ERRCODE = '08006';
        END IF;
        IF split_part(r.result, ' ', 1) = 'all' OR split_part(r.result, ' ', 2) = '0' THEN
            RAISE EXCEPTION 'tenantseal: Citus worker %:% logs every statement (log_statement %, log_min_duration_statement %): the change of tenantseal.% would be written to its log',
                r.nodename, r.nodeport, split_part(r.result, ' ', 1), split_part(r.result, ' ', 2), tbl
                USING ERRCODE = '55000', HINT = 'set log_statement to none, ddl or mod and log_min_duration_statement to -1 or more than 0 on the workers';
        END IF;
    END LOOP;
    FOR r IN SELECT * FROM pg_catalog.run_command_on_workers(
            format('SELECT tenantseal.apply_node_state(%L, %L::jsonb, %L::jsonb, %L)', tbl, upserts, deletes, full_state)) LOOP
        IF NOT r.success THEN
            -- A worker's error may quote a failing row; the context keys' rows hold the HMAC pads.
            RAISE EXCEPTION 'tenantseal: Citus worker %:% did not take the change of tenantseal.%: %', r.nodename, r.nodeport, tbl,
                CASE WHEN tbl = 'context_keys' THEN '(the error is in the worker''s log)' ELSE r.result END
                USING ERRCODE = '55000';
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.send_node_state(text, jsonb, jsonb, boolean) FROM PUBLIC;

-- node_state_rows is every row of tbl, ordered by key, as a jsonb array.
CREATE FUNCTION tenantseal.node_state_rows(tbl text) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k name := tenantseal.node_state_key(tbl);
    j jsonb;
BEGIN
    IF k IS NULL THEN
        RAISE EXCEPTION 'tenantseal: % is not one of the verifier''s tables', tbl USING ERRCODE = '22023';
    END IF;
    EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.%I), ''[]'') FROM tenantseal.%I t', k, tbl) INTO j;
    RETURN j;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.node_state_rows(text) FROM PUBLIC;

-- node_state_digest is a digest of the verifier's tables on this node: alike on every node of a
-- cluster in step.
CREATE FUNCTION tenantseal.node_state_digest() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(sha256(convert_to(tenantseal.node_state_rows('context_keys')::text || tenantseal.node_state_rows('tenants')::text
        || tenantseal.node_state_rows('settings')::text, 'UTF8')), 'hex')
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.node_state_digest() FROM PUBLIC;

-- sync_nodes sends every row of the verifier's tables to every worker; it returns the number of
-- workers. Run it after adding a worker (tenantseal citus sync).
CREATE FUNCTION tenantseal.sync_nodes() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text;
    n integer := 0;
BEGIN
    IF tenantseal.citus_node_role() IS DISTINCT FROM 'coordinator' THEN
        RAISE EXCEPTION 'tenantseal: sync_nodes runs on a Citus coordinator' USING ERRCODE = '0A000';
    END IF;
    FOREACH t IN ARRAY ARRAY['settings', 'context_keys', 'tenants'] LOOP
        n := tenantseal.send_node_state(t, tenantseal.node_state_rows(t), '[]', true);
    END LOOP;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.sync_nodes() FROM PUBLIC;

-- push_node_state is the coordinator's statement trigger on the verifier's tables: the rows the
-- statement wrote (transition table new_rows) and those it removed (old_rows whose key is gone) go to
-- every worker. On a worker, or without Citus, it does nothing.
CREATE FUNCTION tenantseal.push_node_state() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k name := tenantseal.node_state_key(TG_TABLE_NAME);
    up jsonb := '[]';
    del jsonb := '[]';
BEGIN
    IF tenantseal.citus_node_role() IS DISTINCT FROM 'coordinator' THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT coalesce(jsonb_agg(to_jsonb(n)), '[]') INTO up FROM new_rows n;
    END IF;
    IF TG_OP = 'DELETE' THEN
        SELECT coalesce(jsonb_agg(to_jsonb(o)), '[]') INTO del FROM old_rows o;
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(o)), ''[]'') FROM old_rows o WHERE o.%1$I NOT IN (SELECT n.%1$I FROM new_rows n)', k) INTO del;
    END IF;
    IF up <> '[]' OR del <> '[]' THEN
        PERFORM tenantseal.send_node_state(TG_TABLE_NAME, up, del, false);
    END IF;
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.push_node_state() FROM PUBLIC;

-- refuse_truncate refuses TRUNCATE of the verifier's tables on a Citus coordinator, where it would
-- empty them without telling the workers (DELETE tells them).
CREATE FUNCTION tenantseal.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF tenantseal.citus_node_role() = 'coordinator' THEN
        RAISE EXCEPTION 'tenantseal: TRUNCATE of tenantseal.% on a Citus coordinator would not reach the workers: DELETE instead', TG_TABLE_NAME
            USING ERRCODE = '0A000';
    END IF;
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.refuse_truncate() FROM PUBLIC;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['context_keys', 'tenants', 'settings'] LOOP
        EXECUTE format('CREATE TRIGGER push_node_state_insert AFTER INSERT ON tenantseal.%I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tenantseal.push_node_state()', t);
        EXECUTE format('CREATE TRIGGER push_node_state_update AFTER UPDATE ON tenantseal.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tenantseal.push_node_state()', t);
        EXECUTE format('CREATE TRIGGER push_node_state_delete AFTER DELETE ON tenantseal.%I REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tenantseal.push_node_state()', t);
        -- TRUNCATE would empty the coordinator's table without telling the workers.
        EXECUTE format('CREATE TRIGGER push_node_state_truncate BEFORE TRUNCATE ON tenantseal.%I FOR EACH STATEMENT EXECUTE FUNCTION tenantseal.refuse_truncate()', t);
        -- ALWAYS, so that session_replication_role = replica does not keep a change from the workers.
        EXECUTE format('ALTER TABLE tenantseal.%I ENABLE ALWAYS TRIGGER push_node_state_insert, ENABLE ALWAYS TRIGGER push_node_state_update, '
                       'ENABLE ALWAYS TRIGGER push_node_state_delete, ENABLE ALWAYS TRIGGER push_node_state_truncate', t);
    END LOOP;
END $$;
