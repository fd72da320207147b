/*
 * Reads of tenantseal.context_keys, tenantseal.tenants and tenantseal.settings (see store.h).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "store.h"

/* column attname of rel, of type typid, or InvalidAttrNumber */
static AttrNumber
column(Oid rel, const char *attname, Oid typid)
{
	AttrNumber	a = get_attnum(rel, attname);

	if (a == InvalidAttrNumber || get_atttype(rel, a) != typid)
		return InvalidAttrNumber;
	return a;
}

/*
 * check_table opens rel, finds its one-column primary key on att (when att is valid) and its
 * collation, and tells whether the invalidating statement trigger is there, AFTER INSERT OR UPDATE OR
 * DELETE OR TRUNCATE, enabled ALWAYS (so that session_replication_role does not silence it).
 */
static bool
check_table(Oid relid, AttrNumber att, Oid *idx, Oid *coll, Oid trigger_fn, bool *triggered)
{
	Relation	rel = table_open(relid, AccessShareLock);
	bool		ok = true;
	int			i;

	*triggered = false;
	if (rel->trigdesc != NULL && OidIsValid(trigger_fn))
	{
		for (i = 0; i < rel->trigdesc->numtriggers; i++)
		{
			Trigger    *tg = &rel->trigdesc->triggers[i];

			if (tg->tgfoid == trigger_fn && tg->tgenabled == TRIGGER_FIRES_ALWAYS &&
				!TRIGGER_FOR_ROW(tg->tgtype) && TRIGGER_FOR_AFTER(tg->tgtype) &&
				(tg->tgtype & TRIGGER_TYPE_EVENT_MASK) == TRIGGER_TYPE_EVENT_MASK)
				*triggered = true;
		}
	}
	if (att != InvalidAttrNumber)
	{
		Oid			pk = RelationGetPrimaryKeyIndex(rel);
		Relation	irel;

		if (!OidIsValid(pk))
			ok = false;
		else
		{
			irel = index_open(pk, AccessShareLock);
			if (irel->rd_index->indnatts != 1 || irel->rd_index->indkey.values[0] != att)
				ok = false;
			*idx = pk;
			*coll = irel->rd_indcollation[0];
			index_close(irel, AccessShareLock);
		}
	}
	table_close(rel, AccessShareLock);
	return ok;
}

void
ts_store_resolve(TsStore *s, Oid trigger_fn)
{
	Oid			nsp = get_namespace_oid("tenantseal", true);
	Oid			unused;
	bool		t1,
				t2,
				t3;

	memset(s, 0, sizeof(*s));
	if (!OidIsValid(nsp))
		return;
	s->keys_rel = get_relname_relid("context_keys", nsp);
	s->tenants_rel = get_relname_relid("tenants", nsp);
	s->settings_rel = get_relname_relid("settings", nsp);
	if (!OidIsValid(s->keys_rel) || !OidIsValid(s->tenants_rel) || !OidIsValid(s->settings_rel))
		return;
	s->kid_att = column(s->keys_rel, "kid", TEXTOID);
	s->ipad_att = column(s->keys_rel, "ipad", BYTEAOID);
	s->opad_att = column(s->keys_rel, "opad", BYTEAOID);
	s->not_after_att = column(s->keys_rel, "not_after", TIMESTAMPTZOID);
	s->id_att = column(s->tenants_rel, "id", UUIDOID);
	s->status_att = column(s->tenants_rel, "status", TEXTOID);
	s->key_att = column(s->tenants_rel, "key", TEXTOID);
	s->allow_unsigned_att = column(s->settings_rel, "allow_unsigned", BOOLOID);
	if (s->kid_att == InvalidAttrNumber || s->ipad_att == InvalidAttrNumber || s->opad_att == InvalidAttrNumber ||
		s->not_after_att == InvalidAttrNumber || s->id_att == InvalidAttrNumber ||
		s->status_att == InvalidAttrNumber || s->allow_unsigned_att == InvalidAttrNumber)
		return;
	if (!check_table(s->keys_rel, s->kid_att, &s->keys_idx, &s->kid_coll, trigger_fn, &t1) ||
		!check_table(s->tenants_rel, s->id_att, &s->tenants_idx, &unused, trigger_fn, &t2) ||
		!check_table(s->settings_rel, InvalidAttrNumber, NULL, NULL, trigger_fn, &t3))
		return;
	s->usable = true;
	s->cacheable = t1 && t2 && t3;
}

