-- Schema, privilege and role changes in the audit chain.
--
--   * security_snapshot() is the canonical security state of the database: per tenant table (those of
--     tenantseal.tenant_tables, those of schema tenantseal, and any other with row-level security or a
--     policy) its row-level security, forced or not, owner, privileges and column privileges; every
--     policy of those tables with its expressions; tenantseal's roles (attributes, memberships both
--     ways, role-level settings) and every role that is a superuser or bypasses row-level security;
--     the settings of this database; schema tenantseal and its functions (owner, security, settings,
--     privileges, a hash of the definition); every event trigger. One row per (object, aspect).
--   * security_compare compares it with the state last recorded (tenantseal.security_state) and
--     appends each difference to the chain as a security_change entry, "object aspect: old → new". The
--     first comparison records a security_baseline entry instead.
--   * audit_ddl and audit_ddl_drop are the functions of the event triggers that bootstrap installs as a
--     superuser (CREATE EVENT TRIGGER needs one; migrations run as the owner): a ddl entry for each
--     command on a tenant table, its policies, triggers and rules, or an object of schema tenantseal,
--     then the comparison in the same transaction, so GRANT and REVOKE, which name no object to an
--     event trigger, are recorded by what they changed. A change that cannot be recorded fails.
--   * security_watch is the audit writer role's: the same comparison, for what event triggers never see
--     (roles are global objects) and for databases without them, then the security entries appended
--     since its last call, for the writer's alerts.
--
-- The app role can call none of them: event trigger functions cannot be called at all, and the rest
-- are not granted to it. DDL the app role runs (on its temporary tables) records nothing.

CREATE TABLE tenantseal.security_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    snapshot    jsonb NOT NULL,
    taken_at    timestamptz NOT NULL,
    -- The chain entry up to which security_watch has returned the security entries.
    watched_seq bigint NOT NULL DEFAULT 0
);
REVOKE ALL ON tenantseal.security_state FROM PUBLIC;

-- security_relation reports whether relation rel is one whose changes are recorded: a table of
-- tenantseal.tenant_tables or of schema tenantseal, or one under row-level security or with a policy.
-- Temporary tables never are.
CREATE FUNCTION tenantseal.security_relation(rel oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_class c
         WHERE c.oid = rel AND c.relpersistence <> 't' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND (c.oid IN (SELECT t.relid FROM tenantseal.tenant_tables t)
                OR c.relnamespace = 'tenantseal'::regnamespace
                OR c.relrowsecurity OR c.relforcerowsecurity
                OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)))
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.security_relation(oid) FROM PUBLIC;

-- security_roles are tenantseal's roles: <prefix>_owner, _app, _auditor, _audit_writer and _probe, the
-- prefix being tenantseal.role_prefix, else the schema owner's name without _owner.
CREATE FUNCTION tenantseal.security_roles() RETURNS SETOF oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.oid FROM pg_roles r, unnest(ARRAY['owner', 'app', 'auditor', 'audit_writer', 'probe']) k
     WHERE r.rolname = coalesce(nullif(current_setting('tenantseal.role_prefix', true), ''),
                                (SELECT regexp_replace(pg_get_userbyid(nspowner), '_owner$', '') FROM pg_namespace WHERE nspname = 'tenantseal'))
                       || '_' || k
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.security_roles() FROM PUBLIC;

