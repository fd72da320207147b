/*
 * tenantseal_verify: the tenant context verifier in C.
 *
 * tenantseal.current_tenant() and tenantseal.elevated() (the functions every tenant policy calls once
 * per statement) call c_current_tenant() and c_elevated() here when this extension is installed
 * (tenantseal.select_verifier() decides). They answer exactly as the plpgsql verifier does, by
 * construction: a token is accepted here only when it is well formed by verify_token's grammar, signed
 * with a current key, unexpired, of an active tenant and, when elevated, used in a READ ONLY
 * transaction; every other value is handed to the plpgsql verifier (plpgsql_current_tenant(),
 * plpgsql_elevated(), run with their owner's rights), which accepts what it accepts and raises the same
 * TS401, counted and logged.
 *
 * What is cached, per backend and bounded (cache.h): tokens that verified and signing keys, each tagged
 * with a generation that moves on at any change of tenantseal.context_keys, tenantseal.tenants or
 * tenantseal.settings, and each valid only while now() is before the token's expiry and the key's
 * not_after. Changes reach every backend through the invalidating statement triggers on those tables:
 * they invalidate the tables' relcache entries, which PostgreSQL broadcasts at commit (and replays on
 * standbys); this module listens to relcache invalidations and checks for new ones before every use of
 * a cached entry. Without those triggers (enabled ALWAYS) nothing is cached at all.
 *
 * What the caller controls and what it cannot steer: only the token (the setting tenantseal.context).
 * Tables are read by OID through their primary keys (store.c): no search_path, no SQL, no temp object
 * is consulted. The cache size is tenantseal_verify.token_cache_size, a server setting (sighup) that no
 * session can change.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "store.h"
#include "token.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(ts_current_tenant);
PG_FUNCTION_INFO_V1(ts_current_tenant_key);
PG_FUNCTION_INFO_V1(ts_elevated);
PG_FUNCTION_INFO_V1(ts_invalidate);
PG_FUNCTION_INFO_V1(ts_stats);

#define CONTEXT_SETTING "tenantseal.context"
#define UNIX_TO_PG_SECS ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

static int	token_cache_size = 1024;
static int	tenant_cache_size = 131072;

/* Moves on at every invalidation of the tables the verifier reads. */
static uint64 generation = 1;

/* The tables as resolved in store_gen. */
static TsStore store;
static uint64 store_gen;

/* The unsigned-mode switch, as read in unsigned_gen. */
static bool allow_unsigned;
static uint64 unsigned_gen;

static struct
{
	int64		hits;
	int64		verified;
	int64		delegated;
	int64		tenant_hits;	/* a token verified here whose tenant's status was cached */
} stats;

typedef enum
{
	TS_ACCEPT,					/* verified here: the tenant is in *out */
	TS_DELEGATE,				/* the plpgsql verifier decides */
} TsOutcome;

static void
relcache_changed(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == store.keys_rel || relid == store.tenants_rel || relid == store.settings_rel)
		generation++;
}

void
_PG_init(void)
{
	DefineCustomIntVariable("tenantseal_verify.token_cache_size",
							"Verified tenant context tokens each backend keeps (0: none).",
							"Entries are dropped at any change of the signing keys, the tenants or the settings, and are never used past the token's expiry or the key's not_after.",
							&token_cache_size, 1024, 0, 1 << 20, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("tenantseal_verify.tenant_cache_size",
							"Tenants whose status (and key) each backend keeps, for the tokens it verifies (0: none).",
							"About 64 bytes each, taken as tenants are seen; emptied at any change of the signing keys, the tenants or the settings, and when full.",
							&tenant_cache_size, 131072, 0, 1 << 22, PGC_SIGHUP, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("tenantseal_verify");
	CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
}

/* func looks up tenantseal.<name>() by its qualified name: no search_path is consulted. */
static Oid
func(const char *name)
{
	return LookupFuncName(list_make2(makeString("tenantseal"), makeString((char *) name)), 0, NULL, true);
}

static void
ensure_store(uint64 gen)
{
	if (store_gen == gen)
		return;
	ts_store_resolve(&store, func("c_invalidate_verifier"));
	ts_keys_forget();
	store_gen = gen;
}

static Oid
owner_of(Oid fn)
{
	HeapTuple	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;

	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for function %u", fn);
	owner = ((Form_pg_proc) GETSTRUCT(tp))->proowner;
	ReleaseSysCache(tp);
	return owner;
}

/*
 * delegate runs the plpgsql verifier tenantseal.<name>() (plpgsql_current_tenant, plpgsql_elevated) with
 * the rights of its owner, as SECURITY DEFINER would: it reads the keys and the tenants, and raises the
 * precise TS401 for what this module did not accept. caller is the C function asking: it must belong to
 * the same owner, or to a superuser, or a role that installed the extension itself could run the owner's
 * verifier through it (tenantseal.select_verifier does not select such an installation either).
 */
static Datum
delegate(Oid caller, const char *name, bool *isnull)
{
	Oid			fn = func(name);
	Oid			owner,
				save_user;
	int			save_sec;
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 0);
	volatile Datum d = (Datum) 0;

	stats.delegated++;
	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("tenantseal: the plpgsql verifier tenantseal.%s() is missing: migrate the database", name)));
	owner = owner_of(fn);
	if (OidIsValid(caller) && owner_of(caller) != owner && !superuser_arg(owner_of(caller)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("tenantseal: the C verifier belongs to another role than tenantseal.%s(): install tenantseal_verify as the owner of the tenantseal schema", name)));

	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 0, InvalidOid, NULL, NULL);
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		d = FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
	*isnull = fcinfo->isnull;
	return d;
}