/* fetch_one returns a copy of the one row of rel whose primary key (idx on att) equals value, or NULL */
static HeapTuple
fetch_one(Oid relid, Oid idx, AttrNumber att, Oid coll, RegProcedure eq, Datum value, Snapshot snap, TupleDesc *desc, Relation *relp)
{
	Relation	rel = table_open(relid, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyEntryInitialize(&key, 0, att, BTEqualStrategyNumber, InvalidOid, coll, eq, value);
	scan = systable_beginscan(rel, idx, true, snap, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		tup = heap_copytuple(tup);
	systable_endscan(scan);
	*desc = RelationGetDescr(rel);
	*relp = rel;
	return tup;
}

bool
ts_store_key(const TsStore *s, Snapshot snap, TsKeyEntry *k)
{
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	tup;
	text	   *kid = cstring_to_text_with_len(k->kid, k->kidlen);
	bool		ok = false;

	tup = fetch_one(s->keys_rel, s->keys_idx, s->kid_att, s->kid_coll, F_TEXTEQ, PointerGetDatum(kid), snap, &desc, &rel);
	if (tup != NULL)
	{
		bool		n1,
					n2,
					n3;
		Datum		ipad = heap_getattr(tup, s->ipad_att, desc, &n1);
		Datum		opad = heap_getattr(tup, s->opad_att, desc, &n2);
		Datum		not_after = heap_getattr(tup, s->not_after_att, desc, &n3);

		if (!n1 && !n2)
		{
			bytea	   *i = DatumGetByteaPP(ipad);
			bytea	   *o = DatumGetByteaPP(opad);

			if (VARSIZE_ANY_EXHDR(i) == TS_SHA256_BLOCK && VARSIZE_ANY_EXHDR(o) == TS_SHA256_BLOCK)
			{
				ts_mac_key(&k->mac, (const uint8 *) VARDATA_ANY(i), (const uint8 *) VARDATA_ANY(o));
				k->valid_until = n3 ? DT_NOEND : DatumGetTimestampTz(not_after);
				ok = true;
			}
			if ((Pointer) i != DatumGetPointer(ipad))
				pfree(i);
			if ((Pointer) o != DatumGetPointer(opad))
				pfree(o);
		}
		/* the copy held the pads: wipe it before it goes back to the allocator */
		explicit_bzero(tup->t_data, tup->t_len);
		heap_freetuple(tup);
	}
	table_close(rel, AccessShareLock);
	pfree(kid);
	return ok;
}

/*
 * ts_store_tenant_active reports whether tenant id is active, and puts its key into e (keylen -1 when
 * the table has no key column yet, or the key is NULL or too long).
 */
bool
ts_store_tenant_active(const TsStore *s, Snapshot snap, const pg_uuid_t *id, TsEntry *e)
{
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	tup;
	bool		active = false;

	e->keylen = -1;
	tup = fetch_one(s->tenants_rel, s->tenants_idx, s->id_att, InvalidOid, F_UUID_EQ, UUIDPGetDatum(id), snap, &desc, &rel);
	if (tup != NULL)
	{
		bool		isnull;
		Datum		st = heap_getattr(tup, s->status_att, desc, &isnull);

		if (!isnull)
		{
			text	   *t = DatumGetTextPP(st);

			active = VARSIZE_ANY_EXHDR(t) == 6 && memcmp(VARDATA_ANY(t), "active", 6) == 0;
		}
		if (s->key_att != InvalidAttrNumber)
		{
			Datum		k = heap_getattr(tup, s->key_att, desc, &isnull);

			if (!isnull)
			{
				text	   *t = DatumGetTextPP(k);
				int			n = VARSIZE_ANY_EXHDR(t);

				if (n <= TS_TENANT_KEY_MAX)
				{
					memcpy(e->key, VARDATA_ANY(t), n);
					e->keylen = n;
				}
			}
		}
		heap_freetuple(tup);
	}
	table_close(rel, AccessShareLock);
	return active;
}

bool
ts_store_allow_unsigned(const TsStore *s, Snapshot snap)
{
	Relation	rel = table_open(s->settings_rel, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, snap, 0, NULL);
	HeapTuple	tup;
	bool		allow = false;

	/* a singleton; more than one row (impossible by its key) allows nothing */
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, s->allow_unsigned_att, RelationGetDescr(rel), &isnull);

		allow = !isnull && DatumGetBool(d);
		if (HeapTupleIsValid(systable_getnext(scan)))
			allow = false;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return allow;
}