CREATE FUNCTION tenantseal.security_snapshot() RETURNS TABLE (object text, aspect text, value text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH rel AS (
        SELECT c.oid, c.oid::regclass::text AS name, c.relrowsecurity, c.relforcerowsecurity, c.relowner, c.relacl
          FROM pg_class c WHERE tenantseal.security_relation(c.oid)
    ), ours AS (
        SELECT r.* FROM pg_roles r WHERE r.oid IN (SELECT tenantseal.security_roles())
    )
    SELECT 'table ' || name, 'row security', CASE WHEN relrowsecurity THEN 'enabled' ELSE 'disabled' END FROM rel
    UNION ALL
    SELECT 'table ' || name, 'forced row security', CASE WHEN relforcerowsecurity THEN 'forced' ELSE 'not forced' END FROM rel
    UNION ALL
    SELECT 'table ' || name, 'owner', pg_get_userbyid(relowner)::text FROM rel
    UNION ALL
    SELECT 'table ' || name, 'privileges', coalesce((SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(relacl) a), 'default') FROM rel
    UNION ALL
    SELECT 'table ' || rel.name, 'privileges of column ' || quote_ident(at.attname),
           (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(at.attacl) a)
      FROM rel JOIN pg_attribute at ON at.attrelid = rel.oid
     WHERE at.attnum > 0 AND NOT at.attisdropped AND at.attacl IS NOT NULL
    UNION ALL
    SELECT format('policy %s on %s', quote_ident(p.polname), rel.name), 'definition',
           concat_ws(' ', CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                     'FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                     'TO ' || (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END, ', ' ORDER BY 1) FROM unnest(p.polroles) r),
                     'USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                     'WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')')
      FROM pg_policy p JOIN rel ON rel.oid = p.polrelid
    UNION ALL
    SELECT 'role ' || r.rolname, 'attributes',
           concat_ws(' ', CASE WHEN r.rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END,
                     CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END,
                     CASE WHEN r.rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END,
                     CASE WHEN r.rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
                     CASE WHEN r.rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END,
                     CASE WHEN r.rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
                     CASE WHEN r.rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END,
                     'CONNECTION LIMIT ' || r.rolconnlimit,
                     'VALID UNTIL ' || r.rolvaliduntil)
      FROM pg_roles r WHERE r.oid IN (SELECT oid FROM ours) OR r.rolsuper OR r.rolbypassrls
    UNION ALL
    SELECT 'role ' || o.rolname, 'member of',
           coalesce((SELECT string_agg(pg_get_userbyid(m.roleid) || CASE WHEN m.admin_option THEN ' WITH ADMIN OPTION' ELSE '' END, ', ' ORDER BY 1)
                       FROM pg_auth_members m WHERE m.member = o.oid), 'none')
      FROM ours o
    UNION ALL
    SELECT 'role ' || o.rolname, 'members',
           coalesce((SELECT string_agg(pg_get_userbyid(m.member) || CASE WHEN m.admin_option THEN ' WITH ADMIN OPTION' ELSE '' END, ', ' ORDER BY 1)
                       FROM pg_auth_members m WHERE m.roleid = o.oid), 'none')
      FROM ours o
    UNION ALL
    SELECT 'role ' || o.rolname, CASE WHEN s.setdatabase = 0 THEN 'settings in every database' ELSE 'settings in this database' END,
           array_to_string(ARRAY(SELECT x FROM unnest(s.setconfig) x ORDER BY 1), ', ')
      FROM ours o JOIN pg_db_role_setting s ON s.setrole = o.oid
     WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
    UNION ALL
    SELECT 'database ' || current_database(), 'settings', array_to_string(ARRAY(SELECT x FROM unnest(s.setconfig) x ORDER BY 1), ', ')
      FROM pg_db_role_setting s
     WHERE s.setrole = 0 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL
    SELECT 'schema tenantseal', 'owner', pg_get_userbyid(n.nspowner)::text FROM pg_namespace n WHERE n.nspname = 'tenantseal'
    UNION ALL
    SELECT 'schema tenantseal', 'privileges', coalesce((SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(n.nspacl) a), 'default')
      FROM pg_namespace n WHERE n.nspname = 'tenantseal'
    UNION ALL
    SELECT 'function ' || f.oid::regprocedure::text, 'definition',
           concat_ws(' ', 'owner ' || pg_get_userbyid(f.proowner), CASE WHEN f.prosecdef THEN 'SECURITY DEFINER' ELSE 'SECURITY INVOKER' END,
                     'LANGUAGE ' || (SELECT lanname FROM pg_language WHERE oid = f.prolang),
                     'SET ' || array_to_string(f.proconfig, ', '),
                     'body sha256 ' || encode(sha256(convert_to(concat(f.prosrc, f.probin, pg_get_function_sqlbody(f.oid)), 'UTF8')), 'hex'))
      FROM pg_proc f WHERE f.pronamespace = 'tenantseal'::regnamespace
    UNION ALL
    SELECT 'function ' || f.oid::regprocedure::text, 'privileges', coalesce((SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(f.proacl) a), 'default')
      FROM pg_proc f WHERE f.pronamespace = 'tenantseal'::regnamespace
    UNION ALL
    SELECT 'event trigger ' || quote_ident(e.evtname), 'definition',
           concat_ws(' ', 'ON ' || e.evtevent, 'EXECUTE FUNCTION ' || e.evtfoid::regprocedure::text, 'owner ' || pg_get_userbyid(e.evtowner),
                     CASE e.evtenabled WHEN 'D' THEN 'DISABLED' WHEN 'R' THEN 'ENABLED REPLICA' WHEN 'A' THEN 'ENABLED ALWAYS' ELSE 'ENABLED' END,
                     'WHEN TAG IN (' || array_to_string(e.evttags, ', ') || ')')
      FROM pg_event_trigger e
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.security_snapshot() FROM PUBLIC;

-- security_compare compares the security state with the one last recorded and appends, after the
-- entries of lead (ddl entries, recorded in any case) and, when anything changed, those of
-- lead_if_changed, one security_change entry per difference, under subject. The first comparison
-- records a security_baseline entry. It returns the number of differences. It locks the recorded state
-- only when there is a difference, so that comparing with no change holds no lock.
CREATE FUNCTION tenantseal.security_compare(subject text, lead jsonb DEFAULT '[]', lead_if_changed jsonb DEFAULT '[]') RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cur jsonb;
    old jsonb;
    events jsonb;
    n integer;
    i integer := 0;
BEGIN
    SELECT coalesce(jsonb_object_agg(s.object || ' ' || s.aspect, jsonb_build_array(s.object, s.aspect, s.value)), '{}')
      INTO cur FROM tenantseal.security_snapshot() s;
    SELECT snapshot INTO old FROM tenantseal.security_state;
    IF old IS NOT NULL AND old = cur AND jsonb_array_length(lead) = 0 THEN
        RETURN 0;
    END IF;
    SELECT snapshot INTO old FROM tenantseal.security_state FOR UPDATE;
    IF old IS NULL THEN
        INSERT INTO tenantseal.security_state (snapshot, taken_at) VALUES (cur, clock_timestamp());
        events := lead || jsonb_build_array(jsonb_build_object('kind', 'security_baseline', 'subject', subject,
            'detail', format('security state recorded: %s aspects of tables, policies, roles, functions and event triggers, sha256 %s',
                             (SELECT count(*) FROM jsonb_object_keys(cur)), encode(sha256(convert_to(cur::text, 'UTF8')), 'hex'))));
        n := 0;
    ELSE
        SELECT coalesce(jsonb_agg(jsonb_build_object('kind', 'security_change', 'subject', subject,
                   'table_name', left(coalesce(c.value ->> 0, o.value ->> 0), 256), 'operation', left(coalesce(c.value ->> 1, o.value ->> 1), 256),
                   'detail', left(format('%s: %s → %s', key, coalesce(o.value ->> 2, '(none)'), coalesce(c.value ->> 2, '(none)')), 2048))
                   ORDER BY key), '[]')
          INTO events
          FROM jsonb_each(old) o FULL JOIN jsonb_each(cur) c USING (key)
         WHERE o.value IS DISTINCT FROM c.value;
        n := jsonb_array_length(events);
        IF n > 0 THEN
            events := lead || lead_if_changed || events;
            UPDATE tenantseal.security_state SET snapshot = cur, taken_at = clock_timestamp();
        ELSE
            events := lead;
        END IF;
    END IF;
    -- audit_append takes at most 1000 events per call.
    WHILE i < jsonb_array_length(events) LOOP
        PERFORM tenantseal.audit_append((SELECT jsonb_agg(e ORDER BY k) FROM jsonb_array_elements(events) WITH ORDINALITY AS x(e, k)
                                          WHERE k > i AND k <= i + 1000));
        i := i + 1000;
    END LOOP;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.security_compare(text, jsonb, jsonb) FROM PUBLIC;

-- security_ddl_recorded tells whether the DDL of this session is recorded: not that of a session of the
-- roles that own nothing by design (app, auditor, audit writer, probe), whose DDL can touch their
-- temporary objects only; anything else they could change, security_watch sees.
CREATE FUNCTION tenantseal.security_ddl_recorded() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT NOT EXISTS (SELECT 1 FROM tenantseal.security_roles() r
                        WHERE pg_get_userbyid(r) = session_user AND pg_get_userbyid(r) !~ '_owner$')
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.security_ddl_recorded() FROM PUBLIC;

-- audit_ddl, the function of the ddl_command_end event trigger: a ddl entry per command on a recorded
-- relation (its policies, triggers and rules included) or an object of schema tenantseal, then the
-- comparison. GRANT, REVOKE and ALTER DEFAULT PRIVILEGES name no object here: their ddl entry is
-- recorded when they changed the security state.
CREATE FUNCTION tenantseal.audit_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    rel oid;
    who text := 'db:' || session_user;
    lead jsonb := '[]';
    grants jsonb := '[]';
    e jsonb;
BEGIN
    IF NOT tenantseal.security_ddl_recorded() THEN
        RETURN;
    END IF;
    FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        e := jsonb_build_object('kind', 'ddl', 'subject', left(who, 256), 'operation', r.command_tag,
            'row_key', left(r.object_identity, 256),
            'detail', left(format('%s %s by role %s', r.object_type, coalesce(r.object_identity, ''), session_user), 2048));
        IF r.command_tag IN ('GRANT', 'REVOKE', 'ALTER DEFAULT PRIVILEGES') THEN
            grants := grants || e;
            CONTINUE;
        END IF;
        rel := CASE r.classid
            WHEN 'pg_class'::regclass THEN r.objid
            WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = r.objid)
            WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = r.objid)
            WHEN 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = r.objid)
        END;
        IF r.schema_name = 'tenantseal' OR (rel IS NOT NULL AND tenantseal.security_relation(rel)) THEN
            lead := lead || (e || jsonb_build_object('table_name', left(coalesce(rel::regclass::text, r.object_identity), 256)));
        END IF;
    END LOOP;
    IF jsonb_array_length(lead) > 0 OR jsonb_array_length(grants) > 0 THEN
        PERFORM tenantseal.security_compare(who, lead, grants);
    END IF;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.audit_ddl() FROM PUBLIC;

