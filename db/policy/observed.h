/*
 * observed.h - DNS data seen on the wire (passive DNS): MX hosts of domains
 * and addresses of hosts, with the AD bit and the answering resolver. Kept
 * apart from the validated cache: the rules consult it only where the cache
 * knows nothing, so observed data never overrides what the refresher
 * validated. Bounded; saved to the observed_dns table by the one writer.
 */
#ifndef MXW_OBSERVED_H
#define MXW_OBSERVED_H

#include <stdint.h>

#include "db/sql/db.h"

#define OBSERVED_MAX_ENTRIES 65536

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
 * text, "U S M hex" for TLSA, or the TXT text. */
void observed_add(struct observed *o, enum observed_kind kind, const char *name, const char *value,
		  int ad, const char *resolver, uint32_t ttl, int64_t seen_at);

/* Hosts whose observed address is `address`. */
int observed_hosts_at(const struct observed *o, const char *address, const char **out, int max);
/* Domains whose observed MX is `host`. */
int observed_domains_of(const struct observed *o, const char *host, const char **out, int max);

uint64_t observed_count(const struct observed *o);
uint64_t observed_dropped(const struct observed *o);

/* Loads what earlier runs observed. */
int observed_load(struct observed *o, struct db *d);
/* Writes every entry into observed_dns (insert or replace). */
int observed_save(const struct observed *o, struct db *d);

#endif
