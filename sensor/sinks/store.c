/*
 * store.c - results into SQLite: a queue of packed copies, drained by one
 * writer thread in short transactions.
 */
#include "sinks/store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "util/units.h"

#define STORE_BATCH        1000 /* results per transaction at most */
#define STORE_BUSY_WAIT_MS 200  /* SQLite's own wait per attempt; backoff does the rest */
#define BACKOFF_FIRST_MS   50
#define BACKOFF_BUSY_MS    1000 /* a lock is usually short */
#define BACKOFF_MAX_MS     5000 /* a full disk is not */

void store_config_defaults(struct store_config *c)
{
	memset(c, 0, sizeof(*c));
	c->wait_s = 30;
	c->commit_ms = 1000;
	c->queue_bytes = 64ull << 20;
}

enum item_kind { ITEM_SESSION, ITEM_DISCOVERY };

/* One queued result, packed in a single allocation: the header, then the
 * finding rows and domain pointers, then every string. */
struct item {
	struct item *next;
	size_t size;
	enum item_kind kind;
	struct db_session_row row;
	int n_domains;
	const char **domains; /* domain, mx host; n_domains pairs */
	int n_findings;
	struct db_finding_row *findings;
	const char *discovery_domain;
	int64_t discovery_ts;
};

struct store {
	struct db *db;
	char path[4096];
	struct store_config cfg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* the writer: results queued, or closing */
	pthread_cond_t room; /* offline producers: the queue has room again */
	struct item *head, *tail;
	uint64_t queued_bytes;
	unsigned queued_items;
	int closing;
	int joined;
	atomic_int gave_up;
	int (*last)(void *ctx, struct db *db);
	void *last_ctx;
	int last_failed;
	struct store_stats st;
	/* the failure episode under way, for its one report and its end */
	uint64_t fail_since_ms;
	uint64_t dropped_at_failure;
};

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec t = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

/* ---- packing */