-- audit_ddl_drop, the function of the sql_drop event trigger: a ddl entry per dropped table that was
-- recorded, policy, trigger or rule of one, or object of schema tenantseal, then the comparison.
CREATE FUNCTION tenantseal.audit_ddl_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    who text := 'db:' || session_user;
    lead jsonb := '[]';
    recorded jsonb := (SELECT snapshot FROM tenantseal.security_state);
    tbl text;
BEGIN
    IF NOT tenantseal.security_ddl_recorded() THEN
        RETURN;
    END IF;
    FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() WHERE NOT is_temporary LOOP
        tbl := CASE WHEN r.object_type IN ('table', 'view', 'materialized view', 'foreign table') THEN r.object_identity
                    WHEN r.object_type IN ('policy', 'trigger', 'rule') THEN
                        quote_ident(r.address_names[1]) || '.' || quote_ident(r.address_names[2]) END;
        IF r.schema_name = 'tenantseal'
           OR (tbl IS NOT NULL AND (recorded ? ('table ' || tbl || ' row security') OR r.objid IN (SELECT relid FROM tenantseal.tenant_tables))) THEN
            lead := lead || jsonb_build_object('kind', 'ddl', 'subject', left(who, 256), 'operation', 'DROP ' || upper(r.object_type),
                'table_name', left(coalesce(tbl, r.object_identity), 256), 'row_key', left(r.object_identity, 256),
                'detail', left(format('%s %s dropped by role %s%s', r.object_type, r.object_identity, session_user,
                                      CASE WHEN r.original THEN '' ELSE ' with what depended on it' END), 2048));
        END IF;
    END LOOP;
    IF jsonb_array_length(lead) > 0 THEN
        PERFORM tenantseal.security_compare(who, lead);
    END IF;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.audit_ddl_drop() FROM PUBLIC;

