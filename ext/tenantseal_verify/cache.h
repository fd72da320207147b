/*
 * Per-backend caches of the C verifier: tokens that verified, and signing keys.
 *
 * Every entry carries the generation it was computed in. The generation moves on whenever
 * tenantseal.context_keys, tenantseal.tenants or tenantseal.settings change (their statement triggers
 * invalidate the tables' relcache entries on every backend: see tenantseal_verify.c), so an entry never
 * outlives a change of what it was computed from. An entry also holds the moment it stops being valid
 * (the token's expiry, the key's not_after), checked against now() at every use.
 *
 * The caches are bounded: tokens by tenantseal_verify.token_cache_size (2-way set associative, keyed by
 * a hash seeded per backend and compared in full), keys by TS_KEY_CACHE entries, tenants by
 * tenantseal_verify.tenant_cache_size (a hash table of the tenants the backend has seen in the current
 * generation, emptied when it is full or the generation moves on).
 */
#ifndef TS_CACHE_H
#define TS_CACHE_H

#include "datatype/timestamp.h"
#include "utils/uuid.h"

#include "token.h"

/* The longest tenant key (tenantseal.tenants.key), in bytes. */
#define TS_TENANT_KEY_MAX 200

typedef struct TsEntry
{
	uint64		gen;			/* 0: empty */
	uint64		hash;
	char	   *tok;
	int			len;
	bool		elevated;
	pg_uuid_t	tenant;
	int			keylen;			/* the tenant's key (tenantseal.tenants.key); -1: not known */
	char		key[TS_TENANT_KEY_MAX];
	TimestampTz valid_until;	/* valid while now() < valid_until */
} TsEntry;

typedef struct TsKeyEntry
{
	uint64		gen;			/* 0: empty */
	char		kid[TS_KID_MAX];
	int			kidlen;
	bool		found;			/* false: no such key (not cached) */
	TsMacKey	mac;
	TimestampTz valid_until;	/* not_after, or DT_NOEND */
} TsKeyEntry;

#define TS_KEY_CACHE 8

/* A tenant's status and key (tenantseal.tenants), as read in generation gen. */
typedef struct TsTenantEntry
{
	pg_uuid_t	id;				/* the hash key */
	bool		active;
	int			keylen;			/* -1: no key (as TsEntry's) */
	char	   *key;			/* keylen bytes, in the cache's memory */
} TsTenantEntry;

extern void ts_cache_configure(int entries);
extern int	ts_cache_capacity(void);
extern int	ts_cache_count(uint64 gen);
extern uint64 ts_cache_hash(const char *tok, int len);
extern const TsEntry *ts_cache_find(const char *tok, int len, uint64 hash, uint64 gen);
extern void ts_cache_put(const TsEntry *val, const char *tok);

extern void ts_tenants_configure(int entries, uint64 gen);
extern const TsTenantEntry *ts_tenants_find(const pg_uuid_t *id);
extern void ts_tenants_put(const pg_uuid_t *id, bool active, const char *key, int keylen);

extern TsKeyEntry *ts_keys_find(const char *kid, int kidlen, uint64 gen);
extern TsKeyEntry *ts_keys_victim(void);
extern void ts_keys_forget(void);

#endif
