/*
 * store.h - the results sink: session records (as serialised JSON, with
 * their indexed columns), the domains each was tied to, their findings, and
 * recipient domains queued for discovery. The pipeline only queues copies;
 * a writer thread owns the database connection while the store is open and
 * commits about once a second, so the packet path never waits on SQLite and
 * a crash loses about a second of results.
 *
 * A busy database (another process holding the write lock) is retried with
 * backoff. A write that still fails is reported on stderr and, for a
 * daemon, in syslog: offline the store gives up after --db-wait and the run
 * exits 2; live it keeps a bounded queue, counts what it drops, retries,
 * and says when it has recovered.
 */
#ifndef MXW_STORE_H
#define MXW_STORE_H

#include <stdint.h>

#include "db/sql/db.h"
#include "decoder/record.h"
#include "rules/rules.h"

struct store_config {
	int live;               /* never give up; drop (and count) when the queue is full */
	unsigned wait_s;        /* offline: how long a failing write is retried */
	unsigned commit_ms;     /* results are committed at least this often */
	uint64_t queue_bytes;   /* queued results beyond this: live drops, offline waits */
	int syslog;             /* report failures to syslog too */
};

void store_config_defaults(struct store_config *c);

struct store_stats { /* sessions */
	uint64_t queued;  /* handed to the store */
	uint64_t stored;  /* committed */
	uint64_t dropped; /* live: the queue was full */
	uint64_t lost;    /* never written: the store gave up, or was closed failing */
	uint64_t retries; /* transactions retried (busy or failing database) */
	int failed;       /* the last attempt failed: results are not being stored */
};

struct store;

/* Starts the writer on `db`, which it uses alone until store_close().
 * `path` names the database in messages. NULL when the thread cannot
 * start. */
struct store *store_open(struct db *db, const char *path, const struct store_config *c);

/* The session record serialised as `json`, its verdict and findings. */
void store_session(struct store *s, const struct session_record *r, const struct verdict *v,
		   const char *json, const struct finding *findings, int n_findings);

/* Queues a recipient domain for the policy refresher; 1 when queued. */
int store_discovery(struct store *s, const char *domain, int64_t ts);

/* False once the store has given up (offline): results are not queued. */
int store_usable(const struct store *s);

void store_set_syslog(struct store *s, int on);

/* Writes everything queued, then `last` (if any) in the same transaction
 * and with the same retries, and stops the writer: the database is the
 * caller's again. Returns 0 when every result was stored. */
int store_close(struct store *s, int (*last)(void *ctx, struct db *db), void *ctx);

/* Counts so far (safe to call while the writer runs). */
void store_stats(struct store *s, struct store_stats *out);

void store_free(struct store *s);

#endif
