-- The app role appends again, through audit_append as migration 4 made it, reads its tenant's entries and
-- calls the existence probe itself.
DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    EXECUTE format('REVOKE ALL ON SCHEMA tenantseal FROM %I', tenantseal.role_name('audit_writer'));
    EXECUTE format('GRANT SELECT ON tenantseal.audit_log TO %I', app);
    EXECUTE format('CREATE POLICY audit_log_own_tenant ON tenantseal.audit_log FOR SELECT TO %I USING (tenant_id = (SELECT tenantseal.current_tenant()))', app);
END $$;

DROP FUNCTION tenantseal.tenant_audit_log(bigint, integer);
DROP FUNCTION tenantseal.audit_append(jsonb);
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

DROP FUNCTION tenantseal.exists_elsewhere(regclass, uuid, uuid);
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
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.audit_append(jsonb) TO %I', tenantseal.role_name('app'));
END $$;

CREATE OR REPLACE FUNCTION tenantseal.audit_canonical(l tenantseal.audit_log) RETURNS bytea
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT int8send(l.seq)
        || int8send((extract(epoch FROM l.at) * 1000000)::bigint)
        || string_agg(CASE WHEN f IS NULL THEN '\xffffffff'::bytea
                           ELSE int4send(octet_length(f)) || convert_to(f, 'UTF8') END, ''::bytea ORDER BY n)
      FROM unnest(ARRAY[l.event_id::text, l.kind, l.subject, l.tenant_id::text, l.target_tenant::text, l.table_name,
                        l.operation, l.row_key, l.sqlstate, l.request_id, l.detail]) WITH ORDINALITY AS x(f, n)
$$;

ALTER TABLE tenantseal.audit_log DROP COLUMN reported_at;
