/*
 * db.h - the SQLite store: policy cache (MX, addresses, MTA-STS, TLSA),
 * fetch log, learned server history and results. Only db/ speaks SQL; every
 * statement is prepared once at open. One writer: the process that opened
 * the file read-write; the hot path never calls in here (it reads the
 * in-memory cache built by policy_cache_load()).
 */
#ifndef MXW_DB_H
#define MXW_DB_H

#include <stddef.h>
#include <stdint.h>

#define DB_SCHEMA_VERSION 9
#define DB_MAX_NAME       256
#define DB_MAX_TLSA_HEX   1025 /* 512 bytes of association data as hex, plus NUL */

struct db;

/* A row of a query, as text columns (NULL for SQL NULL). */
typedef int (*db_result_fn)(void *ctx, const char *const *cols, int n);

struct db_mx {
	char domain[DB_MAX_NAME];
	char host[DB_MAX_NAME];
	int preference;
	char dnssec[16]; /* secure | insecure | bogus | indeterminate */
	uint32_t ttl;
	int64_t fetched_at;
	char source[16]; /* dns | import | observed */
};

struct db_addr {
	char host[DB_MAX_NAME];
	char address[64];
	char dnssec[16];
	uint32_t ttl;
	int64_t fetched_at;
	char source[16];
};

struct db_tlsa {
	char name[DB_MAX_NAME]; /* _25._tcp.mx.example */
	char host[DB_MAX_NAME];
	int port;
	int usage, selector, mtype;
	char data[DB_MAX_TLSA_HEX];
	char dnssec[16];
	uint32_t ttl;
	int64_t fetched_at;
	char source[16];
};

struct db_sts {
	char domain[DB_MAX_NAME];
	char txt_id[40]; /* "" when no valid record */
	char txt_raw[512];
	char txt_dnssec[16];
	char *policy_text;          /* owned; NULL when none */
	char mode[16];              /* "" when no policy */
	int64_t max_age;            /* -1 when unknown */
	char mx_patterns[64 * 257]; /* one per line: room for STS_MAX_MX full names */
	int64_t policy_fetched_at;  /* 0 when never */
	int64_t checked_at;
	char result[40]; /* "ok" or an RFC 8460 result type */
	char error_detail[512];
	char source[16];
};

/* Opens (creating if needed, with parent directories) and migrates the
 * database. Returns NULL with a message in err. */
struct db *db_open(const char *path, char *err, size_t errlen);
/* For commands that only read (report, policy show/list/export): the file
 * must exist and be at this version; nothing is created or migrated, and a
 * read-only file works. NULL with err set. */
struct db *db_open_readonly(const char *path, char *err, size_t errlen);
/* For commands that change what is there (prune): like db_open, but the
 * file must exist and be an mxwatch database; nothing is created. */
struct db *db_open_existing(const char *path, char *err, size_t errlen);
void db_close(struct db *d);

/* Path used when --db is not given: $MXWATCH_DB, else
 * $XDG_DATA_HOME/mxwatch/mxwatch.db, else ~/.local/share/mxwatch/mxwatch.db. */
const char *db_default_path(char *buf, size_t len);

const char *db_errmsg(struct db *d);
/* The last failure was another connection holding the lock. */
int db_busy(struct db *d);
/* How long one statement waits for a lock before failing busy. */
#define DB_BUSY_WAIT_MS 5000
void db_set_busy_wait(struct db *d, int ms);

int db_begin(struct db *d);
int db_commit(struct db *d);
void db_rollback(struct db *d);

/* Replace all rows of a key from one source (an answer replaces the last). */
int db_mx_replace(struct db *d, const char *domain, const char *source, const struct db_mx *rows,
		  int n);
int db_addr_replace(struct db *d, const char *host, const char *source, const struct db_addr *rows,
		    int n);
int db_tlsa_replace(struct db *d, const char *name, const char *source, const struct db_tlsa *rows,
		    int n);

/* Insert or replace one row (imports, observed data); source is in the row. */
int db_mx_put(struct db *d, const struct db_mx *row);
int db_addr_put(struct db *d, const struct db_addr *row);
int db_tlsa_put(struct db *d, const struct db_tlsa *row);

/* Returns 1 and fills *out when a row exists, 0 when not, -1 on error. The
 * caller frees out->policy_text. */
int db_sts_get(struct db *d, const char *domain, struct db_sts *out);
int db_sts_put(struct db *d, const struct db_sts *s);

int db_log(struct db *d, int64_t ts, const char *domain, const char *what, const char *result,
	   const char *detail);

/* Iteration for show/list/export and the in-memory cache: the callback
 * returns non-zero to stop. `domain` NULL means every row. */
typedef int (*db_mx_fn)(void *ctx, const struct db_mx *row);
typedef int (*db_addr_fn)(void *ctx, const struct db_addr *row);
typedef int (*db_tlsa_fn)(void *ctx, const struct db_tlsa *row);
typedef int (*db_sts_fn)(void *ctx, const struct db_sts *row);
typedef int (*db_log_fn)(void *ctx, int64_t ts, const char *domain, const char *what,
			 const char *result, const char *detail);
