-- Tenant keys as real schemas have them: uuid, bigint, integer or text, in a tenant column named per
-- table, and the application's own registry (companies(id), accounts(id)) as the source of tenants.
--
--   * tenantseal.tenants.key is the tenant's id as the application's registry has it, in the canonical
--     text form of tenantseal.settings.tenant_key_type (uuid, bigint, integer or text). tenants.id stays
--     the uuid that tenantseal's own tables and the signed tenant context carry: the tenant's handle,
--     tenantseal.tenant_handle(key), which is the key itself for uuid keys and a hash of it otherwise.
--     The registry binds the two; only the owner writes it, and the signature covers the handle.
--   * tenantseal.current_tenant_key() is the verified tenant's key, as text. A policy on a tenant column
--     that is not a uuid compares the column with it cast to the column's own type, inside a sub-select:
--     an InitPlan, evaluated once per statement and an index condition on a tenant-leading index.
--   * protect_table takes the tenant column (default: tenantseal.settings.tenant_column, 'tenant_id')
--     and records it in tenantseal.tenant_tables, where the repositories read it. unprotect_table
--     undoes what protect_table did.
--   * adopt_registry makes an application's table the source of tenants: every row of it, and every
--     row inserted later, is a tenant of tenantseal's, keyed by its key column. release_registry ends it.

ALTER TABLE tenantseal.settings
    ADD COLUMN tenant_key_type text NOT NULL DEFAULT 'uuid' CHECK (tenant_key_type IN ('uuid', 'bigint', 'integer', 'text')),
    ADD COLUMN tenant_column name NOT NULL DEFAULT 'tenant_id',
    ADD COLUMN registry regclass,
    ADD COLUMN registry_key name,
    ADD COLUMN registry_name name;

-- tenant_handle is the uuid that stands for the tenant key k in tenantseal's own tables and in the
-- signed context: k itself when it is a uuid in canonical form, else a version-8 UUID made of the first
-- 16 bytes of SHA-256('tenantseal-tenant:' || k). tenantseal.TenantID.Handle computes the same.
CREATE FUNCTION tenantseal.tenant_handle(k text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN k ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN k::uuid
    ELSE encode(set_byte(set_byte(d, 6, (get_byte(d, 6) & 15) | 128), 8, (get_byte(d, 8) & 63) | 128), 'hex')::uuid
    END
      FROM (SELECT substring(sha256(convert_to('tenantseal-tenant:' || k, 'UTF8')) FROM 1 FOR 16) AS d) h
$$;

-- canonical_tenant_key returns why k is not a tenant key in the canonical text form of the type t,
-- or NULL when it is one.
CREATE FUNCTION tenantseal.tenant_key_problem(k text, t text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF k IS NULL OR length(k) = 0 OR octet_length(k) > 200 THEN
        RETURN 'a tenant key has 1 to 200 bytes';
    ELSIF k ~ '[[:cntrl:]]' THEN
        RETURN 'a tenant key has no control characters';
    ELSIF t = 'uuid' THEN
        IF k !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            RETURN 'not a uuid in canonical lower-case form';
        END IF;
    ELSIF t IN ('bigint', 'integer') THEN
        IF k !~ '^-?[0-9]{1,19}$' OR (t = 'bigint' AND k::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807)
           OR (t = 'integer' AND k::numeric NOT BETWEEN -2147483648 AND 2147483647)
           OR k::numeric::text <> k THEN
            RETURN format('not %s %s in canonical decimal form', CASE t WHEN 'integer' THEN 'an' ELSE 'a' END, t);
        END IF;
    ELSIF t = 'text' THEN
        -- The Go side reads a uuid-shaped id in its lower-case form: an upper-case one would be a second
        -- name of the same-looking tenant.
        IF k ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' AND k <> lower(k) THEN
            RETURN 'a uuid-shaped text key is lower-case';
        END IF;
    ELSE
        RETURN format('unknown tenant key type %s', t);
    END IF;
    RETURN NULL;
END $$;

ALTER TABLE tenantseal.tenants ADD COLUMN key text;
UPDATE tenantseal.tenants SET key = id::text;
ALTER TABLE tenantseal.tenants ALTER COLUMN key SET NOT NULL;
ALTER TABLE tenantseal.tenants ADD CONSTRAINT tenants_key_key UNIQUE (key);
-- The app role reads its own tenant's row but not its key column: the unique index on key does not lead
-- with id, which the policy compares, so WHERE key = ... would run the policy as a filter after an
-- index scan that found the row, and EXPLAIN ANALYZE ("Rows Removed by Filter") would tell whether any
-- tenant has a key. The app has its key from current_tenant_key().
DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    EXECUTE format('REVOKE SELECT ON tenantseal.tenants FROM %I', app);
    EXECUTE format('GRANT SELECT (%s) ON tenantseal.tenants TO %I',
        (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
          WHERE attrelid = 'tenantseal.tenants'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'key'), app);
END $$;

-- tenant_key_check keeps key and id of a tenant one pair: the key in the canonical form of the
-- deployment's key type, the id its handle. An insert that gives only an id (uuid deployments, and
-- every caller before this migration) gets the id as its key.
CREATE FUNCTION tenantseal.tenant_key_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t text := (SELECT tenant_key_type FROM tenantseal.settings);
    problem text;
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.key IS DISTINCT FROM OLD.key OR NEW.id IS DISTINCT FROM OLD.id) THEN
        RAISE EXCEPTION 'tenantseal: a tenant''s key and id never change (tenant %)', OLD.key USING ERRCODE = '55000';
    END IF;
    IF NEW.key IS NULL THEN
        NEW.key := NEW.id::text;
    END IF;
    problem := tenantseal.tenant_key_problem(NEW.key, t);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'tenantseal: tenant key % refused: %', quote_literal(left(NEW.key, 200)), problem
            USING ERRCODE = '22023', HINT = format('the tenant keys of this database are of type %s (tenantseal.settings.tenant_key_type)', t);
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.id := tenantseal.tenant_handle(NEW.key);
    END IF;
    RETURN NEW;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.tenant_key_check(), tenantseal.tenant_key_problem(text, text) FROM PUBLIC;
