-- The Citus mode's functions and triggers; tenant_condition as migration 21 made it. Policies that
-- distribute_table wrote in the Citus form stay as they are (run protect_table again after undistributing).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['context_keys', 'tenants', 'settings'] LOOP
        EXECUTE format('DROP TRIGGER push_node_state_insert ON tenantseal.%I', t);
        EXECUTE format('DROP TRIGGER push_node_state_update ON tenantseal.%I', t);
        EXECUTE format('DROP TRIGGER push_node_state_delete ON tenantseal.%I', t);
        EXECUTE format('DROP TRIGGER push_node_state_truncate ON tenantseal.%I', t);
    END LOOP;
END $$;
DROP FUNCTION tenantseal.refuse_truncate();
DROP FUNCTION tenantseal.push_node_state();
DROP FUNCTION tenantseal.sync_nodes();
DROP FUNCTION tenantseal.node_state_digest();
DROP FUNCTION tenantseal.node_state_rows(text);
DROP FUNCTION tenantseal.send_node_state(text, jsonb, jsonb, boolean);
DROP FUNCTION tenantseal.apply_node_state(text, jsonb, jsonb, boolean);
DROP FUNCTION tenantseal.node_state_key(text);
DROP FUNCTION tenantseal.distribute_table(regclass, name, text);

CREATE OR REPLACE FUNCTION tenantseal.tenant_condition(tbl regclass, col name) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kt text := (SELECT tenant_key_type FROM tenantseal.settings);
    typ regtype;
    not_null boolean;
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
        RETURN format('%I = (SELECT tenantseal.current_tenant())', col);
    END IF;
    IF (kt = 'uuid' AND typ IN ('text'::regtype, 'character varying'::regtype))
       OR (kt = 'bigint' AND typ = 'bigint'::regtype)
       OR (kt = 'integer' AND typ IN ('integer'::regtype, 'bigint'::regtype))
       OR (kt = 'text' AND typ IN ('text'::regtype, 'character varying'::regtype)) THEN
        RETURN format('%I = (SELECT tenantseal.current_tenant_key()::%s)', col, typ);
    END IF;
    RAISE EXCEPTION 'tenantseal: %.% is of type %, which cannot hold this database''s tenant keys (%)', tbl, quote_ident(col), typ, kt
        USING ERRCODE = '42804', HINT = 'uuid keys: uuid or text columns; bigint keys: bigint; integer keys: integer or bigint; text keys: text or varchar';
END $$;

CREATE OR REPLACE FUNCTION tenantseal.hide_statistics(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name;
BEGIN
    FOR col IN SELECT attname FROM pg_attribute WHERE attrelid = tbl AND attnum > 0 AND NOT attisdropped ORDER BY attnum LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS 0', tbl, col);
    END LOOP;
END $$;

DROP FUNCTION tenantseal.citus_sharded(regclass);
DROP FUNCTION tenantseal.is_distributed(regclass);
DROP FUNCTION tenantseal.citus_node_role();