static size_t str_room(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

static const char *pack(char **cur, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = *cur;
	memcpy(d, s, n);
	*cur += n;
	return d;
}

static struct item *pack_session(const struct session_record *r, const struct verdict *v,
				 const char *json, const struct finding *f, int n_findings)
{
	const struct tls_facts *t = r->tls;
	const struct smtp_facts *m = r->smtp;
	struct db_session_row row = {
	    .id = r->id,
	    .ts_start = (int64_t)(r->ts_first / NS_PER_S),
	    .ts_end = (int64_t)(r->ts_last / NS_PER_S),
	    .client_ip = r->ip[0],
	    .server_ip = r->ip[1],
	    .server_port = r->port[1],
	    .domain = v->domain,
	    .mx_host = v->mx_host,
	    .tls_version = t && t->server_hello ? tls_version_name(t->version) : NULL,
	    .starttls_offered = m && smtp_starttls_offer_known(m) ? m->starttls_offered : -1,
	    .verified = v->verified,
	    .verdict = verdict_name(v->verdict),
	    .verdict_reason = v->reason,
	    .record = json ? json : "{}",
	    .sensor = r->sensor,
	    .community_id = r->community_id,
	};
	/* Names of rules, severities, verdicts and RFC 8460 types are static
	 * strings: only the per-session text is copied. */
	size_t strings = str_room(row.id) + str_room(row.client_ip) + str_room(row.server_ip) +
			 str_room(row.domain) + str_room(row.mx_host) + str_room(row.record) +
			 str_room(row.sensor) + str_room(row.community_id);
	for (int i = 0; i < v->n_domains; i++)
		strings += str_room(v->domains[i]) + str_room(v->mx_hosts[i]);
	for (int i = 0; i < n_findings; i++)
		strings += str_room(f[i].domain) + str_room(f[i].mx_host) +
			   str_room(f[i].client_ip) + str_room(f[i].server_ip) +
			   str_room(f[i].message) + str_room(f[i].sensor);
	size_t size = sizeof(struct item) + (size_t)n_findings * sizeof(struct db_finding_row) +
		      (size_t)v->n_domains * 2 * sizeof(char *) + strings;
	struct item *it = malloc(size);
	if (!it)
		return NULL;
	memset(it, 0, sizeof(*it));
	it->size = size;
	it->kind = ITEM_SESSION;
	it->findings = (struct db_finding_row *)(it + 1);
	it->domains = (const char **)(it->findings + n_findings);
	char *cur = (char *)(it->domains + 2 * v->n_domains);
	it->row = row;
	it->row.id = pack(&cur, row.id);
	it->row.client_ip = pack(&cur, row.client_ip);
	it->row.server_ip = pack(&cur, row.server_ip);
	it->row.domain = pack(&cur, row.domain);
	it->row.mx_host = pack(&cur, row.mx_host);
	it->row.record = pack(&cur, row.record);
	it->row.sensor = pack(&cur, row.sensor);
	it->row.community_id = pack(&cur, row.community_id);
	it->n_domains = v->n_domains;
	for (int i = 0; i < v->n_domains; i++) {
		it->domains[2 * i] = pack(&cur, v->domains[i]);
		it->domains[2 * i + 1] = pack(&cur, v->mx_hosts[i]);
	}
	it->n_findings = n_findings;
	for (int i = 0; i < n_findings; i++) {
		const struct finding *x = &f[i];
		it->findings[i] = (struct db_finding_row){
		    .session_id = it->row.id,
		    .rule = finding_name(x->id),
		    .severity = severity_name(x->severity),
		    .domain = pack(&cur, x->domain),
		    .mx_host = pack(&cur, x->mx_host),
		    .rfc8460 = x->rfc8460,
		    .ts = (int64_t)(x->ts_ns / NS_PER_S),
		    .sending_ip = pack(&cur, x->client_ip),
		    .receiving_ip = pack(&cur, x->server_ip),
		    .message = pack(&cur, x->message),
		    .sensor = pack(&cur, x->sensor),
		};
	}
	return it;
}

static struct item *pack_discovery(const char *domain, int64_t ts)
{
	size_t size = sizeof(struct item) + strlen(domain) + 1;
	struct item *it = malloc(size);
	if (!it)
		return NULL;
	memset(it, 0, sizeof(*it));
	it->size = size;
	it->kind = ITEM_DISCOVERY;
	char *cur = (char *)(it + 1);
	it->discovery_domain = pack(&cur, domain);
	it->discovery_ts = ts;
	return it;
}

static int write_item(struct db *db, const struct item *it)
{
	if (it->kind == ITEM_DISCOVERY)
		return db_discovery_put(db, it->discovery_domain, it->discovery_ts);
	int rc = db_session_put(db, &it->row);
	for (int i = 0; !rc && i < it->n_domains; i++)
		rc = db_session_domain_put(db, it->row.id, it->domains[2 * i],
					   it->domains[2 * i + 1]);
	for (int i = 0; !rc && i < it->n_findings; i++)
		rc = db_finding_put(db, &it->findings[i]) < 0 ? -1 : 0;
	return rc;
}

/* Counts are of sessions: discovery entries are the store's own notes. */
static unsigned count_sessions(const struct item *it)
{
	unsigned n = 0;
	for (; it; it = it->next)
		n += it->kind == ITEM_SESSION;
	return n;
}

static void free_items(struct item *it)
{
	while (it) {
		struct item *next = it->next;
		free(it);
		it = next;
	}
}

/* ---- producers */

static void enqueue(struct store *s, struct item *it)
{
	int session = it->kind == ITEM_SESSION;
	pthread_mutex_lock(&s->mu);
	s->st.queued += session;
	if (!s->cfg.live)
		while (!atomic_load(&s->gave_up) &&
		       s->queued_bytes + it->size > s->cfg.queue_bytes && s->head)
			pthread_cond_wait(&s->room, &s->mu);
	if (atomic_load(&s->gave_up)) {
		s->st.lost += session;
		free(it);
	} else if (s->cfg.live && s->queued_bytes + it->size > s->cfg.queue_bytes) {
		s->st.dropped += session;
		free(it);
	} else {
		it->next = NULL;
		if (s->tail)
			s->tail->next = it;
		else
			s->head = it;
		s->tail = it;
		s->queued_bytes += it->size;
		/* The writer times its commit from the first result; a full
		 * batch goes at once. */
		if (++s->queued_items == 1 || s->queued_items >= STORE_BATCH)
			pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->mu);
}

static void lost_for_memory(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	s->st.queued++;
	s->st.lost++;
	pthread_mutex_unlock(&s->mu);
}

void store_session(struct store *s, const struct session_record *r, const struct verdict *v,
		   const char *json, const struct finding *findings, int n_findings)
{
	if (!s)
		return;
	struct item *it = pack_session(r, v, json, findings, n_findings);
	if (it)
		enqueue(s, it);
	else
		lost_for_memory(s);
}

int store_discovery(struct store *s, const char *domain, int64_t ts)
{
	if (!store_usable(s))
		return 0;
	struct item *it = pack_discovery(domain, ts);
	if (!it)
		return 0;
	enqueue(s, it);
	return 1;
}

int store_usable(const struct store *s)
{
	return s && !atomic_load(&((struct store *)s)->gave_up);
}

void store_set_syslog(struct store *s, int on)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->cfg.syslog = on;
	pthread_mutex_unlock(&s->mu);
}

