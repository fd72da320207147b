-- Per-tenant Tink keysets, wrapped by a key-encryption key (KEK) that never lives in the database, and
-- the registry of encrypted columns that re-encryption and key retirement walk.

CREATE TABLE tenantseal.tenant_keysets (
    tenant_id  uuid NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    -- aead: field encryption; prf: blind indexes.
    purpose    text NOT NULL CHECK (purpose IN ('aead', 'prf')),
    -- Fingerprint of the KEK that wrapped this keyset (not secret).
    kek_id     text NOT NULL,
    -- The Tink keyset encrypted by the KEK, with the tenant id and purpose as associated data.
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, purpose)
);
-- Enabled but not forced: the owner administers keysets; the app role reads only its own tenant's.
ALTER TABLE tenantseal.tenant_keysets ENABLE ROW LEVEL SECURITY;

-- A value encrypted by the KEK, so that a process can tell a wrong KEK at startup.
CREATE TABLE tenantseal.kek_canary (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    kek_id     text NOT NULL,
    ciphertext bytea NOT NULL
);

-- Which columns hold ciphertext and which blind index goes with each. Register your own in your
-- migrations, as examples/reference/migrations does.
CREATE TABLE tenantseal.encrypted_columns (
    table_name         regclass NOT NULL,
    column_name        name NOT NULL,
    blind_index_column name,
    -- How the plaintext is normalised before its blind index is computed.
    normalizer         text NOT NULL DEFAULT 'exact' CHECK (normalizer IN ('exact', 'lower', 'email')),
    PRIMARY KEY (table_name, column_name),
    CHECK (blind_index_column IS NOT NULL OR normalizer = 'exact')
);

DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    EXECUTE format('CREATE POLICY tenant_keysets_select ON tenantseal.tenant_keysets FOR SELECT TO %I USING (tenant_id = (SELECT tenantseal.current_tenant()))', app);
    EXECUTE format('CREATE POLICY tenant_keysets_elevated_read ON tenantseal.tenant_keysets FOR SELECT TO %I USING ((SELECT tenantseal.elevated()))', app);
    EXECUTE format('GRANT SELECT ON tenantseal.tenant_keysets, tenantseal.kek_canary, tenantseal.encrypted_columns TO %I', app);
END $$;
