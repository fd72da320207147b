-- Identity bindings in the database, and staff tokens spent once across every process:
--
--   * tenantseal.tenant_bindings binds the value an identity provider's tenant claim has (an Auth0
--     organization id, a Keycloak organization, an Entra ID tenant id) to one tenant, for one issuer.
--     Only the owner writes and reads it (tenantseal tenants bind, unbind, bindings): the app role has
--     no privilege on it, so SQL injected into the application cannot list which tenant which issuer
--     names by which value.
--   * tenantseal.tenant_binding(issuer, claim) is the app role's only way in: given both, as a verified
--     token has them, it answers the tenant's key and status, nothing else and nothing for less (for an
--     issuer that may not speak for the tenant, only when the issuer is bound to some tenant: the
--     refusal names its target). A
--     miss, an issuer that may not speak for the tenant and a tenant that is not active are counted in
--     tenantseal.binding_refusals (a sequence: not rolled back with the caller's transaction, nor with a
--     subtransaction that caught an error) and written to the server log at LOG level, which the app
--     role cannot turn off: an attacker guessing values leaves a trace the database kept on its own.
--   * tenantseal.spent_tokens remembers the staff tokens that granted an elevation (a hash of issuer
--     and jti) until they expire, so that a token elevates once, whichever process sees it again.
--     tenantseal.spend_token is the app role's only way in: it can spend a token, never unspend one.

CREATE TABLE tenantseal.tenant_bindings (
    issuer     text NOT NULL CHECK (octet_length(issuer) BETWEEN 1 AND 2000),
    claim      text NOT NULL CHECK (octet_length(claim) BETWEEN 1 AND 256),
    tenant_id  uuid NOT NULL REFERENCES tenantseal.tenants (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, claim)
);
CREATE INDEX tenant_bindings_claim ON tenantseal.tenant_bindings (claim);
CREATE INDEX tenant_bindings_tenant ON tenantseal.tenant_bindings (tenant_id);
REVOKE ALL ON tenantseal.tenant_bindings FROM PUBLIC;

CREATE SEQUENCE tenantseal.binding_refusals;
REVOKE ALL ON SEQUENCE tenantseal.binding_refusals FROM PUBLIC;

-- tenant_binding returns the key and status of the tenant that issuer iss names by the tenant claim's
-- value val: one row (key, status, false) when iss binds val to a tenant (active, suspended or
-- deleted: the caller refuses all but active); (key, status, true) of the tenant val is bound to for
-- other issuers, when iss is bound to some tenant itself (a token of a known issuer naming another
-- issuer's tenant: the caller refuses it, naming the tenant it aimed at); no row otherwise. A caller
-- must know a bound issuer and a bound value to learn a tenant key: nothing is listed, nothing matched
-- by pattern. Every answer but that of an active tenant is counted and logged.
CREATE FUNCTION tenantseal.tenant_binding(iss text, val text)
RETURNS TABLE (tenant_key text, tenant_status text, other_issuer boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k text;
    st text;
    outcome text;
BEGIN
    IF iss IS NULL OR val IS NULL OR octet_length(iss) > 2000 OR octet_length(val) > 256 THEN
        outcome := 'malformed';
    ELSE
        SELECT t.key, t.status INTO k, st
          FROM tenantseal.tenant_bindings b JOIN tenantseal.tenants t ON t.id = b.tenant_id
         WHERE b.issuer = iss AND b.claim = val;
        IF FOUND AND st = 'active' THEN
            RETURN QUERY SELECT k, st, false;
            RETURN;
        ELSIF FOUND THEN
            outcome := 'tenant ' || st;
            RETURN QUERY SELECT k, st, false;
        ELSIF EXISTS (SELECT 1 FROM tenantseal.tenant_bindings b WHERE b.issuer = iss) THEN
            SELECT t.key, t.status INTO k, st
              FROM tenantseal.tenant_bindings b JOIN tenantseal.tenants t ON t.id = b.tenant_id
             WHERE b.claim = val ORDER BY b.issuer LIMIT 1;
            IF FOUND THEN
                outcome := 'bound for other issuers';
                RETURN QUERY SELECT k, st, true;
            ELSE
                outcome := 'not bound';
            END IF;
        ELSE
            outcome := 'not bound';
        END IF;
    END IF;
    BEGIN
        PERFORM nextval('tenantseal.binding_refusals');
    EXCEPTION WHEN read_only_sql_transaction THEN
        NULL; -- a read-only transaction cannot advance a sequence: the log line stays
    END;
    RAISE LOG 'tenantseal: refused a tenant binding lookup: % (role %, issuer %, claim %, backend %)',
        outcome, session_user, quote_literal(regexp_replace(left(iss, 200), '[[:cntrl:]]', '?', 'g')),
        quote_literal(regexp_replace(left(val, 256), '[[:cntrl:]]', '?', 'g')), pg_backend_pid();
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.tenant_binding(text, text) FROM PUBLIC;

CREATE TABLE tenantseal.spent_tokens (
    token        bytea PRIMARY KEY CHECK (octet_length(token) = 32),
    forget_after timestamptz NOT NULL
);
CREATE INDEX spent_tokens_forget_after ON tenantseal.spent_tokens (forget_after);
REVOKE ALL ON tenantseal.spent_tokens FROM PUBLIC;

-- spend_token spends the token of issuer iss with id jti, which stays valid for at most remaining (by
-- the clock of the authenticator that verified it; the database's own clock then counts it down): true
-- the first time, false while it is remembered as spent. A token is remembered for remaining, clamped
-- to [0, 25 hours] (a token lives 24 hours at most), and a minute more; a call can lengthen nothing
-- that is remembered and shorten nothing. Each call forgets up to 100 tokens whose time is past.
CREATE FUNCTION tenantseal.spend_token(iss text, jti text, remaining interval) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h bytea;
    fresh boolean;
BEGIN
    IF iss IS NULL OR jti IS NULL OR iss = '' OR jti = '' OR octet_length(iss) > 2000 OR octet_length(jti) > 256 THEN
        RAISE EXCEPTION 'tenantseal: spend_token needs an issuer (1 to 2000 bytes) and a jti (1 to 256 bytes)' USING ERRCODE = '22023';
    END IF;
    h := sha256(int4send(octet_length(iss)) || convert_to(iss, 'UTF8') || convert_to(jti, 'UTF8'));
    DELETE FROM tenantseal.spent_tokens WHERE token IN
        (SELECT token FROM tenantseal.spent_tokens WHERE forget_after < now() ORDER BY forget_after LIMIT 100);
    INSERT INTO tenantseal.spent_tokens AS s (token, forget_after)
    VALUES (h, now() + least(greatest(coalesce(remaining, interval '0'), interval '0'), interval '25 hours') + interval '1 minute')
    ON CONFLICT (token) DO UPDATE SET forget_after = excluded.forget_after WHERE s.forget_after < now()
    RETURNING true INTO fresh;
    RETURN coalesce(fresh, false);
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.spend_token(text, text, interval) FROM PUBLIC;

DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION tenantseal.tenant_binding(text, text), tenantseal.spend_token(text, text, interval) TO %I', app);
    EXECUTE format('GRANT SELECT ON SEQUENCE tenantseal.binding_refusals TO %I', tenantseal.role_name('auditor'));
END $$;