/* ---- the writer */

struct attempt {
	int busy;
	char msg[256];
};

/* One transaction: every item of the batch, then `last`. */
static int try_write(struct store *s, const struct item *batch, int with_last, struct attempt *a)
{
	int rc = db_begin(s->db);
	for (const struct item *it = batch; !rc && it; it = it->next)
		rc = write_item(s->db, it);
	if (!rc && with_last && s->last)
		rc = s->last(s->last_ctx, s->db);
	if (!rc)
		rc = db_commit(s->db);
	if (!rc)
		return 0;
	a->busy = db_busy(s->db);
	snprintf(a->msg, sizeof(a->msg), "%s", db_errmsg(s->db));
	db_rollback(s->db);
	return -1;
}

static void report(struct store *s, int priority, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct store *s, int priority, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mxwatch: %s\n", line);
	pthread_mutex_lock(&s->mu);
	int to_syslog = s->cfg.syslog;
	pthread_mutex_unlock(&s->mu);
	if (to_syslog)
		syslog(priority, "%s", line);
}

static void failure_begins(struct store *s, const struct attempt *a)
{
	pthread_mutex_lock(&s->mu);
	s->st.failed = 1;
	s->dropped_at_failure = s->st.dropped;
	pthread_mutex_unlock(&s->mu);
	s->fail_since_ms = now_ms();
	const char *then = s->cfg.live ? "results are queued and retried"
			   : a->busy   ? "retrying"
				       : "giving up";
	if (a->busy)
		report(s, LOG_WARNING,
		       "error=store-busy db=\"%s\" msg=\"%s\" (another process holds the "
		       "database's write lock; %s for up to %u s)",
		       s->path, a->msg, then, s->cfg.live ? 0 : s->cfg.wait_s);
	else
		report(s, LOG_ERR, "error=store-failed db=\"%s\" msg=\"%s\" (%s)", s->path, a->msg,
		       then);
}

static void failure_ends(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	s->st.failed = 0;
	uint64_t dropped = s->st.dropped - s->dropped_at_failure;
	pthread_mutex_unlock(&s->mu);
	report(s, LOG_NOTICE,
	       "notice=store-recovered db=\"%s\" after_ms=%" PRIu64 " dropped=%" PRIu64
	       " (results are stored again)",
	       s->path, now_ms() - s->fail_since_ms, dropped);
	s->fail_since_ms = 0;
}

/* Writes the batch, retrying with backoff; 0 when written. Offline, and
 * live once closing, a busy database is retried for cfg.wait_s (then -2)
 * and any other failure ends storing at once (-1); live, the writer keeps
 * trying. */
static int write_batch(struct store *s, const struct item *batch, int with_last)
{
	unsigned backoff = BACKOFF_FIRST_MS;
	for (;;) {
		struct attempt a = {0};
		if (try_write(s, batch, with_last, &a) == 0) {
			if (s->fail_since_ms)
				failure_ends(s);
			return 0;
		}
		if (!s->fail_since_ms)
			failure_begins(s, &a);
		pthread_mutex_lock(&s->mu);
		s->st.retries++;
		int closing = s->closing;
		pthread_mutex_unlock(&s->mu);
		int patient = s->cfg.live && !closing;
		uint64_t waited = now_ms() - s->fail_since_ms;
		if (!patient && (!a.busy || waited >= (uint64_t)s->cfg.wait_s * 1000u)) {
			report(s, LOG_ERR,
			       "error=store-gave-up db=\"%s\" msg=\"%s\" after_ms=%" PRIu64
			       " (alerts and output go on; nothing more is stored)",
			       s->path, a.msg, waited);
			return a.busy ? -2 : -1;
		}
		sleep_ms(backoff);
		unsigned most = a.busy ? BACKOFF_BUSY_MS : BACKOFF_MAX_MS;
		backoff = backoff * 2 > most ? most : backoff * 2;
	}
}

