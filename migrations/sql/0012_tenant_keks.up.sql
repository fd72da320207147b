-- A KEK per tenant (bring your own key): a tenant listed here has its keysets wrapped by a key of its
-- own, usually one its customer holds in the customer's KMS, instead of the database's shared KEK. The
-- customer revokes access to its data alone by disabling that key. The URI names the key (an account
-- and a key path), not a secret; the canary tells a wrong key from a tampered keyset, as
-- tenantseal.kek_canary does for the shared KEK.

CREATE TABLE tenantseal.tenant_keks (
    tenant_id  uuid PRIMARY KEY REFERENCES tenantseal.tenants (id) ON DELETE CASCADE,
    kek_uri    text NOT NULL CHECK (kek_uri ~ '^[a-z][a-z0-9+.-]*://'),
    kek_id     text NOT NULL,
    canary     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Enabled but not forced: the owner administers them; the app role reads only its own tenant's.
ALTER TABLE tenantseal.tenant_keks ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    EXECUTE format('CREATE POLICY tenant_keks_select ON tenantseal.tenant_keks FOR SELECT TO %I USING (tenant_id = (SELECT tenantseal.current_tenant()))', app);
    EXECUTE format('GRANT SELECT ON tenantseal.tenant_keks TO %I', app);
END $$;
