/*
 * What the C verifier reads: the signing keys, the tenants' status and the unsigned-mode switch, read
 * directly through the tables' primary keys (no SQL, so no search_path, operator or temp-object lookup
 * the caller could steer), with privileges of nobody: the caller learns only whether its own token
 * verifies, as through tenantseal.current_tenant().
 */
#ifndef TS_STORE_H
#define TS_STORE_H

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "utils/snapshot.h"
#include "utils/uuid.h"

#include "cache.h"

typedef struct TsStore
{
	bool		usable;			/* the tables are as the migrations made them */
	bool		cacheable;		/* and each has the invalidating trigger, enabled ALWAYS */
	Oid			keys_rel,
				keys_idx,
				kid_coll;
	AttrNumber	kid_att,
				ipad_att,
				opad_att,
				not_after_att;
	Oid			tenants_rel,
				tenants_idx;
	AttrNumber	id_att,
				status_att,
				key_att;		/* InvalidAttrNumber before migration 21 */
	Oid			settings_rel;
	AttrNumber	allow_unsigned_att;
} TsStore;

extern void ts_store_resolve(TsStore *s, Oid trigger_fn);
extern bool ts_store_key(const TsStore *s, Snapshot snap, TsKeyEntry *k);
extern bool ts_store_tenant_active(const TsStore *s, Snapshot snap, const pg_uuid_t *id, TsEntry *e);
extern bool ts_store_allow_unsigned(const TsStore *s, Snapshot snap);

#endif
