-- tenantseal foundation: the tenantseal schema, role lookup, the tenants table, the signing keys of the
-- tenant context and the functions that verify it. Runs as the owner role.
--
-- Role names come from the setting tenantseal.role_prefix (bootstrap stores it on the database) or, when
-- unset, from the connected role's name "<prefix>_owner", so the stock migrate CLI needs no extra flags.

CREATE SCHEMA tenantseal;
REVOKE ALL ON SCHEMA tenantseal FROM PUBLIC;

CREATE FUNCTION tenantseal.role_name(kind text) RETURNS name
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    prefix text := nullif(current_setting('tenantseal.role_prefix', true), '');
    r name;
BEGIN
    IF prefix IS NULL THEN
        IF session_user::text !~ '_owner$' THEN
            RAISE EXCEPTION 'tenantseal: cannot tell the role prefix: set tenantseal.role_prefix or connect as <prefix>_owner (connected as %)', session_user;
        END IF;
        prefix := regexp_replace(session_user::text, '_owner$', '');
    END IF;
    r := (prefix || '_' || kind)::name;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        RAISE EXCEPTION 'tenantseal: role % does not exist: run tenantseal bootstrap first', r;
    END IF;
    RETURN r;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.role_name(text) FROM PUBLIC;

-- Signing keys of the tenant context. Only the HMAC-SHA256 inner and outer padded keys are stored: the
-- verifier needs nothing else, and no role but the owner can read them.
CREATE TABLE tenantseal.context_keys (
    kid        text PRIMARY KEY CHECK (kid ~ '^[a-z0-9-]{1,32}$'),
    ipad       bytea NOT NULL CHECK (length(ipad) = 64),
    opad       bytea NOT NULL CHECK (length(opad) = 64),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Tokens signed with this key are refused from this moment on (rotation overlap ends).
    not_after  timestamptz
);
REVOKE ALL ON tenantseal.context_keys FROM PUBLIC;

-- Deployment switches. allow_unsigned lets an engine that cannot run the verifier use plain tenant ids;
-- it is off unless an owner turns it on.
CREATE TABLE tenantseal.settings (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    allow_unsigned boolean NOT NULL DEFAULT false
);
INSERT INTO tenantseal.settings DEFAULT VALUES;
REVOKE ALL ON tenantseal.settings FROM PUBLIC;

CREATE TYPE tenantseal.claims AS (
    tenant_id  uuid,
    subject    text,
    expires_at timestamptz,
    elevated   boolean
);

-- verify_token checks a tenant context token and returns its claims, or NULL for no context. Any value
-- that is not a valid, unexpired token signed with a current key raises SQLSTATE TS401. Internal: only the
-- owner may call it; the app reaches it through the SECURITY DEFINER functions below.
--
-- Token: v1.<kid>.<tenant uuid>.<expiry, unix seconds>.<flags>.<subject, hex>.<HMAC-SHA256 hex of all before>
CREATE FUNCTION tenantseal.verify_token(tok text) RETURNS tenantseal.claims
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p text[];
    k record;
    c tenantseal.claims;
BEGIN
    IF tok IS NULL OR tok = '' THEN
        RETURN NULL;
    END IF;
    p := string_to_array(tok, '.');
    IF p[1] = 'u1' AND cardinality(p) = 2 THEN
        IF NOT (SELECT allow_unsigned FROM tenantseal.settings) THEN
            RAISE EXCEPTION 'tenantseal: unsigned tenant context refused' USING ERRCODE = 'TS401';
        END IF;
        IF p[2] !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            RAISE EXCEPTION 'tenantseal: malformed tenant context' USING ERRCODE = 'TS401';
        END IF;
        c.tenant_id := p[2]::uuid;
        c.elevated := false;
        RETURN c;
    END IF;
    IF cardinality(p) <> 7 OR p[1] <> 'v1'
       OR p[3] !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       OR p[4] !~ '^[0-9]{1,12}$' OR p[5] !~ '^[a-z]{0,8}$'
       OR p[6] !~ '^[0-9a-f]*$' OR length(p[6]) > 512 OR length(p[6]) % 2 = 1
       OR p[7] !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'tenantseal: malformed tenant context' USING ERRCODE = 'TS401';
    END IF;
    SELECT ipad, opad INTO k FROM tenantseal.context_keys
     WHERE kid = p[2] AND (not_after IS NULL OR not_after > now());
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenantseal: tenant context signed with an unknown or retired key' USING ERRCODE = 'TS401';
    END IF;
    IF sha256(k.opad || sha256(k.ipad || convert_to(left(tok, length(tok) - 65), 'UTF8')))
       <> decode(p[7], 'hex') THEN
        RAISE EXCEPTION 'tenantseal: tenant context signature does not verify' USING ERRCODE = 'TS401';
    END IF;
    c.expires_at := to_timestamp(p[4]::bigint);
    IF c.expires_at <= now() THEN
        RAISE EXCEPTION 'tenantseal: tenant context expired' USING ERRCODE = 'TS401';
    END IF;
    c.tenant_id := p[3]::uuid;
    c.subject := convert_from(decode(p[6], 'hex'), 'UTF8');
    c.elevated := strpos(p[5], 'e') > 0;
    RETURN c;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.verify_token(text) FROM PUBLIC;

