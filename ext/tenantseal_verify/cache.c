/*
 * The bounded per-backend caches (see cache.h). Nothing here reads the database.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cache.h"

#define WAYS 2

static MemoryContext cxt;
static TsEntry *entries;		/* nsets * WAYS, way 0 the most recent */
static int	nsets;
static int	configured = -1;
static uint64 seed;

static TsKeyEntry keys[TS_KEY_CACHE];
static int	next_key;

static MemoryContext tenants_cxt;
static HTAB *tenants;
static int	tenants_max;
static uint64 tenants_gen;

void
ts_cache_configure(int want)
{
	int			sets = 0;

	if (want == configured)
		return;
	if (cxt == NULL)
	{
		cxt = AllocSetContextCreate(TopMemoryContext, "tenantseal_verify token cache", ALLOCSET_DEFAULT_SIZES);
		if (!pg_strong_random(&seed, sizeof(seed)))
			seed = (uint64) MyProcPid * UINT64CONST(0x9E3779B97F4A7C15) ^ (uint64) GetCurrentTimestamp();
	}
	MemoryContextReset(cxt);
	entries = NULL;
	if (want >= WAYS)
	{
		/* the largest power of two of sets that stays within want entries */
		sets = 1;
		while (sets * 2 * WAYS <= want)
			sets *= 2;
		entries = MemoryContextAllocZero(cxt, sizeof(TsEntry) * sets * WAYS);
	}
	nsets = sets;
	configured = want;
}

int
ts_cache_capacity(void)
{
	return nsets * WAYS;
}

int
ts_cache_count(uint64 gen)
{
	int			i,
				n = 0;

	for (i = 0; i < nsets * WAYS; i++)
		if (entries[i].gen == gen)
			n++;
	return n;
}

uint64
ts_cache_hash(const char *tok, int len)
{
	return hash_bytes_extended((const unsigned char *) tok, len, seed);
}

const TsEntry *
ts_cache_find(const char *tok, int len, uint64 hash, uint64 gen)
{
	TsEntry    *set;
	int			w;

	if (nsets == 0)
		return NULL;
	set = &entries[(hash & (nsets - 1)) * WAYS];
	for (w = 0; w < WAYS; w++)
	{
		TsEntry    *e = &set[w];

		if (e->gen != gen || e->hash != hash || e->len != len || memcmp(e->tok, tok, len) != 0)
			continue;
		if (w > 0)
		{
			TsEntry		t = set[0];

			set[0] = *e;
			*e = t;
		}
		return &set[0];
	}
	return NULL;
}

/*
 * ts_cache_put stores val (its hash, len and fields) for tok as the most recent entry of its set,
 * evicting the least recent.
 */
void
ts_cache_put(const TsEntry *val, const char *tok)
{
	TsEntry    *set;
	char	   *copy;

	if (nsets == 0)
		return;
	set = &entries[(val->hash & (nsets - 1)) * WAYS];
	copy = MemoryContextAlloc(cxt, val->len);
	memcpy(copy, tok, val->len);
	if (set[WAYS - 1].tok != NULL)
		pfree(set[WAYS - 1].tok);
	memmove(&set[1], &set[0], sizeof(TsEntry) * (WAYS - 1));
	set[0] = *val;
	set[0].tok = copy;
}

TsKeyEntry *
ts_keys_find(const char *kid, int kidlen, uint64 gen)
{
	int			i;

	for (i = 0; i < TS_KEY_CACHE; i++)
		if (keys[i].gen == gen && keys[i].kidlen == kidlen && memcmp(keys[i].kid, kid, kidlen) == 0)
			return &keys[i];
	return NULL;
}

/* ts_keys_victim returns an emptied slot, wiping the key material it held. */
TsKeyEntry *
ts_keys_victim(void)
{
	TsKeyEntry *k = &keys[next_key];

	next_key = (next_key + 1) % TS_KEY_CACHE;
	explicit_bzero(k, sizeof(*k));
	return k;
}

/* ts_keys_forget wipes every cached key (after a change of the key table). */
void
ts_keys_forget(void)
{
	explicit_bzero(keys, sizeof(keys));
}

/*
 * ts_tenants_configure makes the tenant cache hold at most want entries of generation gen: it is emptied
 * when gen is not the generation of its entries, or want changed.
 */
void
ts_tenants_configure(int want, uint64 gen)
{
	HASHCTL		ctl;

	if (tenants_cxt != NULL && gen == tenants_gen && want == tenants_max)
		return;
	if (tenants_cxt == NULL)
		tenants_cxt = AllocSetContextCreate(TopMemoryContext, "tenantseal_verify tenant cache", ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(tenants_cxt);
	tenants = NULL;
	tenants_max = want;
	tenants_gen = gen;
	if (want <= 0)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(pg_uuid_t);
	ctl.entrysize = sizeof(TsTenantEntry);
	ctl.hcxt = tenants_cxt;
	tenants = hash_create("tenantseal_verify tenants", Min(want, 1024), &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

const TsTenantEntry *
ts_tenants_find(const pg_uuid_t *id)
{
	if (tenants == NULL)
		return NULL;
	return hash_search(tenants, id, HASH_FIND, NULL);
}

/* ts_tenants_put stores what was read of tenant id, emptying the cache first when it is full. */
void
ts_tenants_put(const pg_uuid_t *id, bool active, const char *key, int keylen)
{
	TsTenantEntry *e;
	bool		found;

	if (tenants == NULL)
		return;
	if (hash_get_num_entries(tenants) >= tenants_max)
	{
		int			want = tenants_max;

		tenants_max = -1;		/* forces the reset */
		ts_tenants_configure(want, tenants_gen);
	}
	e = hash_search(tenants, id, HASH_ENTER, &found);
	e->active = active;
	e->keylen = -1;
	e->key = NULL;
	if (keylen >= 0)
	{
		e->key = MemoryContextAlloc(tenants_cxt, Max(keylen, 1));
		memcpy(e->key, key, keylen);
		e->keylen = keylen;
	}
}