int db_each_mx(struct db *d, const char *domain, db_mx_fn fn, void *ctx);
int db_each_addr(struct db *d, const char *host, db_addr_fn fn, void *ctx);
int db_each_tlsa(struct db *d, const char *host, db_tlsa_fn fn, void *ctx);
int db_each_sts(struct db *d, const char *domain, db_sts_fn fn, void *ctx);
int db_each_log(struct db *d, const char *domain, int limit, db_log_fn fn, void *ctx);

/* Learned server history. */
struct db_history {
	char address[64];
	int starttls_offered;
	int tls_versions;
	int64_t first_seen, last_seen;
	int64_t sessions;
};
typedef int (*db_history_fn)(void *ctx, const struct db_history *row);
int db_each_history(struct db *d, db_history_fn fn, void *ctx);
int db_history_put(struct db *d, const struct db_history *row);

/* A domain's SMTP TLS Reporting record (_smtp._tls TXT, RFC 8460 3): where
 * its reports go. result is "ok" (rua holds the destinations, one per
 * line), or why there is none ("none", "invalid", "multiple", or a lookup
 * failure, which keeps the destinations fetched before). */
struct db_tlsrpt {
	char domain[DB_MAX_NAME];
	char txt_raw[1024];
	char rua[4096];
	char dnssec[16];
	int64_t fetched_at; /* when rua was last set from a record; 0 never */
	int64_t checked_at;
	char result[40];
	char detail[512];
	char source[16]; /* "dns" or "import" */
};
int db_tlsrpt_put(struct db *d, const struct db_tlsrpt *t);
/* 1 found, 0 not, -1 error. */
int db_tlsrpt_get(struct db *d, const char *domain, struct db_tlsrpt *out);
typedef int (*db_tlsrpt_fn)(void *ctx, const struct db_tlsrpt *row);
/* domain NULL: every domain, sorted. */
int db_each_tlsrpt(struct db *d, const char *domain, db_tlsrpt_fn fn, void *ctx);

/* Reports sent (`report --send`): one row per (policy domain, UTC day,
 * destination). status "sent", "rejected" (a destination that can never
 * take it) and "expired" (failing for a day) are final; "failed" is tried
 * again. */
struct db_sent {
	char status[16];
	int attempts;
	int64_t first_attempt, last_attempt;
	char report_id[160];
	char detail[512];
};
/* 1 and out filled when there is a row, 0 none, -1 error. */
int db_sent_get(struct db *d, const char *domain, int64_t day, const char *rua,
		struct db_sent *out);
int db_sent_put(struct db *d, const char *domain, int64_t day, const char *rua,
		const struct db_sent *row);

/* Results, written by the one writer in batches (inside db_begin/commit). */
struct db_session_row {
	const char *id;
	int64_t ts_start, ts_end;
	const char *client_ip, *server_ip;
	int server_port;
	const char *domain, *mx_host, *tls_version;
	int starttls_offered; /* -1 unknown */
	int verified;         /* -1 not checked */
	const char *verdict, *verdict_reason;
	const char *record; /* the JSON record */
	const char *sensor, *community_id; /* NULL: not known */
};
struct db_finding_row {
	const char *session_id, *rule, *severity, *domain, *mx_host, *rfc8460;
	int64_t ts;
	const char *sending_ip, *receiving_ip, *message;
	const char *sensor;
	/* The session id in the sensor's own record (ingest stores a finding on
	 * another sensor's session); NULL: session_id. With the sensor, rule,
	 * time, names and message it makes the finding's key: the same finding
	 * stored again, by analyze or ingest, is stored once. */
	const char *record_session;
};
/* Stores a session, replacing one stored with the same id with its findings
 * and domains (a capture analysed again), and the sensor's sighting of it. */
int db_session_put(struct db *d, const struct db_session_row *r);
/* Returns 1 when stored, 0 when the same finding (see record_session) was
 * stored before, -1 on error. */
int db_finding_put(struct db *d, const struct db_finding_row *r);

/* Many sensors (mxwatch ingest). A sighting is one sensor's record of a
 * session: (sensor, record id) -> the session stored for it. Two sensors on
 * one path see the same session under different record ids; the first
 * sighting's session is stored, the others point at it. */
/* The session a sensor's record was stored as: 1 and session_id set, 0 not
 * seen, -1 error. */
int db_sighting_get(struct db *d, const char *sensor, const char *record_id, char *session_id,
		    size_t cap);
/* A stored session with this Community ID that started within `window`
 * seconds of ts_start and that `sensor` has not sighted: 1 and session_id
 * set, 0 none, -1 error. */
int db_session_match(struct db *d, const char *community_id, int64_t ts_start, int64_t window,
		     const char *sensor, char *session_id, size_t cap);