-- security_watch is the audit writer's comparison, under subject 'watcher:' || seen_by (the writer's
-- instance), for what event triggers do not see; then it returns the security entries (ddl,
-- security_change, security_baseline) appended since its last call, at most 1000, for alerts.
CREATE FUNCTION tenantseal.security_watch(seen_by text) RETURNS TABLE (seq bigint, kind text, subject text, detail text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    since bigint;
    upto bigint;
BEGIN
    PERFORM tenantseal.security_compare(left('watcher:' || coalesce(seen_by, ''), 256));
    SELECT s.watched_seq INTO since FROM tenantseal.security_state s FOR UPDATE;
    SELECT max(l.seq) INTO upto FROM (
        SELECT l.seq FROM tenantseal.audit_log l
         WHERE l.seq > since AND l.kind IN ('ddl', 'security_change', 'security_baseline') ORDER BY l.seq LIMIT 1000) l;
    IF upto IS NULL THEN
        RETURN;
    END IF;
    UPDATE tenantseal.security_state SET watched_seq = upto;
    RETURN QUERY SELECT l.seq, l.kind, l.subject, l.detail FROM tenantseal.audit_log l
                  WHERE l.seq > since AND l.seq <= upto AND l.kind IN ('ddl', 'security_change', 'security_baseline') ORDER BY l.seq;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.security_watch(text) FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.security_watch(text) TO %I', tenantseal.role_name('audit_writer'));
END $$;