/* admit copies the verified tenant, elevation and key of e into out, when e may be used now. */
static TsOutcome
admit(const TsEntry *e, TsEntry *out)
{
	if (GetCurrentTransactionStartTimestamp() >= e->valid_until)
		return TS_DELEGATE;
	if (e->elevated && !XactReadOnly)
		return TS_DELEGATE;
	out->tenant = e->tenant;
	out->elevated = e->elevated;
	out->keylen = e->keylen;
	if (e->keylen > 0)
		memcpy(out->key, e->key, e->keylen);
	return TS_ACCEPT;
}

/*
 * latest registers, at its first use in a verification, the snapshot that every read of the
 * verification takes: the latest committed state. A change committed before it is read here, one
 * committed after it invalidates what is cached from it (invalidations are sent once a commit is
 * visible).
 */
static Snapshot
latest(Snapshot *snap)
{
	if (*snap == NULL)
		*snap = RegisterSnapshot(GetLatestSnapshot());
	return *snap;
}

/*
 * tenant_active reports whether tenant id is active, and puts its key into e: from the tenant cache,
 * or read and then cached where the store is cacheable.
 */
static bool
tenant_active(const pg_uuid_t *id, Snapshot *snap, bool cacheable, TsEntry *e)
{
	const TsTenantEntry *te = cacheable ? ts_tenants_find(id) : NULL;
	bool		active;

	if (te != NULL)
	{
		stats.tenant_hits++;
		e->keylen = te->keylen;
		if (te->keylen > 0)
			memcpy(e->key, te->key, te->keylen);
		return te->active;
	}
	active = ts_store_tenant_active(&store, latest(snap), id, e);
	if (cacheable)
		ts_tenants_put(id, active, e->key, e->keylen);
	return active;
}

/* key returns the signing key kid, from the cache or the table, or NULL when there is none. */
static const TsKeyEntry *
key(const char *kid, int kidlen, uint64 gen, Snapshot *snap, bool cacheable)
{
	TsKeyEntry *k = cacheable ? ts_keys_find(kid, kidlen, gen) : NULL;

	if (k != NULL)
		return k;
	k = ts_keys_victim();
	memcpy(k->kid, kid, kidlen);
	k->kidlen = kidlen;
	if (!ts_store_key(&store, latest(snap), k))
	{
		explicit_bzero(k, sizeof(*k));
		return NULL;
	}
	/* an uncacheable key is used once and wiped by the next victim choice */
	k->gen = cacheable ? gen : 0;
	return k;
}

/*
 * verify decides tok here when it can: TS_ACCEPT with the tenant, whether it is an elevation and the
 * tenant's key in *out, or TS_DELEGATE for anything it does not accept itself.
 */
static TsOutcome
verify(const char *tok, int len, TsEntry *out)
{
	uint64		gen;
	bool		cacheable,
				keys_cacheable;
	TsEntry		val;
	const TsEntry *e;
	TsToken		t;
	Snapshot	snap;
	bool		ok = false;

	/* Changes committed by others since the last statement apply from this statement on. */
	AcceptInvalidationMessages();
	gen = generation;
	ensure_store(gen);
	if (!store.usable || len > TS_TOKEN_MAX)
		return TS_DELEGATE;
	ts_cache_configure(token_cache_size);
	ts_tenants_configure(store.cacheable ? tenant_cache_size : 0, gen);
	cacheable = store.cacheable && ts_cache_capacity() > 0;
	keys_cacheable = store.cacheable;

	memset(&val, 0, sizeof(val));
	val.len = len;
	if (cacheable)
	{
		val.hash = ts_cache_hash(tok, len);
		if ((e = ts_cache_find(tok, len, val.hash, gen)) != NULL)
		{
			stats.hits++;
			return admit(e, out);
		}
	}
	if (!ts_parse(tok, len, &t))
		return TS_DELEGATE;

	/* Every read below takes one snapshot, the latest committed state (see latest). */
	snap = NULL;
	val.valid_until = DT_NOEND;
	if (t.is_unsigned)
	{
		if (unsigned_gen != gen || !keys_cacheable)
		{
			allow_unsigned = ts_store_allow_unsigned(&store, latest(&snap));
			unsigned_gen = keys_cacheable ? gen : 0;
		}
		ok = allow_unsigned;
	}
	else
	{
		const TsKeyEntry *k = key(t.kid, t.kidlen, gen, &snap, keys_cacheable);

		if (k != NULL && ts_mac_verify(&k->mac, tok, &t))
		{
			val.valid_until = Min(k->valid_until, (t.expires - UNIX_TO_PG_SECS) * USECS_PER_SEC);
			ok = true;
		}
	}
	ok = ok && tenant_active(&t.tenant, &snap, keys_cacheable, &val);
	if (snap != NULL)
		UnregisterSnapshot(snap);
	if (!ok)
		return TS_DELEGATE;

	stats.verified++;
	val.gen = gen;
	val.tenant = t.tenant;
	val.elevated = t.elevated;
	if (cacheable)
		ts_cache_put(&val, tok);
	return admit(&val, out);
}

