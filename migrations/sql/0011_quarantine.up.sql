-- The quarantine list: stored values that re-encryption found unreadable (tampered, copied from
-- elsewhere, under a key the keyset lacks, or shredded), each named by table, column and row, so that an
-- operator can repair them or retire old keys without them. The audit log records each find; this is the
-- work list. The app role, which re-encryption runs as, keeps its own tenant's entries.

CREATE TABLE tenantseal.quarantine (
    tenant_id   uuid NOT NULL REFERENCES tenantseal.tenants (id) ON DELETE CASCADE,
    table_name  regclass NOT NULL,
    column_name name NOT NULL,
    row_key     text NOT NULL,
    -- The key the ciphertext names (NULL when it names none) and why it does not decrypt.
    key_id      bigint,
    reason      text NOT NULL CHECK (reason IN ('tampered', 'unknown_key', 'shredded')),
    -- SHA-256 of the ciphertext as found: a value written again since is examined again.
    digest      bytea NOT NULL,
    found_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, table_name, column_name, row_key)
);
ALTER TABLE tenantseal.quarantine ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenantseal.quarantine FORCE ROW LEVEL SECURITY;

DO $$
DECLARE
    owner name := tenantseal.role_name('owner');
    app name := tenantseal.role_name('app');
    cond text := 'tenant_id = (SELECT tenantseal.current_tenant())';
BEGIN
    EXECUTE format('CREATE POLICY quarantine_select ON tenantseal.quarantine FOR SELECT TO %I USING (%s)', app, cond);
    EXECUTE format('CREATE POLICY quarantine_insert ON tenantseal.quarantine FOR INSERT TO %I WITH CHECK (%s)', app, cond);
    EXECUTE format('CREATE POLICY quarantine_update ON tenantseal.quarantine FOR UPDATE TO %I USING (%s) WITH CHECK (%s)', app, cond, cond);
    EXECUTE format('CREATE POLICY quarantine_delete ON tenantseal.quarantine FOR DELETE TO %I USING (%s)', app, cond);
    -- Forced row-level security applies to the owner too: it reads and clears every tenant's list.
    EXECUTE format('CREATE POLICY quarantine_owner ON tenantseal.quarantine FOR ALL TO %I USING (true) WITH CHECK (true)', owner);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON tenantseal.quarantine TO %I', app);
END $$;