CREATE TRIGGER tenant_key_check BEFORE INSERT OR UPDATE ON tenantseal.tenants
    FOR EACH ROW EXECUTE FUNCTION tenantseal.tenant_key_check();

-- plpgsql_current_tenant_key is the plpgsql verifier of tenantseal.current_tenant_key(): the key of
-- tenantseal.current_tenant(), as text; NULL without a context. Policies call it as
-- (SELECT tenantseal.current_tenant_key()::<the column's type>). select_verifier (below) makes
-- current_tenant_key() a SECURITY DEFINER copy of it, or, with the C verifier (tenantseal_verify 1.1),
-- a call of c_current_tenant_key(), which reads the key from the entry that verified the token. In
-- plpgsql, whose plans live as long as the session: a SQL function that cannot be inlined is planned
-- again on every call. Only the owner may call it.
CREATE FUNCTION tenantseal.plpgsql_current_tenant_key() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t uuid := tenantseal.current_tenant();
    k text;
BEGIN
    IF t IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT tt.key INTO k FROM tenantseal.tenants tt WHERE tt.id = t;
    RETURN k;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.plpgsql_current_tenant_key() FROM PUBLIC;
CREATE FUNCTION tenantseal.current_tenant_key() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT NULL::text $$; -- replaced by select_verifier below
REVOKE EXECUTE ON FUNCTION tenantseal.current_tenant_key() FROM PUBLIC;

-- tenant_tables: every table protect_table protected, with its tenant column. The app role reads it
-- (repositories take the tenant column from it); only the owner writes it.
CREATE TABLE tenantseal.tenant_tables (
    relid         regclass PRIMARY KEY,
    tenant_column name NOT NULL
);
REVOKE ALL ON tenantseal.tenant_tables FROM PUBLIC;
INSERT INTO tenantseal.tenant_tables (relid, tenant_column)
SELECT DISTINCT p.polrelid::regclass, 'tenant_id'
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname <> 'tenantseal' AND p.polcmd = 'r'
   AND pg_get_expr(p.polqual, p.polrelid) = '(tenant_id = ( SELECT tenantseal.current_tenant() AS current_tenant))';

-- opaque_key is its argument, in a function the planner cannot see through: a unique index on
-- opaque_key(name) keeps a registry's names unique while no query of the app role can use it. A
-- comparison of the app role's under row-level security is an index condition only if it is leakproof,
-- and this function is not: WHERE name = 'x' on a registry with a plain unique index on name would find
-- another tenant's row through the index and have the policy remove it as a filter, which EXPLAIN
-- ANALYZE counts ("Rows Removed by Filter"): whether any tenant has that name. tenantseal adopt uses it.
CREATE FUNCTION tenantseal.opaque_key(v text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN v;
END $$;

-- tenant_condition is the policy condition for column col of table tbl: the column compared with the
-- verified tenant, in the column's own type. It refuses a column that is missing, nullable, or of a
-- type that cannot hold the deployment's tenant keys.
CREATE FUNCTION tenantseal.tenant_condition(tbl regclass, col name) RETURNS text
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
REVOKE EXECUTE ON FUNCTION tenantseal.tenant_condition(regclass, name) FROM PUBLIC;

-- row_key_column is the column that names a row of tbl within its tenant: id when the table has one,
-- else the one column of its primary key beside the tenant column col; NULL when there is none.
CREATE FUNCTION tenantseal.row_key_column(tbl regclass, col name) RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(
        (SELECT attname FROM pg_attribute WHERE attrelid = tbl AND attname = 'id' AND attnum > 0 AND NOT attisdropped),
        (SELECT min(a.attname) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
          WHERE i.indrelid = tbl AND i.indisprimary AND a.attname <> col
         HAVING count(*) = 1))
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.row_key_column(regclass, name) FROM PUBLIC;

-- protect_table puts a tenant table under forced row-level security: one permissive policy per command
-- for the app role, comparing the tenant column (tenant_column, else tenantseal.settings.tenant_column)
-- with the verified tenant once per statement (an index condition on any index that leads with it),
-- DML grants for the app role, the probe's view of (tenant column, id), and, unless hide_statistics is
-- false, no column statistics that estimates could reveal. Run again, it replaces its own policies.
DROP FUNCTION tenantseal.protect_table(regclass, boolean);
CREATE FUNCTION tenantseal.protect_table(tbl regclass, hide_statistics boolean DEFAULT true, tenant_column name DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    app name := tenantseal.role_name('app');
    n text := (SELECT relname FROM pg_class WHERE oid = tbl);
    col name := coalesce(tenant_column, (SELECT s.tenant_column FROM tenantseal.settings s));
    cond text := tenantseal.tenant_condition(tbl, col);
    rk name;
    cmd text;
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    FOREACH cmd IN ARRAY ARRAY['select', 'insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON %s', n || '_' || cmd, tbl);
    END LOOP;
    EXECUTE format('CREATE POLICY %I ON %s FOR SELECT TO %I USING (%s)', n || '_select', tbl, app, cond);
    EXECUTE format('CREATE POLICY %I ON %s FOR INSERT TO %I WITH CHECK (%s)', n || '_insert', tbl, app, cond);
    EXECUTE format('CREATE POLICY %I ON %s FOR UPDATE TO %I USING (%s) WITH CHECK (%s)', n || '_update', tbl, app, cond, cond);
    EXECUTE format('CREATE POLICY %I ON %s FOR DELETE TO %I USING (%s)', n || '_delete', tbl, app, cond);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %I', tbl, app);
    rk := tenantseal.row_key_column(tbl, col);
    IF rk IS NOT NULL THEN
        EXECUTE format('GRANT SELECT (%I, %I) ON %s TO %I', col, rk, tbl, tenantseal.role_name('probe'));
    END IF;
    IF hide_statistics THEN
        PERFORM tenantseal.hide_statistics(tbl);
    END IF;
    INSERT INTO tenantseal.tenant_tables AS t (relid, tenant_column) VALUES (tbl, col)
        ON CONFLICT (relid) DO UPDATE SET tenant_column = excluded.tenant_column;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.protect_table(regclass, boolean, name) FROM PUBLIC;

-- unprotect_table undoes protect_table on tbl: its four policies, forced and enabled row-level security,
-- the app role's DML grants, the probe's column grant, the hidden statistics (back to the default
-- target) and the table's row in tenantseal.tenant_tables. Other policies of the table stay.
CREATE FUNCTION tenantseal.unprotect_table(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    n text := (SELECT relname FROM pg_class WHERE oid = tbl);
    col name := (SELECT t.tenant_column FROM tenantseal.tenant_tables t WHERE t.relid = tbl);
    rk name;
    a name;
    cmd text;
BEGIN
    FOREACH cmd IN ARRAY ARRAY['select', 'insert', 'update', 'delete'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON %s', n || '_' || cmd, tbl);
    END LOOP;
    EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('REVOKE SELECT, INSERT, UPDATE, DELETE ON %s FROM %I', tbl, tenantseal.role_name('app'));
    rk := tenantseal.row_key_column(tbl, col);
    IF col IS NOT NULL AND rk IS NOT NULL THEN
        EXECUTE format('REVOKE SELECT (%I, %I) ON %s FROM %I', col, rk, tbl, tenantseal.role_name('probe'));
    END IF;
    FOR a IN SELECT attname FROM pg_attribute WHERE attrelid = tbl AND attnum > 0 AND NOT attisdropped ORDER BY attnum LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS -1', tbl, a);
    END LOOP;
    DELETE FROM tenantseal.tenant_tables WHERE relid = tbl;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.unprotect_table(regclass) FROM PUBLIC;

-- register_tenant is the registry's trigger: the inserted row is a tenant, keyed by the column named
-- in TG_ARGV[0] and named by the one in TG_ARGV[1] (its key when absent or empty).
CREATE FUNCTION tenantseal.register_tenant() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r jsonb := to_jsonb(NEW);
    k text := r ->> TG_ARGV[0];
BEGIN
    INSERT INTO tenantseal.tenants (key, name)
    VALUES (k, coalesce(left(nullif(r ->> TG_ARGV[1], ''), 200), left(k, 200)))
    ON CONFLICT (key) DO NOTHING;
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.register_tenant() FROM PUBLIC;

-- adopt_registry makes registry, an application's table of tenants, the source of tenantseal's: the
-- deployment's tenant keys take the type of key_column, every row is registered as a tenant (named by
-- name_column where given), a trigger registers the rows inserted later, and a policy lets the owner
-- role write the registry under forced row-level security (protect it with protect_table(registry,
-- tenant_column => key_column): each tenant then reads its own row only). It returns how many
-- tenants it registered. It refuses when tenantseal already has tenants whose keys that type cannot
-- hold.
CREATE FUNCTION tenantseal.adopt_registry(registry regclass, key_column name, name_column name DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
    typ regtype;
    kt text;
    misfit text;
    n bigint;
BEGIN
    SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
     WHERE a.attrelid = registry AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenantseal: registry % has no column %', registry, quote_ident(key_column) USING ERRCODE = '42703';
    END IF;
    IF name_column IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = registry AND a.attname = name_column AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'tenantseal: registry % has no column %', registry, quote_ident(name_column) USING ERRCODE = '42703';
    END IF;
    kt := CASE typ WHEN 'uuid'::regtype THEN 'uuid' WHEN 'bigint'::regtype THEN 'bigint' WHEN 'integer'::regtype THEN 'integer'
                   WHEN 'text'::regtype THEN 'text' WHEN 'character varying'::regtype THEN 'text' END;
    IF kt IS NULL THEN
        RAISE EXCEPTION 'tenantseal: %.% is of type %: tenant keys are uuid, bigint, integer or text', registry, quote_ident(key_column), typ
            USING ERRCODE = '42804';
    END IF;
    SELECT string_agg(quote_literal(key), ', ') INTO misfit
      FROM (SELECT key FROM tenantseal.tenants WHERE tenantseal.tenant_key_problem(key, kt) IS NOT NULL ORDER BY key LIMIT 5) m;
    IF misfit IS NOT NULL THEN
        RAISE EXCEPTION 'tenantseal: tenantseal already has tenants whose keys are not % (%): a registry of % keys cannot be adopted beside them', kt, misfit, kt
            USING ERRCODE = '55000';
    END IF;
    UPDATE tenantseal.settings SET tenant_key_type = kt, registry = adopt_registry.registry,
           registry_key = key_column, registry_name = name_column;
    EXECUTE format('INSERT INTO tenantseal.tenants (key, name) SELECT r.%1$I::text, coalesce(left(nullif(%2$s, ''''), 200), left(r.%1$I::text, 200)) FROM %3$s r WHERE r.%1$I IS NOT NULL ON CONFLICT (key) DO NOTHING',
        key_column, CASE WHEN name_column IS NULL THEN 'NULL' ELSE format('r.%I::text', name_column) END, registry);
    GET DIAGNOSTICS n = ROW_COUNT;
    EXECUTE format('DROP TRIGGER IF EXISTS tenantseal_register ON %s', registry);
    EXECUTE format('CREATE TRIGGER tenantseal_register AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION tenantseal.register_tenant(%L, %L)',
        registry, key_column, coalesce(name_column, key_column));
    -- The owner administers the registry (sign-ups, renames) once protect_table forces row-level
    -- security on it: a policy of its own, for it only. The app role keeps its own row.
    EXECUTE format('DROP POLICY IF EXISTS tenantseal_registry_owner ON %s', registry);
    EXECUTE format('CREATE POLICY tenantseal_registry_owner ON %s TO %I USING (true) WITH CHECK (true)', registry, tenantseal.role_name('owner'));
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.adopt_registry(regclass, name, name) FROM PUBLIC;

-- release_registry ends adopt_registry: no more tenants are registered from registry. The tenants stay,
-- with their keys.
CREATE FUNCTION tenantseal.release_registry(registry regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS tenantseal_register ON %s', registry);
    EXECUTE format('DROP POLICY IF EXISTS tenantseal_registry_owner ON %s', registry);
    UPDATE tenantseal.settings SET registry = NULL, registry_key = NULL, registry_name = NULL
     WHERE settings.registry = release_registry.registry;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.release_registry(regclass) FROM PUBLIC;

DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.current_tenant_key() TO %I', app);
    EXECUTE format('GRANT SELECT ON tenantseal.tenant_tables TO %I', app);
END $$;

-- exists_elsewhere(tbl, row key, tenant key) answers audit_append's one question for a table of any
-- tenant column and key type: does a row with this key exist in tbl for a tenant other than the given
-- one? It runs as the probe role, which bypasses row-level security but may read only the tenant and
-- row key columns of protected tables (protect_table grants them). Only the owner may call it.
CREATE FUNCTION tenantseal.exists_elsewhere(tbl regclass, row_key text, tenant_key text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name := (SELECT t.tenant_column FROM tenantseal.tenant_tables t WHERE t.relid = tbl);
    rk name;
    found boolean;
BEGIN
    IF tenant_key IS NULL OR row_key IS NULL THEN
        RETURN false;
    END IF;
    IF col IS NULL OR NOT (SELECT relforcerowsecurity FROM pg_class WHERE oid = tbl) THEN
        RAISE EXCEPTION 'tenantseal: % is not a protected tenant table', tbl USING ERRCODE = '42501';
    END IF;
    rk := tenantseal.row_key_column(tbl, col);
    IF rk IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I = $1::%s AND %I <> $2::%s)', tbl,
        rk, (SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = tbl AND attname = rk),
        col, (SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = tbl AND attname = col))
        INTO found USING row_key, tenant_key;
    RETURN found;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.exists_elsewhere(regclass, text, text) FROM PUBLIC;

-- audit_append as migration 9 made it, but for a lookup miss it asks exists_elsewhere above, which
-- answers for every protected table: the tenant column and row key of any name and type.
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
                    foreign_id := tbl IS NOT NULL AND tenantseal.exists_elsewhere(tbl, l.row_key,
                        (SELECT t.key FROM tenantseal.tenants t WHERE t.id = l.tenant_id));
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

DO $$
DECLARE
    probe name := tenantseal.role_name('probe');
BEGIN
    EXECUTE format('ALTER FUNCTION tenantseal.exists_elsewhere(regclass, text, text) OWNER TO %I', probe);
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.exists_elsewhere(regclass, text, text) TO %I', tenantseal.role_name('owner'));
    EXECUTE format('GRANT SELECT ON tenantseal.tenant_tables TO %I', probe);
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.row_key_column(regclass, name) TO %I', probe);
END $$;

-- select_verifier as migration 20 made it, and current_tenant_key() with it.
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

-- The C verifier of tenant keys arrived with tenantseal_verify 1.1: update an installed 1.0 where the
-- server has 1.1, then choose the verifiers again.
DO $$
BEGIN
    IF (SELECT extversion FROM pg_extension WHERE extname = 'tenantseal_verify') = '1.0'
       AND EXISTS (SELECT 1 FROM pg_available_extension_versions WHERE name = 'tenantseal_verify' AND version = '1.1') THEN
        BEGIN
            ALTER EXTENSION tenantseal_verify UPDATE TO '1.1';
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'tenantseal: tenantseal_verify could not be updated to 1.1 (%): tenant keys are read by the plpgsql verifier', SQLERRM;
        END;
    END IF;
    -- As migration 20 does for the others: granted now, whichever verifier is selected.
    IF (SELECT proowner FROM pg_proc WHERE oid = to_regprocedure('tenantseal.c_current_tenant_key()')) = (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.c_current_tenant_key() TO %I', tenantseal.role_name('app'));
    END IF;
    PERFORM tenantseal.select_verifier();
END $$;
