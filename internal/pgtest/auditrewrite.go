package pgtest

// RehashAudit is SQL that hides a change of the audit log from its hash chain, as the owner or a
// superuser who can write the log would: every entry's hashes recomputed with
// tenantseal.audit_canonical, in order, and the chain head moved to the last entry. Run it after the
// change, with the append-only triggers off (see [AsOwnerWritingAudit]).
const RehashAudit = `
DO $$
DECLARE
    r record;
    prev bytea := decode(repeat('00', 32), 'hex');
BEGIN
    FOR r IN SELECT seq FROM tenantseal.audit_log ORDER BY seq LOOP
        UPDATE tenantseal.audit_log l SET prev_hash = prev, hash = sha256(prev || tenantseal.audit_canonical(l))
         WHERE l.seq = r.seq RETURNING l.hash INTO prev;
    END LOOP;
    UPDATE tenantseal.audit_head SET seq = coalesce((SELECT max(seq) FROM tenantseal.audit_log), 0), hash = prev;
END $$;`

// AsOwnerWritingAudit wraps sql in what the owner role does to write its own audit log: disable the
// append-only triggers and un-force row-level security on it, run sql, then restore both.
func AsOwnerWritingAudit(sql string) string {
	return `ALTER TABLE tenantseal.audit_log DISABLE TRIGGER USER;
		ALTER TABLE tenantseal.audit_log NO FORCE ROW LEVEL SECURITY;` + sql + `;
		ALTER TABLE tenantseal.audit_log FORCE ROW LEVEL SECURITY;
		ALTER TABLE tenantseal.audit_log ENABLE TRIGGER USER;`
}
