-- The verifier as migration 7 left it: tenantseal.current_tenant() and tenantseal.elevated() in plpgsql
-- themselves, nothing of the extension. Reverting loses no data.
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

DROP TRIGGER IF EXISTS verifier_invalidate ON tenantseal.context_keys;
DROP TRIGGER IF EXISTS verifier_invalidate ON tenantseal.tenants;
DROP TRIGGER IF EXISTS verifier_invalidate ON tenantseal.settings;
DROP FUNCTION tenantseal.select_verifier(text);
DROP FUNCTION tenantseal.verifier();
DROP FUNCTION tenantseal.plpgsql_elevated();
DROP FUNCTION tenantseal.plpgsql_current_tenant();

-- The extension goes when this owner installed it (migration 20 did); one a superuser installed stays,
-- unused, for its owner to drop.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'tenantseal_verify' AND extowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)) THEN
        DROP EXTENSION tenantseal_verify;
    ELSIF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'tenantseal_verify') THEN
        RAISE WARNING 'tenantseal: kept the extension tenantseal_verify, which another role installed: DROP EXTENSION tenantseal_verify as its owner (nothing uses it now)';
    END IF;
END $$;
