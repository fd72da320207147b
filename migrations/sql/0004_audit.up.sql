-- The audit log of cross-tenant attempts: append-only, hash-chained inside the database, readable in
-- full only by the auditor role; and the narrow existence probe that tells a foreign id from a missing one.

CREATE TABLE tenantseal.audit_log (
    seq           bigint PRIMARY KEY,
    -- Chosen by the writer, so that appending a batch again (after a lost acknowledgement) adds nothing.
    event_id      uuid NOT NULL UNIQUE,
    at            timestamptz NOT NULL,
    kind          text NOT NULL,
    subject       text,
    tenant_id     uuid,          -- the acting principal's tenant
    target_tenant uuid,          -- the tenant whose row was aimed at, where known
    table_name    text,
    operation     text,
    row_key       text,
    sqlstate      text,
    request_id    text,
    detail        text,
    prev_hash     bytea NOT NULL,
    hash          bytea NOT NULL
);
CREATE INDEX audit_log_tenant ON tenantseal.audit_log (tenant_id, seq);

-- The chain head: one row, locked by every append so concurrent writers cannot fork the chain.
CREATE TABLE tenantseal.audit_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint NOT NULL,
    hash      bytea NOT NULL
);
INSERT INTO tenantseal.audit_head VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- The canonical encoding that the hash covers: fixed-width integers and length-prefixed UTF-8 strings, NULL
-- as length -1. audit.Verify computes the same bytes.
CREATE FUNCTION tenantseal.audit_canonical(l tenantseal.audit_log) RETURNS bytea
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT int8send(l.seq)
        || int8send((extract(epoch FROM l.at) * 1000000)::bigint)
        || string_agg(CASE WHEN f IS NULL THEN '\xffffffff'::bytea
                           ELSE int4send(octet_length(f)) || convert_to(f, 'UTF8') END, ''::bytea ORDER BY n)
      FROM unnest(ARRAY[l.event_id::text, l.kind, l.subject, l.tenant_id::text, l.target_tenant::text, l.table_name,
                        l.operation, l.row_key, l.sqlstate, l.request_id, l.detail]) WITH ORDINALITY AS x(f, n)
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.audit_canonical(tenantseal.audit_log) FROM PUBLIC;

-- audit_append appends events (a JSON array of objects with the column names above but seq, hashes) in
-- order, chaining each to the head, and returns the last sequence number. An event whose event_id is
-- already in the log is skipped: replaying a batch is safe. The only way in for the app role.
CREATE FUNCTION tenantseal.audit_append(events jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h record;
    e jsonb;
    l tenantseal.audit_log;
    n bigint;
BEGIN
    IF jsonb_typeof(events) <> 'array' THEN
        RAISE EXCEPTION 'tenantseal: audit_append takes a JSON array' USING ERRCODE = '22023';
    END IF;
    SELECT seq, hash INTO h FROM tenantseal.audit_head FOR UPDATE;
    FOR e IN SELECT * FROM jsonb_array_elements(events) LOOP
        l := jsonb_populate_record(NULL::tenantseal.audit_log, e);
        l.event_id := coalesce(l.event_id, gen_random_uuid());
        l.seq := h.seq + 1;
        l.at := date_trunc('microseconds', coalesce(l.at, now()));
        IF l.kind IS NULL OR l.kind = '' THEN
            RAISE EXCEPTION 'tenantseal: audit event without a kind' USING ERRCODE = '22023';
        END IF;
        l.prev_hash := h.hash;
        l.hash := sha256(h.hash || tenantseal.audit_canonical(l));
        -- An event already stored (a replayed batch) inserts nothing and leaves the head where it was.
        INSERT INTO tenantseal.audit_log VALUES (l.*) ON CONFLICT (event_id) DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 1 THEN
            h.seq := l.seq;
            h.hash := l.hash;
        END IF;
    END LOOP;
    UPDATE tenantseal.audit_head SET seq = h.seq, hash = h.hash;
    RETURN h.seq;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.audit_append(jsonb) FROM PUBLIC;

-- Append-only: no role may change or remove entries through SQL, the owner included.
CREATE FUNCTION tenantseal.audit_refuse() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'tenantseal: the audit log is append-only (% refused)', TG_OP USING ERRCODE = '42501';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON tenantseal.audit_log
    FOR EACH ROW EXECUTE FUNCTION tenantseal.audit_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON tenantseal.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION tenantseal.audit_refuse();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON tenantseal.audit_head
    FOR EACH ROW EXECUTE FUNCTION tenantseal.audit_refuse();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON tenantseal.audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION tenantseal.audit_refuse();

-- Readers: the auditor reads everything; the app role reads its own tenant's events only.
ALTER TABLE tenantseal.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenantseal.audit_log FORCE ROW LEVEL SECURITY;
DO $$
DECLARE
    owner name := tenantseal.role_name('owner');
    app name := tenantseal.role_name('app');
    auditor name := tenantseal.role_name('auditor');
    probe name := tenantseal.role_name('probe');
BEGIN
    EXECUTE format('CREATE POLICY audit_log_append ON tenantseal.audit_log FOR INSERT TO %I WITH CHECK (true)', owner);
    -- audit_append (the owner's) must see stored event ids to skip a replayed event (ON CONFLICT checks
    -- the new row against SELECT policies). The owner owns the table: this grants it nothing new.
    EXECUTE format('CREATE POLICY audit_log_owner_read ON tenantseal.audit_log FOR SELECT TO %I USING (true)', owner);
    EXECUTE format('CREATE POLICY audit_log_auditor ON tenantseal.audit_log FOR SELECT TO %I USING (true)', auditor);
    EXECUTE format('CREATE POLICY audit_log_own_tenant ON tenantseal.audit_log FOR SELECT TO %I USING (tenant_id = (SELECT tenantseal.current_tenant()))', app);
    EXECUTE format('GRANT SELECT ON tenantseal.audit_log TO %I, %I', auditor, app);
    EXECUTE format('GRANT SELECT ON tenantseal.audit_head TO %I', auditor);
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.audit_append(jsonb) TO %I', app);
    EXECUTE format('GRANT USAGE, CREATE ON SCHEMA tenantseal TO %I', probe);
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.current_tenant() TO %I', probe);
END $$;

-- exists_elsewhere answers one yes/no question on the miss path of a lookup by id: does a row with this
-- id exist for a tenant other than the current one? It runs as the probe role, which bypasses row-level
-- security but may read only the tenant_id and id columns of protected tables. Without a valid tenant
-- context it answers false.
CREATE FUNCTION tenantseal.exists_elsewhere(tbl regclass, row_id uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me uuid := tenantseal.current_tenant();
    found boolean;
BEGIN
    IF me IS NULL OR row_id IS NULL THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                    WHERE c.oid = tbl AND c.relforcerowsecurity AND a.attname = 'tenant_id' AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'tenantseal: % is not a protected tenant table', tbl USING ERRCODE = '42501';
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE id = $1 AND tenant_id <> $2)', tbl) INTO found USING row_id, me;
    RETURN found;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.exists_elsewhere(regclass, uuid) FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION tenantseal.exists_elsewhere(regclass, uuid) OWNER TO %I', tenantseal.role_name('probe'));
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.exists_elsewhere(regclass, uuid) TO %I', tenantseal.role_name('app'));
END $$;

-- protect_table now also lets the probe see ids and tenants of the table it protects.
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
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = 'id' AND NOT attisdropped) THEN
        EXECUTE format('GRANT SELECT (tenant_id, id) ON %s TO %I', tbl, tenantseal.role_name('probe'));
    END IF;
END $$;
