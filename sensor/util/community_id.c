/*
 * community_id.c - Community ID v1: SHA-1 over seed, the ordered
 * endpoints, protocol and a zero pad byte, then base64, prefixed "1:".
 */
#include "util/community_id.h"
#include "util/digest.h"

#include <openssl/evp.h>
#include <string.h>

void community_id_v1(uint8_t family, const uint8_t *saddr, const uint8_t *daddr, uint16_t sport,
		     uint16_t dport, uint8_t proto, uint16_t seed, char out[COMMUNITY_ID_LEN])
{
	size_t alen = family == 6 ? 16 : 4;
	/* The lower endpoint first (address, then port), so both directions
	 * of a flow hash alike. */
	int cmp = memcmp(saddr, daddr, alen);
	if (cmp > 0 || (cmp == 0 && sport > dport)) {
		const uint8_t *a = saddr;
		saddr = daddr;
		daddr = a;
		uint16_t p = sport;
		sport = dport;
		dport = p;
	}
	uint8_t buf[2 + 16 + 16 + 2 + 4];
	size_t n = 0;
	buf[n++] = (uint8_t)(seed >> 8);
	buf[n++] = (uint8_t)seed;
	memcpy(buf + n, saddr, alen);
	n += alen;
	memcpy(buf + n, daddr, alen);
	n += alen;
	buf[n++] = proto;
	buf[n++] = 0;
	buf[n++] = (uint8_t)(sport >> 8);
	buf[n++] = (uint8_t)sport;
	buf[n++] = (uint8_t)(dport >> 8);
	buf[n++] = (uint8_t)dport;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	memcpy(out, "1:", 2);
	if (!EVP_Digest(buf, n, md, &mdlen, digest_sha1(), NULL) || mdlen != 20) {
		out[2] = 0;
		return;
	}
	EVP_EncodeBlock((unsigned char *)out + 2, md, 20); /* 28 digits and a NUL */
}
