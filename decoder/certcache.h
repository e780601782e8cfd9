/*
 * certcache.h - each distinct certificate parsed and described once.
 * Mail servers present the same few thousand certificates over and over;
 * decoding them with OpenSSL for every session was most of the cost of a
 * record. Entries are found by a keyed hash of the DER and confirmed by
 * comparing the DER itself, so the SHA-256 in the description is computed
 * once, on first sight. Shared by every worker thread; bounded in entries
 * and bytes, least recently used first out. A description handed out stays
 * valid until released, even when the cache has dropped it meanwhile.
 */
#ifndef MXW_CERTCACHE_H
#define MXW_CERTCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "decoder/x509.h"

#define CERTCACHE_MAX_ENTRIES 4096
#define CERTCACHE_MAX_BYTES   (16u << 20) /* DER plus description */

struct certcache_stats {
	uint64_t hits, misses, evictions;
	uint64_t entries, bytes; /* now */
};

/* The description of one DER certificate, from the cache or parsed now;
 * NULL only when out of memory. Release it with certcache_release(). */
const struct x509_info *certcache_get(const uint8_t *der, size_t len);
void certcache_release(const struct x509_info *info);
/* Another reference to a description already held. */
const struct x509_info *certcache_ref(const struct x509_info *info);
/* The certificate a description was made from; valid while it is held. */
const uint8_t *certcache_der(const struct x509_info *info, size_t *len);

void certcache_stats(struct certcache_stats *out);
/* Drops every entry not in use (tests, and the end of a run). */
void certcache_clear(void);

#endif
