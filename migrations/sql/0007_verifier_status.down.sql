-- The verifier as migration 1 made it: no tenant status, no refusal count.
CREATE OR REPLACE FUNCTION tenantseal.verify_token(tok text) RETURNS tenantseal.claims
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

CREATE OR REPLACE FUNCTION tenantseal.current_tenant() RETURNS uuid
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

DROP FUNCTION tenantseal.refuse(text, text);
DROP SEQUENCE tenantseal.context_refusals;
