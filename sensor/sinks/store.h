/*
 * store.h - the results sink: session records (as serialised JSON, with
 * their indexed columns), the domains each was tied to, their findings, and
 * recipient domains queued for discovery, written to SQLite through db/ in
 * batched transactions by the one result writer. A failed write is reported
 * on stderr and, for a daemon, in syslog.
 */
#ifndef MXW_STORE_H
#define MXW_STORE_H

#include <stdint.h>

#include "db/sql/db.h"
#include "decoder/record.h"
#include "rules/rules.h"

#define STORE_BATCH 1000 /* rows per transaction */

struct store {
	struct db *db;    /* not owned; NULL: nothing is stored */
	const char *path; /* for messages */
	int syslog;       /* report failures to syslog too */
	uint64_t pending; /* rows in the open transaction */
	int in_txn;       /* a transaction is open */
	int failed;       /* storing stopped */
};

void store_init(struct store *s, struct db *db, const char *path);

/* True while results can be written. */
int store_usable(const struct store *s);

/* The session record serialised as `json`, its verdict and findings. */
void store_session(struct store *s, const struct session_record *r, const struct verdict *v,
		   const char *json, const struct finding *findings, int n_findings);

/* Queues a recipient domain for the policy refresher; 1 when queued. */
int store_discovery(struct store *s, const char *domain, int64_t ts);

/* Opens a transaction unless one is open; 0 when one is. */
int store_batch(struct store *s);
/* Commits the open transaction, if any. */
void store_commit(struct store *s);
/* Reports a failure of the caller's own writes in the open transaction,
 * which is rolled back; storing stops. */
void store_fail(struct store *s, const char *what);

#endif
