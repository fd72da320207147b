-- Data residency and retention per tenant:
--
--   * tenantseal.tenant_governance.region records where a tenant's data is to live: a short identifier such as
--     eu, eu-west-1 or us-east-2 (lower-case letters and digits, groups joined by hyphens, at most 32
--     bytes), or NULL when none is recorded. It is a record for operators and auditors: tenantseal does
--     not move or route data by it.
--   * tenantseal.retention_policies names retention policies; tenantseal.retention_rules gives each its
--     rules: rows of a protected tenant table whose timestamp column is older than max_age are deleted
--     by the retention job (tenantseal retention run). A policy's shred_after is the grace period after
--     which a deleted tenant's keysets are crypto-shredded; NULL: never by the job. Every change of a
--     policy raises its version, which the job's deletion certificates name.
--   * tenantseal.tenant_governance.retention_policy names the tenant's policy; NULL (or no row):
--     nothing of it is deleted. The table is keyed by tenant, beside tenantseal.tenants, so that the
--     registry's own columns (which the app role reads of its own row, and tools fill column by
--     column) stay as they were.
--   * tenantseal.tenants.deleted_at is when the tenant was marked deleted, set by the database itself;
--     the grace period counts from it. Tenants deleted before this migration count from the migration.
--
-- Only the owner reads or writes any of it: the app role has no privilege on the policies, on
-- tenant_governance, nor on tenants.deleted_at (its column grants name the columns that existed before).

CREATE TABLE tenantseal.retention_policies (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    version     integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    shred_after interval CHECK (shred_after >= interval '0'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON tenantseal.retention_policies FROM PUBLIC;

CREATE TABLE tenantseal.retention_rules (
    policy      text NOT NULL REFERENCES tenantseal.retention_policies (name) ON DELETE CASCADE,
    relid       regclass NOT NULL,
    time_column name NOT NULL,
    max_age     interval NOT NULL CHECK (max_age > interval '0'),
    PRIMARY KEY (policy, relid)
);
REVOKE ALL ON tenantseal.retention_rules FROM PUBLIC;

-- retention_rule_check refuses a rule on a table that protect_table has not protected, or on a column
-- that is missing or not a timestamp or date: the job deletes through row-level security, tenant by
-- tenant, and compares that column with the cut-off.
CREATE FUNCTION tenantseal.retention_rule_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    typ regtype;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tenantseal.tenant_tables t WHERE t.relid = NEW.relid) THEN
        RAISE EXCEPTION 'tenantseal: % is not a protected tenant table: retention rules apply to tables tenantseal.protect_table protected', NEW.relid
            USING ERRCODE = '22023';
    END IF;
    SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
     WHERE a.attrelid = NEW.relid AND a.attname = NEW.time_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenantseal: % has no column %', NEW.relid, quote_ident(NEW.time_column) USING ERRCODE = '42703';
    END IF;
    IF typ NOT IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'tenantseal: %.% is of type %: a retention rule needs a timestamptz, timestamp or date column', NEW.relid, quote_ident(NEW.time_column), typ
            USING ERRCODE = '42804';
    END IF;
    RETURN NEW;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.retention_rule_check() FROM PUBLIC;
CREATE TRIGGER retention_rule_check BEFORE INSERT OR UPDATE ON tenantseal.retention_rules
    FOR EACH ROW EXECUTE FUNCTION tenantseal.retention_rule_check();

CREATE TABLE tenantseal.tenant_governance (
    tenant_id        uuid PRIMARY KEY REFERENCES tenantseal.tenants (id) ON DELETE CASCADE,
    region           text CHECK (octet_length(region) <= 32 AND region ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$'),
    retention_policy text REFERENCES tenantseal.retention_policies (name)
);
CREATE INDEX tenant_governance_policy ON tenantseal.tenant_governance (retention_policy);
REVOKE ALL ON tenantseal.tenant_governance FROM PUBLIC;

ALTER TABLE tenantseal.tenants ADD COLUMN deleted_at timestamptz;
UPDATE tenantseal.tenants SET deleted_at = now() WHERE status = 'deleted';

-- tenant_deleted_at dates a tenant's deletion once, when its status first becomes deleted; the date
-- never changes afterwards.
CREATE FUNCTION tenantseal.tenant_deleted_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'deleted' THEN
        NEW.deleted_at := OLD.deleted_at;
    ELSIF NEW.status = 'deleted' THEN
        NEW.deleted_at := now();
    ELSE
        NEW.deleted_at := NULL;
    END IF;
    RETURN NEW;
END $$;
REVOKE EXECUTE ON FUNCTION tenantseal.tenant_deleted_at() FROM PUBLIC;
CREATE TRIGGER tenant_deleted_at BEFORE INSERT OR UPDATE ON tenantseal.tenants
    FOR EACH ROW EXECUTE FUNCTION tenantseal.tenant_deleted_at();
