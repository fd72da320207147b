/*
 * SHA-256 (FIPS 180-4) with an exposed state, so that the state after the one-block HMAC pads stored in
 * tenantseal.context_keys (ipad, opad: 64 bytes each) can be kept and resumed: an HMAC of a token then
 * hashes the token and one block, never the pads again.
 */
#ifndef TS_SHA256_H
#define TS_SHA256_H

#define TS_SHA256_BLOCK 64
#define TS_SHA256_DIGEST 32

typedef struct ts_sha256
{
	uint32		h[8];
	uint64		bytes;			/* hashed so far */
	uint8		buf[TS_SHA256_BLOCK];
	uint32		used;			/* bytes in buf */
} ts_sha256;

extern void ts_sha256_init(ts_sha256 *c);
extern void ts_sha256_update(ts_sha256 *c, const uint8 *p, size_t n);
extern void ts_sha256_final(ts_sha256 *c, uint8 out[TS_SHA256_DIGEST]);

#endif
