/*
 * The tenant context token, parsed exactly as tenantseal.verify_token reads it:
 *
 *   v1.<kid>.<tenant uuid>.<expiry, unix seconds>.<flags>.<subject, hex>.<HMAC-SHA256 hex of all before>
 *   u1.<tenant uuid>                                  (the explicit unsigned mode)
 *
 * ts_parse accepts only what verify_token's grammar accepts (lowercase hex, at most 12 expiry digits,
 * flags [a-z]{0,8}, a subject of at most 512 hex digits); anything else is left to the plpgsql
 * verifier, which raises the precise TS401.
 */
#ifndef TS_TOKEN_H
#define TS_TOKEN_H

#include "utils/uuid.h"

#include "sha256.h"

/* Longer than any token the grammar accepts (about 680 bytes). */
#define TS_TOKEN_MAX 1024
#define TS_KID_MAX 32

typedef struct TsToken
{
	bool		is_unsigned;
	const char *kid;			/* points into the token; not terminated */
	int			kidlen;
	pg_uuid_t	tenant;
	int64		expires;		/* unix seconds */
	bool		elevated;		/* flags contain 'e' */
	int			msglen;			/* the signed prefix: token[0, msglen) */
	uint8		mac[TS_SHA256_DIGEST];
} TsToken;

/* HMAC-SHA256 keyed by the states after the inner and outer pad blocks. */
typedef struct TsMacKey
{
	ts_sha256	inner;
	ts_sha256	outer;
} TsMacKey;

extern bool ts_parse(const char *tok, int len, TsToken *t);
extern void ts_mac_key(TsMacKey *k, const uint8 ipad[TS_SHA256_BLOCK], const uint8 opad[TS_SHA256_BLOCK]);
extern bool ts_mac_verify(const TsMacKey *k, const char *tok, const TsToken *t);
extern int	ts_field(const char *tok, int len, int n, const char **start);

#endif
