/*
 * cache.h - the policy cache in memory, read-only after loading, so the
 * packet path and the rules never wait on SQLite. Loaded from the database
 * at start (and again on reload, into a new object swapped in whole).
 * Lookups: a domain's MX hosts and MTA-STS policy, a host's TLSA records
 * and addresses, and the MX hosts (hence domains) behind a server address.
 */
#ifndef MXW_CACHE_H
#define MXW_CACHE_H

#include <stdint.h>

#include "db/sql/db.h"

struct cached_mx {
	const char *host;
	int preference;
	uint8_t secure; /* the MX answer was DNSSEC-secure */
};

struct cached_sts {
	const char *mode; /* "enforce" | "testing" | "none" */
	int64_t max_age;
	int64_t fetched_at;
	const char *const *mx_patterns;
	int n_mx_patterns;
	const char *txt_id;
};

struct cached_domain {
	const char *name;
	struct cached_mx *mx;
	int n_mx;
	struct cached_sts *sts; /* NULL: no policy cached */
	const char *sts_result; /* last fetch result ("ok" or RFC 8460 type) */
};

struct cached_tlsa {
	int port, usage, selector, mtype;
	const uint8_t *data;
	uint32_t len;
	uint8_t secure;
	int64_t fetched_at;
	uint32_t ttl;
};

struct cached_host {
	const char *name;
	struct cached_tlsa *tlsa;
	int n_tlsa;
	const char *const *addresses;
	int n_addresses;
	const char *const *domains; /* domains naming this host as MX */
	int n_domains;
};

struct policy_cache;

/* Returns NULL with err set on failure. */
struct policy_cache *policy_cache_load(struct db *d, char *err, size_t errlen);
void policy_cache_free(struct policy_cache *c);

const struct cached_domain *policy_cache_domain(const struct policy_cache *c, const char *domain);
const struct cached_host *policy_cache_host(const struct policy_cache *c, const char *host);
/* MX hosts with this address (text form as inet_ntop writes it). */
int policy_cache_hosts_at(const struct policy_cache *c, const char *address,
			  const struct cached_host **out, int max);

void policy_cache_counts(const struct policy_cache *c, int *domains, int *hosts, int *addresses,
			 int *tlsa);

#endif
