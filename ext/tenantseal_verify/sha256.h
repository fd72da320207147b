/*
 * SHA-256 with an exposed state, so that the state after the one-block HMAC pads stored in
 * tenantseal.context_keys (ipad, opad: 64 bytes each) can be kept and resumed: an HMAC of a token then
 * hashes the token and one block, never the pads again.
 *
 * With TS_OPENSSL (the Makefile sets it when PostgreSQL is built with OpenSSL, whose libcrypto the server
 * has loaded anyway) it is OpenSSL's, which uses the CPU's SHA instructions; otherwise the portable
 * FIPS 180-4 code of sha256.c.
 */
#ifndef TS_SHA256_H
#define TS_SHA256_H

#define TS_SHA256_BLOCK 64
#define TS_SHA256_DIGEST 32

#ifdef TS_OPENSSL

/*
 * SHA256_Init and friends, deprecated in OpenSSL 3 for the EVP interface, whose contexts cannot be
 * copied without an allocation. pg_config.h sets the OpenSSL API level PostgreSQL builds with, which
 * still has them.
 */
#ifndef OPENSSL_API_COMPAT
#define OPENSSL_API_COMPAT 0x10100000L
#endif
#include <openssl/sha.h>

typedef SHA256_CTX ts_sha256;

static inline void
ts_sha256_init(ts_sha256 *c)
{
	SHA256_Init(c);
}

static inline void
ts_sha256_update(ts_sha256 *c, const uint8 *p, size_t n)
{
	SHA256_Update(c, p, n);
}

static inline void
ts_sha256_final(ts_sha256 *c, uint8 out[TS_SHA256_DIGEST])
{
	SHA256_Final(out, c);
}

#else

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

#endif							/* TS_OPENSSL */

#endif
