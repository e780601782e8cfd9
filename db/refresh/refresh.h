/*
 * refresh.h - the policy refresher: fills the cache from DNS (libunbound,
 * DNSSEC validated locally against a trust anchor) and HTTPS (libcurl,
 * RFC 8461 policy fetch). Called by `mxwatch policy fetch`; never on the
 * packet path. Failures are stored with their RFC 8460 result type.
 */
#ifndef MXW_REFRESH_H
#define MXW_REFRESH_H

#include <stdio.h>

#include "db/sql/db.h"

#define REFRESH_MAX_SERVERS    8
#define REFRESH_DEFAULT_ANCHOR "/usr/share/dns/root.key"

struct refresh_config {
	const char *trust_anchor;               /* NULL: the root anchor */
	const char *stubs[REFRESH_MAX_SERVERS]; /* "ZONE@ADDR[@PORT]" */
	int n_stubs;
	const char *forwarders[REFRESH_MAX_SERVERS]; /* "ADDR[@PORT]" */
	int n_forwarders;
	const char *ca_bundle; /* NULL: the system store */
	int https_port;        /* 443 unless testing */
	int force;             /* download even if the id is unchanged */
	long timeout_s;
};

struct refresher;

struct refresher *refresher_new(const struct refresh_config *cfg, char *err, size_t errlen);
void refresher_free(struct refresher *r);

/* Refreshes one domain into the database and prints a one-line summary to
 * `out`. Returns 0 when the domain was processed (policy problems are data,
 * stored with their result type), 1 when a DNS lookup failed (SERVFAIL,
 * timeout, unreachable resolver: what was cached stays, the failure is
 * stored; refresher_failure() says which), -1 on a database error. */
int refresher_fetch(struct refresher *r, struct db *d, const char *domain, FILE *out);
const char *refresher_failure(const struct refresher *r);

#endif
