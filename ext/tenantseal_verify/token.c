/*
 * Parsing and signature checks of tenant context tokens. No database access here.
 */
#include "postgres.h"

#include "token.h"

static inline bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static inline int
hex_val(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$, decoded into u */
static bool
parse_uuid(const char *s, int len, pg_uuid_t *u)
{
	int			i,
				j = 0;

	if (len != 36)
		return false;
	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
			continue;
		}
		if (!is_hex(s[i]) || !is_hex(s[i + 1]))
			return false;
		u->data[j++] = (uint8) (hex_val(s[i]) << 4 | hex_val(s[i + 1]));
		i++;
	}
	return true;
}

/*
 * ts_field sets *start to the n-th (1-based) '.'-separated field of tok and returns its length, or -1
 * when tok has fewer fields (split_part's view, which tenantseal.elevated() uses).
 */
int
ts_field(const char *tok, int len, int n, const char **start)
{
	int			i,
				f = 1,
				from = 0;

	for (i = 0; i <= len; i++)
	{
		if (i < len && tok[i] != '.')
			continue;
		if (f == n)
		{
			*start = tok + from;
			return i - from;
		}
		f++;
		from = i + 1;
	}
	return -1;
}

bool
ts_parse(const char *tok, int len, TsToken *t)
{
	const char *f[7];
	int			fl[7];
	int			nf = 0,
				from = 0,
				i;

	memset(t, 0, sizeof(*t));
	if (len <= 0 || len > TS_TOKEN_MAX)
		return false;
	for (i = 0; i <= len; i++)
	{
		if (i < len && tok[i] != '.')
			continue;
		if (nf == 7)
			return false;
		f[nf] = tok + from;
		fl[nf] = i - from;
		nf++;
		from = i + 1;
	}

	if (nf == 2 && fl[0] == 2 && memcmp(f[0], "u1", 2) == 0)
	{
		t->is_unsigned = true;
		return parse_uuid(f[1], fl[1], &t->tenant);
	}
	if (nf != 7 || fl[0] != 2 || memcmp(f[0], "v1", 2) != 0)
		return false;

	/* kid: the table's CHECK admits [a-z0-9-]{1,32} only */
	if (fl[1] < 1 || fl[1] > TS_KID_MAX)
		return false;
	for (i = 0; i < fl[1]; i++)
	{
		char		c = f[1][i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	t->kid = f[1];
	t->kidlen = fl[1];

	if (!parse_uuid(f[2], fl[2], &t->tenant))
		return false;

	/* expiry: ^[0-9]{1,12}$ */
	if (fl[3] < 1 || fl[3] > 12)
		return false;
	t->expires = 0;
	for (i = 0; i < fl[3]; i++)
	{
		if (f[3][i] < '0' || f[3][i] > '9')
			return false;
		t->expires = t->expires * 10 + (f[3][i] - '0');
	}

	/* flags: ^[a-z]{0,8}$ */
	if (fl[4] > 8)
		return false;
	for (i = 0; i < fl[4]; i++)
	{
		if (f[4][i] < 'a' || f[4][i] > 'z')
			return false;
		if (f[4][i] == 'e')
			t->elevated = true;
	}

	/* subject: ^[0-9a-f]*$, even, at most 512 */
	if (fl[5] > 512 || fl[5] % 2 == 1)
		return false;
	for (i = 0; i < fl[5]; i++)
		if (!is_hex(f[5][i]))
			return false;

	/* signature: ^[0-9a-f]{64}$ */
	if (fl[6] != 2 * TS_SHA256_DIGEST)
		return false;
	for (i = 0; i < TS_SHA256_DIGEST; i++)
	{
		if (!is_hex(f[6][2 * i]) || !is_hex(f[6][2 * i + 1]))
			return false;
		t->mac[i] = (uint8) (hex_val(f[6][2 * i]) << 4 | hex_val(f[6][2 * i + 1]));
	}
	t->msglen = len - 65;
	return true;
}

void
ts_mac_key(TsMacKey *k, const uint8 ipad[TS_SHA256_BLOCK], const uint8 opad[TS_SHA256_BLOCK])
{
	ts_sha256_init(&k->inner);
	ts_sha256_update(&k->inner, ipad, TS_SHA256_BLOCK);
	ts_sha256_init(&k->outer);
	ts_sha256_update(&k->outer, opad, TS_SHA256_BLOCK);
}

/*
 * sha256(opad || sha256(ipad || signed prefix)) against the token's signature, in constant time.
 */
bool
ts_mac_verify(const TsMacKey *k, const char *tok, const TsToken *t)
{
	ts_sha256	c;
	uint8		inner[TS_SHA256_DIGEST];
	uint8		mac[TS_SHA256_DIGEST];
	uint8		diff = 0;
	int			i;

	c = k->inner;
	ts_sha256_update(&c, (const uint8 *) tok, t->msglen);
	ts_sha256_final(&c, inner);
	c = k->outer;
	ts_sha256_update(&c, inner, sizeof(inner));
	ts_sha256_final(&c, mac);
	for (i = 0; i < TS_SHA256_DIGEST; i++)
		diff |= mac[i] ^ t->mac[i];
	explicit_bzero(&c, sizeof(c));
	return diff == 0;
}