/* 1 when a session with this id is stored, 0 not, -1 error. */
int db_session_exists(struct db *d, const char *id);
/* Stores a session that is not stored yet (its findings may be: ingest
 * stores a finding that arrives before its session under the record id). */
int db_session_add(struct db *d, const struct db_session_row *r);
int db_sighting_put(struct db *d, const char *sensor, const char *record_id,
		    const char *session_id, int64_t ts_start, const char *community_id);
/* Findings a sensor stored under a record id now belong to session_id. */
int db_findings_move(struct db *d, const char *sensor, const char *record_id,
		     const char *session_id);

int db_session_domain_put(struct db *d, const char *session_id, const char *domain,
			  const char *mx_host);
/* On-demand discovery: domains seen without cached policy, for the
 * refresher (`policy fetch --queued`). */
int db_discovery_put(struct db *d, const char *domain, int64_t ts);
int db_discovery_each(struct db *d, db_result_fn fn, void *ctx);
int db_discovery_done(struct db *d, const char *domain);

/* Passive DNS. Newest first, at most `limit` rows: kind, name, value, ad,
 * resolver, ttl, seen_at, expires_at. */
int db_each_observed(struct db *d, int limit, db_result_fn fn, void *ctx);
int db_observed_put(struct db *d, const char *kind, const char *name, const char *value, int ad,
		    const char *resolver, uint32_t ttl, int64_t seen_at, int64_t expires_at);
/* Deletes the rows expired before `now`, then all but the `keep` newest. */
int db_observed_trim(struct db *d, int64_t now, int keep);

/* Retention (`mxwatch prune`): in one transaction, deletes the sessions
 * that started before `before` (seconds), their findings, domain links and
 * sightings, findings older than it whose session never arrived (ingest),
 * and the server history last seen before it; policies, the fetch log,
 * observed DNS and the discovery queue are left alone. With `dry_run` the
 * transaction is rolled back, so the counts say what would go. Returns 0;
 * 1 when another process held the write lock for longer than the busy wait
 * (db_set_busy_wait); -1 on another error. Nothing is deleted unless 0, and
 * err says why. */
struct db_prune_counts {
	int64_t sessions, findings, session_domains, history;
	int64_t sessions_kept, findings_kept, history_kept;
};
int db_prune(struct db *d, int64_t before, int dry_run, struct db_prune_counts *out, char *err,
	     size_t errlen);
/* Pages in the file and pages free for later writes, and the page size. */
int db_space(struct db *d, int64_t *pages, int64_t *free_pages, int64_t *page_size);
/* Rewrites the file without its free pages (VACUUM). */
int db_vacuum(struct db *d, char *err, size_t errlen);

/* Report queries over [from, to) (seconds). */
int db_report_sessions(struct db *d, int64_t from, int64_t to, db_result_fn fn, void *ctx);
/* A session seen by several sensors counts each finding (rule and domain)
 * once: another sensor's finding of the same is left out. In session
 * order. */
int db_report_findings(struct db *d, int64_t from, int64_t to, db_result_fn fn, void *ctx);
/* Per sensor, over sessions that started in [from, to): sensor ('' for
 * sessions stored before sensors were named), sessions it sighted, sessions
 * no other sensor sighted, findings it reported. */
int db_report_sensors(struct db *d, int64_t from, int64_t to, db_result_fn fn, void *ctx);

/* Record lines read through SQLite's JSON functions (a JSON parser already
 * linked, depth-limited and fuzzed) instead of one of our own. A query is
 * prepared once for a list of paths ("$.client.ip"); each extract fills,
 * per path, its JSON type and value. */
enum db_json_type {
	DB_JSON_ABSENT,
	DB_JSON_NULL,
	DB_JSON_TRUE,
	DB_JSON_FALSE,
	DB_JSON_INTEGER,
	DB_JSON_REAL,
	DB_JSON_TEXT,
	DB_JSON_ARRAY,
	DB_JSON_OBJECT
};
struct db_json_value {
	enum db_json_type type;
	const char *text; /* strings unescaped; arrays and objects as JSON */
	size_t len;
	int64_t integer;
};
struct db_json_query;
struct db_json_query *db_json_prepare(struct db *d, const char *const *paths, int n);
/* 1: the text is one valid JSON value and out[0..n) is filled (valid until
 * the next extract with this query); 0: not valid JSON; -1: error. */
int db_json_extract(struct db_json_query *q, const char *json, size_t len,
		    struct db_json_value *out);
/* Calls fn for each element of the array at path (none when the path is not
 * an array); the number of elements, or -1 on error or when fn returned
 * non-zero. */
int db_json_each(struct db_json_query *q, const char *json, size_t len, const char *path,
		 int (*fn)(void *ctx, const struct db_json_value *v), void *ctx);
void db_json_free(struct db_json_query *q);

/* Every domain that has MX or MTA-STS rows, sorted. */
int db_each_domain(struct db *d, int (*fn)(void *ctx, const char *domain), void *ctx);

#endif
