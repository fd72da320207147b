-- The verifier of the tenant context, hardened:
--
--   * A token of a tenant that is suspended, deleted or unknown to tenantseal.tenants is refused (TS401).
--     The registry row is read in the same lookup as the signing key: one index probe more per statement.
--   * An elevation names one tenant, the one of its support case, and reads only that tenant's rows:
--     current_tenant() returns it, so the one tenant policy per command needs no second, ORed policy
--     (which made the tenant comparison a filter instead of an index condition: EXPLAIN ANALYZE then
--     counted other tenants' rows). An elevated token is honoured only in a READ ONLY transaction, so it
--     can never write, whatever the policies say.
--   * Every refusal is counted in tenantseal.context_refusals, a sequence (not rolled back with the
--     transaction that failed, nor with a subtransaction that caught the error), and written to the
--     server log at LOG level, which the app role cannot turn off: attempts that injected SQL catches
--     itself (DO ... EXCEPTION) still leave a trace the database kept on its own.

CREATE SEQUENCE tenantseal.context_refusals;
REVOKE ALL ON SEQUENCE tenantseal.context_refusals FROM PUBLIC;

-- refuse counts and logs a refusal, then raises TS401 with reason. claimed is the tenant a well-formed
-- token names (never the token itself).
CREATE FUNCTION tenantseal.refuse(reason text, claimed text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    BEGIN
        PERFORM nextval('tenantseal.context_refusals');
    EXCEPTION WHEN read_only_sql_transaction THEN
        -- A read-only transaction (an elevation, a standby) cannot advance a sequence: the log line stays.
        NULL;
    END;
    RAISE LOG 'tenantseal: refused a tenant context: % (role %, tenant claimed %, backend %)',
        reason, session_user, coalesce(claimed, 'none'), pg_backend_pid();
    RAISE EXCEPTION 'tenantseal: %', reason USING ERRCODE = 'TS401';
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.refuse(text, text) FROM PUBLIC;

-- verify_token checks a tenant context token and returns its claims, or NULL for no context. Any value
-- that is not a valid, unexpired token signed with a current key, for an active tenant, raises SQLSTATE
-- TS401 through tenantseal.refuse; so does an elevated token outside a READ ONLY transaction.
CREATE OR REPLACE FUNCTION tenantseal.verify_token(tok text) RETURNS tenantseal.claims
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uuid_re constant text := '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
    p text[];
    k record;
    c tenantseal.claims;
    st text;
BEGIN
    IF tok IS NULL OR tok = '' THEN
        RETURN NULL;
    END IF;
    p := string_to_array(tok, '.');
    IF p[1] = 'u1' AND cardinality(p) = 2 THEN
        IF NOT (SELECT allow_unsigned FROM tenantseal.settings) THEN
            PERFORM tenantseal.refuse('unsigned tenant context refused', NULL);
        END IF;
        IF p[2] !~ uuid_re THEN
            PERFORM tenantseal.refuse('malformed tenant context', NULL);
        END IF;
        c.tenant_id := p[2]::uuid;
        c.elevated := false;
    ELSE
        IF cardinality(p) <> 7 OR p[1] <> 'v1'
           OR p[3] !~ uuid_re
           OR p[4] !~ '^[0-9]{1,12}$' OR p[5] !~ '^[a-z]{0,8}$'
           OR p[6] !~ '^[0-9a-f]*$' OR length(p[6]) > 512 OR length(p[6]) % 2 = 1
           OR p[7] !~ '^[0-9a-f]{64}$' THEN
            PERFORM tenantseal.refuse('malformed tenant context', NULL);
        END IF;
        SELECT ipad, opad INTO k FROM tenantseal.context_keys
         WHERE kid = p[2] AND (not_after IS NULL OR not_after > now());
        IF NOT FOUND THEN
            PERFORM tenantseal.refuse('tenant context signed with an unknown or retired key', p[3]);
        END IF;
        IF sha256(k.opad || sha256(k.ipad || convert_to(left(tok, length(tok) - 65), 'UTF8')))
           <> decode(p[7], 'hex') THEN
            PERFORM tenantseal.refuse('tenant context signature does not verify', p[3]);
        END IF;
        c.expires_at := to_timestamp(p[4]::bigint);
        IF c.expires_at <= now() THEN
            PERFORM tenantseal.refuse('tenant context expired', p[3]);
        END IF;
        c.tenant_id := p[3]::uuid;
        c.subject := convert_from(decode(p[6], 'hex'), 'UTF8');
        c.elevated := strpos(p[5], 'e') > 0;
    END IF;
    SELECT status INTO st FROM tenantseal.tenants WHERE id = c.tenant_id;
    IF st IS DISTINCT FROM 'active' THEN
        PERFORM tenantseal.refuse(format('tenant context of a %s tenant', coalesce(st, 'unknown')), c.tenant_id::text);
    END IF;
    IF c.elevated AND current_setting('transaction_read_only') <> 'on' THEN
        PERFORM tenantseal.refuse('an elevated tenant context reads only: begin the transaction READ ONLY', c.tenant_id::text);
    END IF;
    RETURN c;
END $$;

-- current_tenant is what every tenant policy compares with, wrapped as (SELECT ...) so that it runs once
-- per statement: the tenant whose rows the statement may see and write; under an elevation, the tenant
-- of the support case, in a read-only transaction. NULL (no row matches, every write fails) without a
-- context. The common case, a valid signed token of an active tenant, is checked inline (a lookup of
-- the key, two SHA-256, then a lookup of the tenant's status); every other value goes through
-- verify_token, which raises TS401 with the precise reason.
CREATE OR REPLACE FUNCTION tenantseal.current_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tok text := current_setting('tenantseal.context', true);
    p text[];
    ipad bytea;
    opad bytea;
    st text;
BEGIN
    IF tok IS NULL OR tok = '' THEN
        RETURN NULL;
    END IF;
    p := string_to_array(tok, '.');
    IF cardinality(p) = 7 AND p[1] = 'v1' AND length(p[7]) = 64 THEN
        SELECT ck.ipad, ck.opad INTO ipad, opad FROM tenantseal.context_keys ck
         WHERE ck.kid = p[2] AND (ck.not_after IS NULL OR ck.not_after > now());
        -- A matching signature means the signer (who holds the key) wrote every field.
        IF FOUND AND sha256(opad || sha256(ipad || convert_to(left(tok, -65), 'UTF8'))) = decode(p[7], 'hex')
           AND p[4]::bigint > extract(epoch FROM now())
           AND (strpos(p[5], 'e') = 0 OR current_setting('transaction_read_only') = 'on') THEN
            SELECT t.status INTO st FROM tenantseal.tenants t WHERE t.id = p[3]::uuid;
            IF st = 'active' THEN
                RETURN p[3]::uuid;
            END IF;
        END IF;
    ELSIF p[1] = 'u1' AND cardinality(p) = 2
       AND p[2] ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       AND (SELECT allow_unsigned FROM tenantseal.settings)
       AND (SELECT status FROM tenantseal.tenants WHERE id = p[2]::uuid) = 'active' THEN
        -- The explicit unsigned mode (a plain id), only when an owner allowed it: checked as cheaply.
        RETURN p[2]::uuid;
    END IF;
    RETURN (tenantseal.verify_token(tok)).tenant_id;
END $$;

-- elevated is true under a valid, unexpired elevation claim (in a read-only transaction). No policy
-- needs it any more: an elevation's tenant is current_tenant().
CREATE OR REPLACE FUNCTION tenantseal.elevated() RETURNS boolean
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

DO $$
BEGIN
    EXECUTE format('GRANT SELECT ON SEQUENCE tenantseal.context_refusals TO %I', tenantseal.role_name('auditor'));
END $$;