static void give_up(struct store *s, struct item *batch)
{
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->gave_up, 1);
	s->st.lost += count_sessions(batch) + count_sessions(s->head);
	free_items(s->head);
	s->head = s->tail = NULL;
	s->queued_bytes = 0;
	s->queued_items = 0;
	pthread_cond_broadcast(&s->room);
	pthread_mutex_unlock(&s->mu);
	free_items(batch);
}

/* After a failure that is not a lock (a full disk): the batch's results one
 * transaction each, as long as they fit, so that only the rest is lost. The
 * ones stored leave *batch; returns their session count. */
static unsigned store_what_fits(struct store *s, struct item **batch)
{
	unsigned fitted = 0;
	while (*batch) {
		struct item *it = *batch, *rest = it->next;
		it->next = NULL;
		struct attempt a = {0};
		if (try_write(s, it, 0, &a)) {
			it->next = rest;
			break;
		}
		fitted += count_sessions(it);
		*batch = rest;
		free_items(it);
	}
	return fitted;
}

static void *writer_main(void *arg)
{
	struct store *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->head && !s->closing)
			pthread_cond_wait(&s->wake, &s->mu);
		if (!s->head)
			break;
		/* Gather for up to commit_ms from the first result. */
		uint64_t due = now_ms() + s->cfg.commit_ms;
		while (!s->closing && s->queued_items < STORE_BATCH && now_ms() < due) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t left = due - now_ms();
			ts.tv_sec += (time_t)(left / 1000u);
			ts.tv_nsec += (long)(left % 1000u) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&s->wake, &s->mu, &ts);
		}
		struct item *batch = s->head;
		s->head = s->tail = NULL;
		s->queued_bytes = 0;
		s->queued_items = 0;
		pthread_cond_broadcast(&s->room);
		pthread_mutex_unlock(&s->mu);
		unsigned n = count_sessions(batch);
		int rc = write_batch(s, batch, 0);
		if (rc == 0) {
			free_items(batch);
			pthread_mutex_lock(&s->mu);
			s->st.stored += n;
		} else {
			unsigned fitted = rc == -1 ? store_what_fits(s, &batch) : 0;
			pthread_mutex_lock(&s->mu);
			s->st.stored += fitted;
			pthread_mutex_unlock(&s->mu);
			give_up(s, batch);
			pthread_mutex_lock(&s->mu);
			break;
		}
	}
	int do_last = s->last && !atomic_load(&s->gave_up);
	pthread_mutex_unlock(&s->mu);
	if (do_last && write_batch(s, NULL, 1) != 0)
		s->last_failed = 1;
	else if (!do_last && s->last)
		s->last_failed = 1;
	return NULL;
}

struct store *store_open(struct db *db, const char *path, const struct store_config *c)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->db = db;
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->cfg = *c;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->room, NULL);
	db_set_busy_wait(db, STORE_BUSY_WAIT_MS);
	if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->wake);
		pthread_cond_destroy(&s->room);
		free(s);
		return NULL;
	}
	return s;
}

int store_close(struct store *s, int (*last)(void *ctx, struct db *db), void *ctx)
{
	if (!s || s->joined)
		return 0;
	pthread_mutex_lock(&s->mu);
	s->last = last;
	s->last_ctx = ctx;
	s->closing = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->joined = 1;
	db_set_busy_wait(s->db, DB_BUSY_WAIT_MS);
	struct store_stats st;
	store_stats(s, &st);
	if (st.lost || st.dropped)
		report(s, LOG_ERR,
		       "error=store-incomplete db=\"%s\" results=%" PRIu64 " stored=%" PRIu64
		       " dropped=%" PRIu64 " lost=%" PRIu64
		       " (results printed or alerted were not all stored)",
		       s->path, st.queued, st.stored, st.dropped, st.lost);
	return st.lost || st.dropped || s->last_failed ? -1 : 0;
}

void store_stats(struct store *s, struct store_stats *out)
{
	if (!s) {
		memset(out, 0, sizeof(*out));
		return;
	}
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	pthread_mutex_unlock(&s->mu);
}

void store_free(struct store *s)
{
	if (!s)
		return;
	store_close(s, NULL, NULL);
	free_items(s->head);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->room);
	free(s);
}