/* the token, or NULL for no context (unset or empty, as after a transaction-local set) */
static const char *
context_token(void)
{
	const char *tok = GetConfigOption(CONTEXT_SETTING, true, false);

	return tok == NULL || tok[0] == '\0' ? NULL : tok;
}

/*
 * c_current_tenant() is tenantseal.current_tenant() when this extension verifies: the tenant of a valid
 * token, NULL without a context, TS401 (from the plpgsql verifier) for anything else.
 */
Datum
ts_current_tenant(PG_FUNCTION_ARGS)
{
	const char *tok = context_token();
	TsEntry		e;
	pg_uuid_t  *out;
	bool		isnull;
	Datum		d;

	if (tok == NULL)
		PG_RETURN_NULL();
	if (verify(tok, strlen(tok), &e) == TS_ACCEPT)
	{
		out = palloc(sizeof(pg_uuid_t));
		*out = e.tenant;
		PG_RETURN_UUID_P(out);
	}
	d = delegate(fcinfo->flinfo->fn_oid, "plpgsql_current_tenant", &isnull);
	if (isnull)
		PG_RETURN_NULL();
	return d;
}

/*
 * c_current_tenant_key() is tenantseal.current_tenant_key() when this extension verifies: the key
 * (tenantseal.tenants.key) of the tenant c_current_tenant() returns, from the same cache entry; NULL
 * without a context, TS401 (from the plpgsql verifier) for anything else.
 */
Datum
ts_current_tenant_key(PG_FUNCTION_ARGS)
{
	const char *tok = context_token();
	TsEntry		e;
	bool		isnull;
	Datum		d;

	if (tok == NULL)
		PG_RETURN_NULL();
	if (verify(tok, strlen(tok), &e) == TS_ACCEPT && e.keylen > 0)
		PG_RETURN_TEXT_P(cstring_to_text_with_len(e.key, e.keylen));
	d = delegate(fcinfo->flinfo->fn_oid, "plpgsql_current_tenant_key", &isnull);
	if (isnull)
		PG_RETURN_NULL();
	return d;
}

/*
 * c_elevated() is tenantseal.elevated(): true under a valid elevation in a READ ONLY transaction, false
 * for a token whose flags (its fifth field) carry no 'e', TS401 otherwise.
 */
Datum
ts_elevated(PG_FUNCTION_ARGS)
{
	const char *tok = GetConfigOption(CONTEXT_SETTING, true, false);
	const char *flags;
	int			n;
	TsEntry		e;
	bool		isnull;
	Datum		d;

	if (tok == NULL)
		PG_RETURN_BOOL(false);
	n = ts_field(tok, strlen(tok), 5, &flags);
	if (n <= 0 || memchr(flags, 'e', n) == NULL)
		PG_RETURN_BOOL(false);
	if (verify(tok, strlen(tok), &e) == TS_ACCEPT)
		PG_RETURN_BOOL(e.elevated);
	d = delegate(fcinfo->flinfo->fn_oid, "plpgsql_elevated", &isnull);
	if (isnull)
		PG_RETURN_BOOL(false);
	return d;
}

/*
 * c_invalidate_verifier() is the statement trigger (AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE,
 * enabled ALWAYS) on the tables the verifier reads: it invalidates the table's relcache entry, on this
 * backend at the next command and on every other one (standbys included) at commit.
 */
Datum
ts_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("tenantseal: c_invalidate_verifier() runs only as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	generation++;
	return PointerGetDatum(NULL);
}

/* c_verifier_stats() describes this backend's caches, for tests and diagnosis. */
Datum
ts_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		v[6];
	bool		nulls[6] = {false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	AcceptInvalidationMessages();
	ensure_store(generation);
	ts_cache_configure(token_cache_size);
	v[0] = Int64GetDatum(stats.hits);
	v[1] = Int64GetDatum(stats.verified);
	v[2] = Int64GetDatum(stats.delegated);
	v[3] = Int32GetDatum(ts_cache_count(generation));
	v[4] = Int32GetDatum(ts_cache_capacity());
	v[5] = BoolGetDatum(store.usable && store.cacheable && ts_cache_capacity() > 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, nulls)));
}