-- current_tenant is what every tenant policy compares with, wrapped as (SELECT ...) so that it runs once
-- per statement. NULL (no row matches, every write fails) without a context and under elevation, which is
-- read-only. The common case, a valid signed token, is checked inline (one key lookup, two SHA-256); every
-- other value goes through verify_token, which raises TS401 with the precise reason.
CREATE FUNCTION tenantseal.current_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tok text := current_setting('tenantseal.context', true);
    p text[];
    k record;
    c tenantseal.claims;
BEGIN
    IF tok IS NULL OR tok = '' THEN
        RETURN NULL;
    END IF;
    p := string_to_array(tok, '.');
    -- The explicit unsigned mode (a plain id), only when an owner allowed it: checked as cheaply.
    IF p[1] = 'u1' AND cardinality(p) = 2
       AND p[2] ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       AND (SELECT allow_unsigned FROM tenantseal.settings) THEN
        RETURN p[2]::uuid;
    END IF;
    IF cardinality(p) = 7 AND p[1] = 'v1' AND length(p[7]) = 64 THEN
        SELECT ipad, opad INTO k FROM tenantseal.context_keys
         WHERE kid = p[2] AND (not_after IS NULL OR not_after > now());
        -- A matching signature means the signer (who holds the key) wrote every field.
        IF FOUND AND encode(sha256(k.opad || sha256(k.ipad || convert_to(left(tok, length(tok) - 65), 'UTF8'))), 'hex') = p[7]
           AND p[4]::bigint > extract(epoch FROM now()) THEN
            IF strpos(p[5], 'e') > 0 THEN
                RETURN NULL;
            END IF;
            RETURN p[3]::uuid;
        END IF;
    END IF;
    c := tenantseal.verify_token(tok);
    IF c.elevated THEN
        RETURN NULL;
    END IF;
    RETURN c.tenant_id;
END $$;

-- elevated is true under a valid, unexpired elevation claim: the dedicated read-only policies use it.
CREATE FUNCTION tenantseal.elevated() RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tok text := current_setting('tenantseal.context', true);
BEGIN
    -- Cheap refusal for ordinary tokens: the flags field carries no 'e'.
    IF tok IS NULL OR split_part(tok, '.', 5) !~ 'e' THEN
        RETURN false;
    END IF;
    RETURN coalesce((tenantseal.verify_token(tok)).elevated, false);
END $$;

-- current_subject names who acts, for audit records; NULL without a context.
CREATE FUNCTION tenantseal.current_subject() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (tenantseal.verify_token(current_setting('tenantseal.context', true))).subject;
END $$;

REVOKE EXECUTE ON FUNCTION tenantseal.current_tenant(), tenantseal.elevated(), tenantseal.current_subject() FROM PUBLIC;

-- protect_table puts a tenant table under forced row-level security: one policy per command for the app
-- role, comparing tenant_id with the verified tenant once per statement, a read-only policy for elevated
-- claims, and DML grants for the app role. Use it for your own tables too.
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
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.protect_table(regclass) FROM PUBLIC;

DO $$
DECLARE
    app name := tenantseal.role_name('app');
    auditor name := tenantseal.role_name('auditor');
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA tenantseal TO %I, %I', app, auditor);
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.current_tenant(), tenantseal.elevated(), tenantseal.current_subject() TO %I', app);
END $$;

-- Tenants: the one global table the app may read, and then only its own row. RLS is enabled but not
-- forced: the owner administers tenants, the app role only ever sees its own.
CREATE TABLE public.tenants (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
    created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.tenants ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    EXECUTE format('CREATE POLICY tenants_select ON public.tenants FOR SELECT TO %I USING (id = (SELECT tenantseal.current_tenant()))', app);
    EXECUTE format('CREATE POLICY tenants_elevated_read ON public.tenants FOR SELECT TO %I USING ((SELECT tenantseal.elevated()))', app);
    EXECUTE format('GRANT SELECT ON public.tenants TO %I', app);
END $$;
