-- Key lifecycle state that caches, operators and the retire rule can see without unwrapping a keyset:
-- how long any process may cache opened keysets, when each tenant's current primary keys took over, a
-- version that changes with every stored change, the age of every key, and which tenants were
-- crypto-shredded.

-- How long any application process may keep a tenant's opened keysets (keys.Wrapped.CacheBound: a
-- Keyring caches for the shorter of this and its own CacheTTL), and how long a write encrypted just
-- before a cache expired may take to commit. Retiring a key is safe once both have passed since the
-- rotation that replaced it: no process can then still encrypt under it.
CREATE TABLE tenantseal.key_settings (
    singleton              boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    max_cache_ttl          interval NOT NULL DEFAULT '5 minutes' CHECK (max_cache_ttl > interval '0'),
    write_grace            interval NOT NULL DEFAULT '1 minute' CHECK (write_grace >= interval '0'),
    -- The bound before the last change, and when it changed: a lowered bound does not shorten what
    -- caches loaded before the change keep, so the retire rule keeps the larger one until the old has
    -- passed.
    previous_max_cache_ttl interval,
    changed_at             timestamptz
);
INSERT INTO tenantseal.key_settings DEFAULT VALUES;

-- How long after a rotation a retirement must wait: the cache bound in force (see above) plus the write
-- grace.
CREATE FUNCTION tenantseal.key_retire_wait() RETURNS interval
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN previous_max_cache_ttl IS NOT NULL AND now() < changed_at + previous_max_cache_ttl
                THEN greatest(max_cache_ttl, previous_max_cache_ttl) ELSE max_cache_ttl END + write_grace
      FROM tenantseal.key_settings
$$;
REVOKE EXECUTE ON FUNCTION tenantseal.key_retire_wait() FROM PUBLIC;

-- version: bumped by every change of the stored keyset (caches compare it to what they hold).
-- primary_since: when the current primary key took over; existing rows take their last change, which is
-- never earlier than their last rotation.
ALTER TABLE tenantseal.tenant_keysets
    ADD COLUMN version bigint NOT NULL DEFAULT 1,
    ADD COLUMN primary_since timestamptz NOT NULL DEFAULT now();
UPDATE tenantseal.tenant_keysets SET primary_since = updated_at;

-- The age and fate of every key, by id (key ids are not secret: every ciphertext names its key). Keys
-- created before this migration have no row, or one without created_at: their age is unknown.
CREATE TABLE tenantseal.tenant_keys (
    tenant_id    uuid NOT NULL REFERENCES tenantseal.tenants (id) ON DELETE CASCADE,
    purpose      text NOT NULL CHECK (purpose IN ('aead', 'prf')),
    key_id       bigint NOT NULL CHECK (key_id BETWEEN 0 AND 4294967295),
    created_at   timestamptz DEFAULT now(),
    disabled_at  timestamptz,
    destroyed_at timestamptz,
    PRIMARY KEY (tenant_id, purpose, key_id)
);
REVOKE ALL ON tenantseal.tenant_keys FROM PUBLIC;

-- When the tenant's keysets were crypto-shredded; NULL: never.
ALTER TABLE tenantseal.tenants ADD COLUMN shredded_at timestamptz;

DO $$
DECLARE
    app name := tenantseal.role_name('app');
BEGIN
    -- Loaders read the cache bound beside the keysets.
    EXECUTE format('GRANT SELECT ON tenantseal.key_settings TO %I', app);
END $$;
