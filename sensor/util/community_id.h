/*
 * community_id.h - Community ID v1 (the community-id-spec of Corelight),
 * the flow hash Zeek, Suricata, Arkime and Elastic tag records with: the
 * same string on mxwatch's flow, session and finding records lets a site
 * join them with the rest of its tools. Leaf module (OpenSSL only).
 */
#ifndef MXW_COMMUNITY_ID_H
#define MXW_COMMUNITY_ID_H

#include <stdint.h>

#define COMMUNITY_ID_LEN 32 /* "1:" + 28 base64 digits + NUL, rounded */

/* Addresses in network order, 4 or 16 bytes by family (4 or 6); either
 * direction gives the same id. */
void community_id_v1(uint8_t family, const uint8_t *saddr, const uint8_t *daddr, uint16_t sport,
		     uint16_t dport, uint8_t proto, uint16_t seed, char out[COMMUNITY_ID_LEN]);

#endif
