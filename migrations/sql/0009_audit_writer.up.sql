-- The audit log's writer becomes a role of its own, <prefix>_audit_writer, that bootstrap creates (run
-- tenantseal bootstrap before this migration). Up to migration 8 the app role appended events: SQL
-- injected into the application could store events in any tenant's name, date them at will, flood the
-- log, hold the chain head locked, and kill or cancel the writer's sessions (every session of one role
-- may signal the others). Now:
--
--   * only the writer role may call audit_append; the app role cannot become it (no membership) nor
--     signal its sessions (another role);
--   * the database dates each entry (at, from its own clock) and orders it (seq); the time the writer
--     reported is kept as reported_at, never in the future;
--   * one call appends at most 1000 events;
--   * a lookup by id that missed is reported by the application as kind lookup_miss, and audit_append
--     checks it here, on the writer's connection, out of the request's path: stored as foreign_id when
--     the id is another tenant's, not stored when it is nobody's. At most 100 such checks per call; the
--     rest are stored unchecked, as lookup_miss. The existence probe is no longer callable by the app
--     role, and a miss costs the caller the same whether the id is foreign or missing;
--   * the app role reads the audit log no more: its sequence numbers told other tenants' volume, and its
--     indexes (on seq, on event_id) do not lead with tenant_id, so EXPLAIN ANALYZE counted other tenants'
--     events through them. A tenant reads its own entries through tenant_audit_log, numbered within
--     the tenant.

ALTER TABLE tenantseal.audit_log ADD COLUMN reported_at timestamptz;

-- The canonical encoding gains reported_at, after the other fields and only when it is set: entries
-- stored before keep their bytes and their hashes. audit.Verify computes the same.
CREATE OR REPLACE FUNCTION tenantseal.audit_canonical(l tenantseal.audit_log) RETURNS bytea
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT int8send(l.seq)
        || int8send((extract(epoch FROM l.at) * 1000000)::bigint)
        || string_agg(CASE WHEN f IS NULL THEN '\xffffffff'::bytea
                           ELSE int4send(octet_length(f)) || convert_to(f, 'UTF8') END, ''::bytea ORDER BY n)
        || CASE WHEN l.reported_at IS NULL THEN ''::bytea
                ELSE int8send((extract(epoch FROM l.reported_at) * 1000000)::bigint) END
      FROM unnest(ARRAY[l.event_id::text, l.kind, l.subject, l.tenant_id::text, l.target_tenant::text, l.table_name,
                        l.operation, l.row_key, l.sqlstate, l.request_id, l.detail]) WITH ORDINALITY AS x(f, n)
$$;

-- exists_elsewhere answers one yes/no question for audit_append: does a row with this id exist in tbl for
-- a tenant other than the given one? It runs as the probe role, which bypasses row-level security but may
-- read only the tenant_id and id columns of protected tables. Only audit_append (the owner's) may call it.
DROP FUNCTION tenantseal.exists_elsewhere(regclass, uuid);
CREATE FUNCTION tenantseal.exists_elsewhere(tbl regclass, row_id uuid, tenant uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found boolean;
BEGIN
    IF tenant IS NULL OR row_id IS NULL THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                    WHERE c.oid = tbl AND c.relforcerowsecurity AND a.attname = 'tenant_id' AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'tenantseal: % is not a protected tenant table', tbl USING ERRCODE = '42501';
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE id = $1 AND tenant_id <> $2)', tbl) INTO found USING row_id, tenant;
    RETURN found;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.exists_elsewhere(regclass, uuid, uuid) FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION tenantseal.exists_elsewhere(regclass, uuid, uuid) OWNER TO %I', tenantseal.role_name('probe'));
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.exists_elsewhere(regclass, uuid, uuid) TO %I', tenantseal.role_name('owner'));
END $$;

-- audit_append appends events (a JSON array of at most 1000 objects with the column names of audit_log
-- but seq, hashes and reported_at) in order, chaining each to the head, and returns the event ids of the
-- lookup misses it found to be foreign ids (for the writer's alerts). An event whose event_id is already
-- in the log is skipped: replaying a batch is safe. The only way in, for the writer role only.
DROP FUNCTION tenantseal.audit_append(jsonb);
CREATE FUNCTION tenantseal.audit_append(events jsonb) RETURNS SETOF uuid
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
REVOKE EXECUTE ON FUNCTION tenantseal.audit_append(jsonb) FROM PUBLIC;

-- tenant_audit_log returns the entries the current tenant acted in, numbered from 1 within the tenant:
-- no sequence number or hash of the global chain, whose gaps would tell other tenants' volume, and no
-- table for the app role to EXPLAIN. At most 1000 per call, after the entry numbered after.
CREATE FUNCTION tenantseal.tenant_audit_log(after bigint, lim integer)
RETURNS TABLE (n bigint, event_id uuid, at timestamptz, kind text, subject text, tenant_id uuid, target_tenant uuid,
               table_name text, operation text, row_key text, sqlstate text, request_id text, detail text, reported_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM (
        SELECT row_number() OVER (ORDER BY l.seq), l.event_id, l.at, l.kind, l.subject, l.tenant_id, l.target_tenant,
               l.table_name, l.operation, l.row_key, l.sqlstate, l.request_id, l.detail, l.reported_at
          FROM tenantseal.audit_log l WHERE l.tenant_id = (SELECT tenantseal.current_tenant())
    ) x
     WHERE x.row_number > $1 ORDER BY 1 LIMIT least($2, 1000)
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.tenant_audit_log(bigint, integer) FROM PUBLIC;

DO $$
DECLARE
    app name := tenantseal.role_name('app');
    writer name := tenantseal.role_name('audit_writer');
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA tenantseal TO %I', writer);
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.audit_append(jsonb) TO %I', writer);
    EXECUTE format('DROP POLICY audit_log_own_tenant ON tenantseal.audit_log');
    EXECUTE format('REVOKE SELECT ON tenantseal.audit_log FROM %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.tenant_audit_log(bigint, integer) TO %I', app);
END $$;
