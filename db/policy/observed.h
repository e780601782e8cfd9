/*
 * observed.h - DNS data seen on the wire (passive DNS): MX hosts of domains
 * and addresses of hosts, with the AD bit and the answering resolver. Kept
 * apart from the validated cache: the rules consult it only where the cache
 * knows nothing, so observed data never overrides what the refresher
 * validated. Bounded: when full, an expired answer makes room, else the
 * least recently used one, so a flood of spoofed answers cannot keep
 * genuine ones out. An answer counts only until its TTL runs out, in
 * memory and in the observed_dns table, which the one writer keeps to the
 * same bound.
 */
#ifndef MXW_OBSERVED_H
#define MXW_OBSERVED_H

#include <stdint.h>

#include "db/sql/db.h"

#define OBSERVED_MAX_ENTRIES 65536
/* Longest an answer counts, whatever TTL it carries: one spoofed answer
 * ties an address to a domain for a day at most (as long as a resolver
 * such as Unbound keeps any answer by default). */
#define OBSERVED_MAX_TTL     86400

enum observed_kind {
	OBS_MX = 0,
	OBS_ADDR,
	OBS_TLSA,
	OBS_TXT
};

struct observed;

struct observed *observed_new(void);
void observed_free(struct observed *o);

/* name: owner (domain for MX, host for addresses); value: MX host, address
 * text, "U S M hex" for TLSA, or the TXT text. seen_at: capture time
 * (seconds); the answer counts until seen_at + ttl, inclusive. */
void observed_add(struct observed *o, enum observed_kind kind, const char *name, const char *value,
		  int ad, const char *resolver, uint32_t ttl, int64_t seen_at);

/* Lookups as of `now`, the capture time (seconds) of the session judged:
 * answers expired by then are left out. What is returned counts as used. */
/* Hosts whose observed address is `address`. */
int observed_hosts_at(struct observed *o, const char *address, int64_t now, const char **out,
		      int max);
/* Domains whose observed MX is `host`. */
int observed_domains_of(struct observed *o, const char *host, int64_t now, const char **out,
			int max);

uint64_t observed_count(const struct observed *o);
/* Answers pushed out to make room; the second count only those that had
 * not expired (the table was too small for what was seen). */
uint64_t observed_evicted(const struct observed *o);
uint64_t observed_evicted_unexpired(const struct observed *o);

/* Loads what earlier runs observed, newest first, at most the cap, each
 * with its expiry (lookups judge it by the capture time of each session). */
int observed_load(struct observed *o, struct db *d);
/* Writes the unexpired answers this run saw into observed_dns, then
 * deletes the rows expired by the newest capture time of this run and the
 * oldest beyond the cap. */
int observed_save(const struct observed *o, struct db *d);

#endif
