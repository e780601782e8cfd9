/*
 * db.c - SQLite schema, migrations and prepared statements.
 */
#include "db/sql/db.h"
#include "util/digest.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Migrations: entry N brings the schema from version N to N+1. Never edit
 * a shipped entry; append a new one. */
static const char *const migrations[DB_SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE mx(domain TEXT NOT NULL, host TEXT NOT NULL, preference INTEGER NOT NULL,"
    " dnssec TEXT NOT NULL, ttl INTEGER, fetched_at INTEGER NOT NULL, source TEXT NOT NULL,"
    " PRIMARY KEY(domain, host));"
    "CREATE INDEX mx_host ON mx(host);"
    "CREATE TABLE mx_address(host TEXT NOT NULL, address TEXT NOT NULL, dnssec TEXT NOT NULL,"
    " ttl INTEGER, fetched_at INTEGER NOT NULL, source TEXT NOT NULL,"
    " PRIMARY KEY(host, address));"
    "CREATE INDEX mx_address_address ON mx_address(address);"
    "CREATE TABLE mta_sts(domain TEXT PRIMARY KEY, txt_id TEXT, txt_raw TEXT, txt_dnssec TEXT,"
    " policy_text TEXT, mode TEXT, max_age INTEGER, mx_patterns TEXT, policy_fetched_at INTEGER,"
    " checked_at INTEGER, result TEXT, error_detail TEXT, source TEXT);"
    "CREATE TABLE tlsa(name TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,"
    " usage INTEGER NOT NULL, selector INTEGER NOT NULL, mtype INTEGER NOT NULL,"
    " data TEXT NOT NULL, dnssec TEXT NOT NULL, ttl INTEGER, fetched_at INTEGER NOT NULL,"
    " source TEXT NOT NULL, PRIMARY KEY(name, usage, selector, mtype, data));"
    "CREATE INDEX tlsa_host ON tlsa(host);"
    "CREATE TABLE fetch_log(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, domain TEXT NOT NULL,"
    " what TEXT NOT NULL, result TEXT NOT NULL, detail TEXT);"
    "CREATE INDEX fetch_log_domain ON fetch_log(domain, ts);"
    "CREATE TABLE server_history(address TEXT NOT NULL, mx_host TEXT NOT NULL DEFAULT '',"
    " starttls_offered INTEGER, tls_versions TEXT, first_seen INTEGER, last_seen INTEGER,"
    " sessions INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(address, mx_host));"
    "CREATE TABLE sessions(id TEXT PRIMARY KEY, ts_start INTEGER, ts_end INTEGER,"
    " client_ip TEXT, server_ip TEXT, server_port INTEGER, domain TEXT, mx_host TEXT,"
    " tls_version TEXT, starttls_offered INTEGER, verified INTEGER, record TEXT);"
    "CREATE TABLE findings(id INTEGER PRIMARY KEY, session_id TEXT, rule TEXT NOT NULL,"
    " severity TEXT NOT NULL, domain TEXT, mx_host TEXT, rfc8460 TEXT, ts INTEGER,"
    " sending_ip TEXT, receiving_ip TEXT, message TEXT);"
    "CREATE INDEX findings_domain ON findings(domain, ts);",
    /* 1 -> 2: a session may be tied to several policy domains */
    "CREATE TABLE session_domains(session_id TEXT NOT NULL, domain TEXT NOT NULL,"
    " mx_host TEXT, PRIMARY KEY(session_id, domain));"
    "CREATE INDEX session_domains_domain ON session_domains(domain);",
    /* 2 -> 3: passive DNS, kept apart from validated data */
    "CREATE TABLE observed_dns(kind TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,"
    " ad INTEGER NOT NULL, resolver TEXT, ttl INTEGER, seen_at INTEGER NOT NULL,"
    " PRIMARY KEY(kind, name, value));",
    /* 3 -> 4: on-demand discovery queue for the refresher */
    "CREATE TABLE discovery(domain TEXT PRIMARY KEY, first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL, sessions INTEGER NOT NULL DEFAULT 1);",
    /* 4 -> 5: every session's verdict */
    "ALTER TABLE sessions ADD COLUMN verdict TEXT;"
    "ALTER TABLE sessions ADD COLUMN verdict_reason TEXT;",
    /* 5 -> 6: a session stored again replaces its findings (re-analysis) */
    "CREATE INDEX findings_session ON findings(session_id);",
    /* 6 -> 7: observed answers expire: seen_at + TTL, at most a day, a TTL
     * with the top bit set read as 0 (db/policy/observed.c) */
    "ALTER TABLE observed_dns ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;"
    "UPDATE observed_dns SET expires_at = seen_at + CASE"
    " WHEN ttl IS NULL OR ttl < 0 OR ttl > 2147483647 THEN 0"
    " WHEN ttl > 86400 THEN 86400 ELSE ttl END;",
    /* 7 -> 8: many sensors (mxwatch ingest): which sensor stored a session
     * or finding, and every sensor's sighting of a session; a finding an
     * ingest stored once is not stored again */
    "ALTER TABLE sessions ADD COLUMN sensor TEXT;"
    "ALTER TABLE sessions ADD COLUMN community_id TEXT;"
    "ALTER TABLE findings ADD COLUMN sensor TEXT;"
    "ALTER TABLE findings ADD COLUMN finding_key TEXT;"
    "UPDATE sessions SET sensor = json_extract(record, '$.sensor'),"
    " community_id = json_extract(record, '$.community_id') WHERE json_valid(record);"
    "UPDATE findings SET sensor = (SELECT s.sensor FROM sessions s"
    " WHERE s.id = findings.session_id);"
    "UPDATE findings SET finding_key = mxw_finding_key(coalesce(sensor, ''), session_id,"
    " rule, ts, domain, mx_host, message);"
    "DELETE FROM findings WHERE rowid NOT IN (SELECT min(rowid) FROM findings"
    " GROUP BY finding_key);"
    "CREATE UNIQUE INDEX findings_key ON findings(finding_key);"
    "CREATE INDEX sessions_community ON sessions(community_id, ts_start);"
    "CREATE TABLE sightings(sensor TEXT NOT NULL, record_id TEXT NOT NULL,"
    " session_id TEXT NOT NULL, ts_start INTEGER, community_id TEXT,"
    " PRIMARY KEY(sensor, record_id));"
    "CREATE INDEX sightings_session ON sightings(session_id);"
    "INSERT OR IGNORE INTO sightings SELECT coalesce(sensor, ''), id, id, ts_start,"
    " community_id FROM sessions;",
    /* 8 -> 9: where domains want their TLS reports, and what was sent */
    "CREATE TABLE tlsrpt(domain TEXT PRIMARY KEY, txt_raw TEXT, rua TEXT, dnssec TEXT,"
    " fetched_at INTEGER, checked_at INTEGER, result TEXT, detail TEXT, source TEXT);"
    "CREATE TABLE tlsrpt_sent(domain TEXT NOT NULL, day INTEGER NOT NULL, rua TEXT NOT NULL,"
    " status TEXT NOT NULL, attempts INTEGER NOT NULL, first_attempt INTEGER,"
    " last_attempt INTEGER,"
    " report_id TEXT, detail TEXT, PRIMARY KEY(domain, day, rua));",
};

enum stmt {
	S_MX_DEL,
	S_MX_INS,
	S_ADDR_DEL,
	S_ADDR_INS,
	S_TLSA_DEL,
	S_TLSA_INS,
	S_STS_GET,
	S_STS_PUT,
	S_LOG,
	S_EACH_MX,
	S_EACH_MX_ALL,
	S_EACH_ADDR,
	S_EACH_ADDR_ALL,
	S_EACH_TLSA,
	S_EACH_TLSA_ALL,
	S_EACH_STS,
	S_EACH_STS_ALL,
	S_EACH_LOG,
	S_DOMAINS,
	S_OBSERVED_PUT,
	S_OBSERVED_EACH,
	S_OBSERVED_EXPIRE,
	S_OBSERVED_TRIM,
	S_DISCOVERY_PUT,
	S_DISCOVERY_EACH,
	S_DISCOVERY_DEL,
	S_HIST_EACH,
	S_HIST_PUT,
	S_SESSION_PUT,
	S_SESSION_ADD,
	S_SESSION_EXISTS,
	S_SESSION_MATCH,
	S_SIGHTING_PUT,
	S_SIGHTING_GET,
	S_FINDINGS_MOVE,
	S_SESSION_DOMAIN_PUT,
	S_FINDING_PUT,
	S_SESSION_FORGET_FINDINGS,
	S_SESSION_FORGET_DOMAINS,
	S_REPORT_SESSIONS,
	S_REPORT_FINDINGS,
	S_REPORT_SENSORS,
	S_TLSRPT_PUT,
	S_TLSRPT_GET,
	S_EACH_TLSRPT_ALL,
	S_SENT_GET,
	S_SENT_PUT,
	S_COUNT_SESSIONS,
	S_COUNT_FINDINGS,
	S_COUNT_HISTORY,
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_MX_DEL] = "DELETE FROM mx WHERE domain = ?1 AND source = ?2",
    [S_MX_INS] = "INSERT OR REPLACE INTO mx(domain, host, preference, dnssec, ttl, fetched_at,"
		 " source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_ADDR_DEL] = "DELETE FROM mx_address WHERE host = ?1 AND source = ?2",
    [S_ADDR_INS] = "INSERT OR REPLACE INTO mx_address(host, address, dnssec, ttl, fetched_at,"
		   " source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_TLSA_DEL] = "DELETE FROM tlsa WHERE name = ?1 AND source = ?2",
    [S_TLSA_INS] = "INSERT OR REPLACE INTO tlsa(name, host, port, usage, selector, mtype, data,"
		   " dnssec, ttl, fetched_at, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
		   " ?9, ?10, ?11)",
    [S_STS_GET] = "SELECT domain, txt_id, txt_raw, txt_dnssec, policy_text, mode, max_age,"
		  " mx_patterns, policy_fetched_at, checked_at, result, error_detail, source"
		  " FROM mta_sts WHERE domain = ?1",
    [S_STS_PUT] = "INSERT OR REPLACE INTO mta_sts(domain, txt_id, txt_raw, txt_dnssec,"
		  " policy_text, mode, max_age, mx_patterns, policy_fetched_at, checked_at,"
		  " result, error_detail, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
		  " ?10, ?11, ?12, ?13)",
    [S_LOG] = "INSERT INTO fetch_log(ts, domain, what, result, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_EACH_MX] = "SELECT domain, host, preference, dnssec, ttl, fetched_at, source FROM mx"
		  " WHERE domain = ?1 ORDER BY preference, host",
    [S_EACH_MX_ALL] = "SELECT domain, host, preference, dnssec, ttl, fetched_at, source FROM mx"
		      " ORDER BY domain, preference, host",
    [S_EACH_ADDR] = "SELECT host, address, dnssec, ttl, fetched_at, source FROM mx_address"
		    " WHERE host = ?1 ORDER BY address",
    [S_EACH_ADDR_ALL] = "SELECT host, address, dnssec, ttl, fetched_at, source FROM mx_address"
			" ORDER BY host, address",
    [S_EACH_TLSA] = "SELECT name, host, port, usage, selector, mtype, data, dnssec, ttl,"
		    " fetched_at, source FROM tlsa WHERE host = ?1"
		    " ORDER BY port, usage, selector, mtype, data",
    [S_EACH_TLSA_ALL] = "SELECT name, host, port, usage, selector, mtype, data, dnssec, ttl,"
			" fetched_at, source FROM tlsa ORDER BY host, port, usage, selector,"
			" mtype, data",
    [S_EACH_STS] = "SELECT domain, txt_id, txt_raw, txt_dnssec, policy_text, mode, max_age,"
		   " mx_patterns, policy_fetched_at, checked_at, result, error_detail, source"
		   " FROM mta_sts WHERE domain = ?1",
    [S_EACH_STS_ALL] = "SELECT domain, txt_id, txt_raw, txt_dnssec, policy_text, mode, max_age,"
		       " mx_patterns, policy_fetched_at, checked_at, result, error_detail,"
		       " source FROM mta_sts ORDER BY domain",
    [S_EACH_LOG] = "SELECT ts, domain, what, result, detail FROM fetch_log WHERE domain = ?1"
		   " ORDER BY id DESC LIMIT ?2",
    [S_DOMAINS] = "SELECT domain FROM mx UNION SELECT domain FROM mta_sts ORDER BY 1",
    [S_OBSERVED_PUT] = "INSERT OR REPLACE INTO observed_dns(kind, name, value, ad, resolver, ttl,"
		       " seen_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_OBSERVED_EXPIRE] = "DELETE FROM observed_dns WHERE expires_at < ?1",
    [S_OBSERVED_TRIM] = "DELETE FROM observed_dns WHERE rowid IN (SELECT rowid FROM observed_dns"
			" ORDER BY seen_at, expires_at"
			" LIMIT max(0, (SELECT count(*) FROM observed_dns) - ?1))",
    [S_DISCOVERY_PUT] = "INSERT INTO discovery(domain, first_seen, last_seen) VALUES (?1, ?2, ?2)"
			" ON CONFLICT(domain) DO UPDATE SET last_seen = max(last_seen, ?2),"
			" sessions = sessions + 1",
    [S_DISCOVERY_EACH] = "SELECT domain FROM discovery ORDER BY first_seen, domain",
    [S_DISCOVERY_DEL] = "DELETE FROM discovery WHERE domain = ?1",
    [S_OBSERVED_EACH] = "SELECT kind, name, value, ad, resolver, ttl, seen_at, expires_at"
			" FROM observed_dns ORDER BY seen_at DESC, expires_at DESC LIMIT ?1",
    [S_HIST_EACH] = "SELECT address, starttls_offered, tls_versions, first_seen, last_seen,"
		    " sessions FROM server_history WHERE mx_host = ''",
    [S_HIST_PUT] = "INSERT OR REPLACE INTO server_history(address, mx_host, starttls_offered,"
		   " tls_versions, first_seen, last_seen, sessions) VALUES (?1, '', ?2, ?3, ?4,"
		   " ?5, ?6)",
#define SESSION_COLUMNS                                                                    \
	"(id, ts_start, ts_end, client_ip, server_ip, server_port, domain, mx_host, tls_version," \
	" starttls_offered, verified, record, verdict, verdict_reason, sensor, community_id)"     \
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    [S_SESSION_PUT] = "INSERT OR REPLACE INTO sessions" SESSION_COLUMNS,
    [S_SESSION_ADD] = "INSERT INTO sessions" SESSION_COLUMNS,
    [S_SESSION_EXISTS] = "SELECT 1 FROM sessions WHERE id = ?1",
    /* the nearest in time; a sensor does not see one session twice */
    [S_SESSION_MATCH] = "SELECT s.id FROM sessions s WHERE s.community_id = ?1"
			" AND s.ts_start BETWEEN ?2 - ?3 AND ?2 + ?3 AND NOT EXISTS"
			" (SELECT 1 FROM sightings g WHERE g.session_id = s.id AND g.sensor = ?4)"
			" ORDER BY abs(s.ts_start - ?2), s.id LIMIT 1",
    [S_SIGHTING_PUT] = "INSERT OR REPLACE INTO sightings(sensor, record_id, session_id,"
		       " ts_start, community_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_SIGHTING_GET] = "SELECT session_id FROM sightings WHERE sensor = ?1 AND record_id = ?2",
    [S_FINDINGS_MOVE] = "UPDATE findings SET session_id = ?3 WHERE sensor = ?1"
			" AND session_id = ?2",
    [S_SESSION_DOMAIN_PUT] = "INSERT OR REPLACE INTO session_domains(session_id, domain,"
			     " mx_host) VALUES (?1, ?2, ?3)",
    [S_SESSION_FORGET_FINDINGS] = "DELETE FROM findings WHERE session_id = ?1",
    [S_SESSION_FORGET_DOMAINS] = "DELETE FROM session_domains WHERE session_id = ?1",
    [S_FINDING_PUT] = "INSERT OR IGNORE INTO findings(session_id, rule, severity, domain,"
		      " mx_host, rfc8460, ts, sending_ip, receiving_ip, message, sensor,"
		      " finding_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
		      " mxw_finding_key(coalesce(?11, ''), ?12, ?2, ?7, ?4, ?5, ?10))",
    [S_REPORT_SESSIONS] = "SELECT s.domain, s.mx_host, s.server_ip, s.tls_version, s.verified,"
			  " s.starttls_offered, s.client_ip, s.id, s.ts_start,"
			  " (SELECT group_concat(d.domain, ' ') FROM session_domains d"
			  "  WHERE d.session_id = s.id), s.verdict FROM sessions s"
			  " WHERE s.ts_start >= ?1 AND s.ts_start < ?2 ORDER BY s.ts_start",
    [S_REPORT_FINDINGS] = "SELECT domain, mx_host, rule, severity, rfc8460, sending_ip,"
			  " receiving_ip, session_id, ts,"
			  " (SELECT s.tls_version FROM sessions s WHERE s.id = session_id)"
			  " FROM findings f WHERE ts >= ?1 AND ts < ?2 AND NOT EXISTS (SELECT 1"
			  " FROM findings g WHERE g.session_id = f.session_id AND g.rule = f.rule"
			  " AND coalesce(g.domain, '') = coalesce(f.domain, '')"
			  " AND g.sensor IS NOT f.sensor AND g.id < f.id)"
			  " ORDER BY session_id, id",
    [S_REPORT_SENSORS] = "SELECT g.sensor, count(*), sum(NOT EXISTS (SELECT 1 FROM sightings o"
			 " WHERE o.session_id = g.session_id AND o.sensor <> g.sensor)),"
			 " (SELECT count(*) FROM findings f WHERE coalesce(f.sensor, '') ="
			 " g.sensor AND f.ts >= ?1 AND f.ts < ?2)"
			 " FROM sightings g JOIN sessions s ON s.id = g.session_id"
			 " WHERE s.ts_start >= ?1 AND s.ts_start < ?2"
			 " GROUP BY g.sensor ORDER BY g.sensor",
#define TLSRPT_COLUMNS                                                                     \
	"domain, txt_raw, rua, dnssec, fetched_at, checked_at, result, detail, source"
    [S_TLSRPT_PUT] = "INSERT OR REPLACE INTO tlsrpt(" TLSRPT_COLUMNS ")"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_TLSRPT_GET] = "SELECT " TLSRPT_COLUMNS " FROM tlsrpt WHERE domain = ?1",
    [S_EACH_TLSRPT_ALL] = "SELECT " TLSRPT_COLUMNS " FROM tlsrpt ORDER BY domain",
    [S_SENT_GET] = "SELECT status, attempts, last_attempt, report_id, detail, first_attempt"
		   " FROM tlsrpt_sent"
		   " WHERE domain = ?1 AND day = ?2 AND rua = ?3",
    [S_SENT_PUT] = "INSERT OR REPLACE INTO tlsrpt_sent(domain, day, rua, status, attempts,"
		   " last_attempt, report_id, detail, first_attempt)"
		   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_COUNT_SESSIONS] = "SELECT count(*) FROM sessions",
    [S_COUNT_FINDINGS] = "SELECT count(*) FROM findings",
    [S_COUNT_HISTORY] = "SELECT count(*) FROM server_history",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

struct db {
	sqlite3 *h;
	sqlite3_stmt *st[S_COUNT];
};

static void bind_text(sqlite3_stmt *s, int i, const char *v);
static int run(struct db *d, enum stmt s);
static int result_row(sqlite3_stmt *s, void *ctx);
static int each(struct db *d, enum stmt st, int (*row)(sqlite3_stmt *s, void *ctx), void *ctx);
struct cb {
	void *fn;
	void *ctx;
};

const char *db_errmsg(struct db *d)
{
	return d && d->h ? sqlite3_errmsg(d->h) : "no database";
}

int db_busy(struct db *d)
{
	int c = d && d->h ? sqlite3_errcode(d->h) & 0xff : 0;
	return c == SQLITE_BUSY || c == SQLITE_LOCKED;
}

void db_set_busy_wait(struct db *d, int ms)
{
	if (d && d->h)
		sqlite3_busy_timeout(d->h, ms);
}

const char *db_default_path(char *buf, size_t len)
{
	const char *env = getenv("MXWATCH_DB");
	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return buf;
	}
	const char *xdg = getenv("XDG_DATA_HOME");
	if (xdg && *xdg) {
		snprintf(buf, len, "%s/mxwatch/mxwatch.db", xdg);
		return buf;
	}
	const char *home = getenv("HOME");
	snprintf(buf, len, "%s/.local/share/mxwatch/mxwatch.db", home && *home ? home : ".");
	return buf;
}

/* mkdir -p of the directory part of path. */
static int make_parent_dirs(const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -1;
	char *slash = strrchr(tmp, '/');
	if (!slash || slash == tmp)
		return 0;
	*slash = 0;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* SQLite says only "unable to open database file" or "attempt to write a
 * readonly database" for a read-only file or folder (a WAL database also
 * needs to create files beside it): say which, and what still works. */
static int check_writable(const char *path, char *err, size_t errlen)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	const char *what = NULL;
	int e = 0;
	if (access(path, F_OK) == 0 && access(path, W_OK) != 0)
		what = "the file", e = errno;
	else if (access(dir, W_OK) != 0)
		what = "its folder", e = errno;
	if (!what)
		return 0;
	snprintf(err, errlen,
		 "%s: %s cannot be written (%s), and this command writes to the database "
		 "(report and policy list/show/export only read; analyze --no-store stores "
		 "nothing)",
		 path, what, strerror(e));
	return -1;
}

static int exec(struct db *d, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(d->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(d->h));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* mxw_finding_key(sensor, session, rule, ts, domain, mx_host, message): the
 * SHA-256 (hex) of the finding's identity, as the statements and the
 * schema's migration compute it; NULL arguments count as empty. */
static void finding_key_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	int ok = c && EVP_DigestInit_ex(c, digest_sha256(), NULL);
	for (int i = 0; ok && i < argc; i++) {
		const unsigned char *v = sqlite3_value_text(argv[i]);
		int len = sqlite3_value_bytes(argv[i]);
		ok = (!v || EVP_DigestUpdate(c, v, (size_t)len)) && EVP_DigestUpdate(c, "", 1);
	}
	ok = ok && EVP_DigestFinal_ex(c, md, &n) && n == 32;
	EVP_MD_CTX_free(c);
	if (!ok) {
		sqlite3_result_error(ctx, "cannot compute a finding key (SHA-256)", -1);
		return;
	}
	char hex[65];
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	sqlite3_result_text(ctx, hex, 64, SQLITE_TRANSIENT);
}

static int register_functions(struct db *d)
{
	return sqlite3_create_function(d->h, "mxw_finding_key", 7,
				       SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, finding_key_fn, NULL,
				       NULL) == SQLITE_OK
		   ? 0
		   : -1;
}

static int migrate(struct db *d, const char *path, char *err, size_t errlen)
{
	if (register_functions(d)) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(d->h));
		return -1;
	}
	char e[256];
	if (exec(d, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)", e,
		 sizeof(e)))
		goto fail;
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(d->h, "SELECT max(version) FROM schema_version", -1, &q, NULL))
		goto fail_db;
	int version = 0;
	if (sqlite3_step(q) == SQLITE_ROW)
		version = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	if (version > DB_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than this mxwatch (%d)", path,
			 version, DB_SCHEMA_VERSION);
		return -1;
	}
	for (; version < DB_SCHEMA_VERSION; version++) {
		char sql[64];
		if (exec(d, "BEGIN IMMEDIATE", e, sizeof(e)) ||
		    exec(d, migrations[version], e, sizeof(e)))
			goto fail_rollback;
		snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)", version + 1);
		if (exec(d, sql, e, sizeof(e)) || exec(d, "COMMIT", e, sizeof(e)))
			goto fail_rollback;
	}
	return 0;
fail_rollback:
	exec(d, "ROLLBACK", err, errlen);
	goto fail;
fail_db:
	snprintf(e, sizeof(e), "%s", sqlite3_errmsg(d->h));
fail:
	snprintf(err, errlen, "%s: cannot set up the schema: %s", path, e);
	return -1;
}

/* The schema version a database is at (0: none yet); -1 on error. */
static int schema_version(struct db *d)
{
	sqlite3_stmt *q;
	int version = -1;
	if (sqlite3_prepare_v2(d->h, "SELECT max(version) FROM schema_version", -1, &q, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW)
			version = sqlite3_column_int(q, 0);
		sqlite3_finalize(q);
	}
	return version;
}

/* A damaged file is refused before anything is appended to it. */
static int integrity_ok(struct db *d, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *q;
	const char *what = NULL;
	if (sqlite3_prepare_v2(d->h, "PRAGMA quick_check", -1, &q, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(d->h));
		return 0;
	}
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		what = (const char *)sqlite3_column_text(q, 0);
	int ok = rc == SQLITE_ROW && what && !strcmp(what, "ok");
	if (!ok)
		snprintf(
		    err, errlen,
		    "%s: the database is damaged (PRAGMA quick_check: %s); it is left as it "
		    "is: keep a copy, then recover it with `sqlite3 %s .recover` or move it aside",
		    path, what ? what : sqlite3_errmsg(d->h), path);
	sqlite3_finalize(q);
	return ok;
}

static int prepare_all(struct db *d, const char *path, char *err, size_t errlen)
{
	if (register_functions(d)) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(d->h));
		return -1;
	}
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(d->h, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: preparing statement %d: %s", path, i,
				 sqlite3_errmsg(d->h));
			return -1;
		}
	}
	return 0;
}

/* Opens read-write; `create`: a missing file (and its folders) is made,
 * else it must exist and already be an mxwatch database. */
static struct db *open_rw(const char *path, int create, char *err, size_t errlen)
{
	struct stat st;
	if (!create && stat(path, &st) != 0) {
		snprintf(err, errlen,
			 "%s: %s (this command works on an existing database and "
			 "creates none)",
			 path, strerror(errno));
		return NULL;
	}
	struct db *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (create && make_parent_dirs(path) != 0) {
		snprintf(err, errlen, "%s: cannot create its directory: %s", path, strerror(errno));
		free(d);
		return NULL;
	}
	if (check_writable(path, err, errlen)) {
		free(d);
		return NULL;
	}
	if (sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0),
			    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, d->h ? sqlite3_errmsg(d->h) : "cannot open");
		db_close(d);
		return NULL;
	}
	sqlite3_busy_timeout(d->h, DB_BUSY_WAIT_MS);
	char e[256];
	if (!integrity_ok(d, path, err, errlen)) {
		db_close(d);
		return NULL;
	}
	if (!create && schema_version(d) < 1) {
		snprintf(err, errlen, "%s: not an mxwatch database (no schema version)", path);
		db_close(d);
		return NULL;
	}
	if (exec(d, "PRAGMA journal_mode=WAL", e, sizeof(e)) ||
	    exec(d, "PRAGMA synchronous=NORMAL", e, sizeof(e)) ||
	    exec(d, "PRAGMA cache_size=-32768", e, sizeof(e)) ||
	    exec(d, "PRAGMA foreign_keys=ON", e, sizeof(e))) {
		snprintf(err, errlen, "%s: %s", path, e);
		db_close(d);
		return NULL;
	}
	if (migrate(d, path, err, errlen) || prepare_all(d, path, err, errlen)) {
		db_close(d);
		return NULL;
	}
	return d;
}

struct db *db_open(const char *path, char *err, size_t errlen)
{
	return open_rw(path, 1, err, errlen);
}

struct db *db_open_existing(const char *path, char *err, size_t errlen)
{
	return open_rw(path, 0, err, errlen);
}

struct db *db_open_readonly(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s (nothing is created by a command that only reads)",
			 path, strerror(errno));
		return NULL;
	}
	struct db *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* A WAL database in a folder this user cannot write still reads when
	 * no writer is active: retry as immutable if the plain read-only open
	 * cannot make its shared-memory file. */
	char uri[4200];
	snprintf(uri, sizeof(uri), "file:%s?mode=ro", path);
	int rc = sqlite3_open_v2(uri, &d->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
	if (rc == SQLITE_OK && schema_version(d) < 0 && access(path, W_OK) != 0) {
		sqlite3_close(d->h);
		d->h = NULL;
		snprintf(uri, sizeof(uri), "file:%s?mode=ro&immutable=1", path);
		rc = sqlite3_open_v2(uri, &d->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
	}
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, d->h ? sqlite3_errmsg(d->h) : "cannot open");
		db_close(d);
		return NULL;
	}
	sqlite3_busy_timeout(d->h, DB_BUSY_WAIT_MS);
	int version = schema_version(d);
	if (version != DB_SCHEMA_VERSION) {
		if (version < 0)
			snprintf(err, errlen, "%s: not an mxwatch database (%s)", path,
				 sqlite3_errmsg(d->h));
		else
			snprintf(
			    err, errlen,
			    "%s: schema version %d, this mxwatch reads %d (a command that writes, "
			    "such as analyze or policy import, upgrades it)",
			    path, version, DB_SCHEMA_VERSION);
		db_close(d);
		return NULL;
	}
	if (!integrity_ok(d, path, err, errlen) || prepare_all(d, path, err, errlen)) {
		db_close(d);
		return NULL;
	}
	return d;
}

void db_close(struct db *d)
{
	if (!d)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(d->st[i]);
	sqlite3_close(d->h);
	free(d);
}

/* Runs a statement that returns no rows; resets it for the next use. */
static int run(struct db *d, enum stmt s)
{
	int rc = sqlite3_step(d->st[s]);
	sqlite3_reset(d->st[s]);
	sqlite3_clear_bindings(d->st[s]);
	return rc == SQLITE_DONE ? 0 : -1;
}

int db_begin(struct db *d)
{
	return run(d, S_BEGIN);
}
int db_commit(struct db *d)
{
	return run(d, S_COMMIT);
}
void db_rollback(struct db *d)
{
	run(d, S_ROLLBACK);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v)
{
	bind_text(s, i, v && *v ? v : NULL);
}

/* Deletes the rows one source gave for a key (domain, host or name). */
static int delete_rows(struct db *d, enum stmt del, const char *key, const char *source)
{
	bind_text(d->st[del], 1, key);
	bind_text(d->st[del], 2, source);
	return run(d, del);
}

int db_mx_replace(struct db *d, const char *domain, const char *source, const struct db_mx *rows,
		  int n)
{
	if (delete_rows(d, S_MX_DEL, domain, source))
		return -1;
	for (int i = 0; i < n; i++) {
		struct db_mx r = rows[i];
		snprintf(r.domain, sizeof(r.domain), "%s", domain);
		snprintf(r.source, sizeof(r.source), "%s", source);
		if (db_mx_put(d, &r))
			return -1;
	}
	return 0;
}

int db_addr_replace(struct db *d, const char *host, const char *source, const struct db_addr *rows,
		    int n)
{
	if (delete_rows(d, S_ADDR_DEL, host, source))
		return -1;
	for (int i = 0; i < n; i++) {
		struct db_addr r = rows[i];
		snprintf(r.host, sizeof(r.host), "%s", host);
		snprintf(r.source, sizeof(r.source), "%s", source);
		if (db_addr_put(d, &r))
			return -1;
	}
	return 0;
}

int db_tlsa_replace(struct db *d, const char *name, const char *source, const struct db_tlsa *rows,
		    int n)
{
	if (delete_rows(d, S_TLSA_DEL, name, source))
		return -1;
	for (int i = 0; i < n; i++) {
		struct db_tlsa *r = malloc(sizeof(*r));
		if (!r)
			return -1;
		*r = rows[i];
		snprintf(r->name, sizeof(r->name), "%s", name);
		snprintf(r->source, sizeof(r->source), "%s", source);
		int rc = db_tlsa_put(d, r);
		free(r);
		if (rc)
			return -1;
	}
	return 0;
}

int db_mx_put(struct db *d, const struct db_mx *r)
{
	sqlite3_stmt *s = d->st[S_MX_INS];
	bind_text(s, 1, r->domain);
	bind_text(s, 2, r->host);
	sqlite3_bind_int(s, 3, r->preference);
	bind_text(s, 4, r->dnssec);
	sqlite3_bind_int64(s, 5, r->ttl);
	sqlite3_bind_int64(s, 6, r->fetched_at);
	bind_text(s, 7, r->source);
	return run(d, S_MX_INS);
}

int db_addr_put(struct db *d, const struct db_addr *r)
{
	sqlite3_stmt *s = d->st[S_ADDR_INS];
	bind_text(s, 1, r->host);
	bind_text(s, 2, r->address);
	bind_text(s, 3, r->dnssec);
	sqlite3_bind_int64(s, 4, r->ttl);
	sqlite3_bind_int64(s, 5, r->fetched_at);
	bind_text(s, 6, r->source);
	return run(d, S_ADDR_INS);
}

int db_tlsa_put(struct db *d, const struct db_tlsa *r)
{
	sqlite3_stmt *s = d->st[S_TLSA_INS];
	bind_text(s, 1, r->name);
	bind_text(s, 2, r->host);
	sqlite3_bind_int(s, 3, r->port);
	sqlite3_bind_int(s, 4, r->usage);
	sqlite3_bind_int(s, 5, r->selector);
	sqlite3_bind_int(s, 6, r->mtype);
	bind_text(s, 7, r->data);
	bind_text(s, 8, r->dnssec);
	sqlite3_bind_int64(s, 9, r->ttl);
	sqlite3_bind_int64(s, 10, r->fetched_at);
	bind_text(s, 11, r->source);
	return run(d, S_TLSA_INS);
}

static void col_copy(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
	const unsigned char *v = sqlite3_column_text(s, i);
	snprintf(dst, cap, "%s", v ? (const char *)v : "");
}

static void sts_from_row(sqlite3_stmt *s, struct db_sts *o)
{
	memset(o, 0, sizeof(*o));
	col_copy(s, 0, o->domain, sizeof(o->domain));
	col_copy(s, 1, o->txt_id, sizeof(o->txt_id));
	col_copy(s, 2, o->txt_raw, sizeof(o->txt_raw));
	col_copy(s, 3, o->txt_dnssec, sizeof(o->txt_dnssec));
	const unsigned char *pt = sqlite3_column_text(s, 4);
	o->policy_text = pt ? strdup((const char *)pt) : NULL;
	col_copy(s, 5, o->mode, sizeof(o->mode));
	o->max_age = sqlite3_column_type(s, 6) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 6);
	col_copy(s, 7, o->mx_patterns, sizeof(o->mx_patterns));
	o->policy_fetched_at = sqlite3_column_int64(s, 8);
	o->checked_at = sqlite3_column_int64(s, 9);
	col_copy(s, 10, o->result, sizeof(o->result));
	col_copy(s, 11, o->error_detail, sizeof(o->error_detail));
	col_copy(s, 12, o->source, sizeof(o->source));
}

int db_sts_get(struct db *d, const char *domain, struct db_sts *out)
{
	sqlite3_stmt *s = d->st[S_STS_GET];
	bind_text(s, 1, domain);
	int rc = sqlite3_step(s);
	int found = rc == SQLITE_ROW;
	if (found)
		sts_from_row(s, out);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return found ? 1 : (rc == SQLITE_DONE ? 0 : -1);
}

int db_sts_put(struct db *d, const struct db_sts *v)
{
	sqlite3_stmt *s = d->st[S_STS_PUT];
	bind_text(s, 1, v->domain);
	bind_text_or_null(s, 2, v->txt_id);
	bind_text_or_null(s, 3, v->txt_raw);
	bind_text_or_null(s, 4, v->txt_dnssec);
	bind_text(s, 5, v->policy_text);
	bind_text_or_null(s, 6, v->mode);
	if (v->max_age >= 0)
		sqlite3_bind_int64(s, 7, v->max_age);
	else
		sqlite3_bind_null(s, 7);
	bind_text_or_null(s, 8, v->mx_patterns);
	if (v->policy_fetched_at)
		sqlite3_bind_int64(s, 9, v->policy_fetched_at);
	else
		sqlite3_bind_null(s, 9);
	sqlite3_bind_int64(s, 10, v->checked_at);
	bind_text_or_null(s, 11, v->result);
	bind_text_or_null(s, 12, v->error_detail);
	bind_text_or_null(s, 13, v->source);
	return run(d, S_STS_PUT);
}

int db_log(struct db *d, int64_t ts, const char *domain, const char *what, const char *result,
	   const char *detail)
{
	sqlite3_stmt *s = d->st[S_LOG];
	sqlite3_bind_int64(s, 1, ts);
	bind_text(s, 2, domain);
	bind_text(s, 3, what);
	bind_text(s, 4, result);
	bind_text_or_null(s, 5, detail);
	return run(d, S_LOG);
}

/* Steps a SELECT, calling `row` per result; -1 on error. */
static int each(struct db *d, enum stmt st, int (*row)(sqlite3_stmt *s, void *ctx), void *ctx)
{
	sqlite3_stmt *s = d->st[st];
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW)
		stop = row(s, ctx);
	int ok = stop || rc == SQLITE_DONE;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return ok ? 0 : -1;
}

static int mx_row(sqlite3_stmt *s, void *ctx)
{
	struct cb *c = ctx;
	struct db_mx r;
	memset(&r, 0, sizeof(r));
	col_copy(s, 0, r.domain, sizeof(r.domain));
	col_copy(s, 1, r.host, sizeof(r.host));
	r.preference = sqlite3_column_int(s, 2);
	col_copy(s, 3, r.dnssec, sizeof(r.dnssec));
	r.ttl = (uint32_t)sqlite3_column_int64(s, 4);
	r.fetched_at = sqlite3_column_int64(s, 5);
	col_copy(s, 6, r.source, sizeof(r.source));
	return ((db_mx_fn)c->fn)(c->ctx, &r);
}

int db_each_mx(struct db *d, const char *domain, db_mx_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	if (domain)
		bind_text(d->st[S_EACH_MX], 1, domain);
	return each(d, domain ? S_EACH_MX : S_EACH_MX_ALL, mx_row, &c);
}

static int addr_row(sqlite3_stmt *s, void *ctx)
{
	struct cb *c = ctx;
	struct db_addr r;
	memset(&r, 0, sizeof(r));
	col_copy(s, 0, r.host, sizeof(r.host));
	col_copy(s, 1, r.address, sizeof(r.address));
	col_copy(s, 2, r.dnssec, sizeof(r.dnssec));
	r.ttl = (uint32_t)sqlite3_column_int64(s, 3);
	r.fetched_at = sqlite3_column_int64(s, 4);
	col_copy(s, 5, r.source, sizeof(r.source));
	return ((db_addr_fn)c->fn)(c->ctx, &r);
}

int db_each_addr(struct db *d, const char *host, db_addr_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	if (host)
		bind_text(d->st[S_EACH_ADDR], 1, host);
	return each(d, host ? S_EACH_ADDR : S_EACH_ADDR_ALL, addr_row, &c);
}

static int tlsa_row(sqlite3_stmt *s, void *ctx)
{
	struct cb *c = ctx;
	struct db_tlsa r;
	memset(&r, 0, sizeof(r));
	col_copy(s, 0, r.name, sizeof(r.name));
	col_copy(s, 1, r.host, sizeof(r.host));
	r.port = sqlite3_column_int(s, 2);
	r.usage = sqlite3_column_int(s, 3);
	r.selector = sqlite3_column_int(s, 4);
	r.mtype = sqlite3_column_int(s, 5);
	col_copy(s, 6, r.data, sizeof(r.data));
	col_copy(s, 7, r.dnssec, sizeof(r.dnssec));
	r.ttl = (uint32_t)sqlite3_column_int64(s, 8);
	r.fetched_at = sqlite3_column_int64(s, 9);
	col_copy(s, 10, r.source, sizeof(r.source));
	return ((db_tlsa_fn)c->fn)(c->ctx, &r);
}

int db_each_tlsa(struct db *d, const char *host, db_tlsa_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	if (host)
		bind_text(d->st[S_EACH_TLSA], 1, host);
	return each(d, host ? S_EACH_TLSA : S_EACH_TLSA_ALL, tlsa_row, &c);
}

static int sts_row(sqlite3_stmt *s, void *ctx)
{
	struct cb *c = ctx;
	struct db_sts *r = malloc(sizeof(*r));
	if (!r)
		return 1;
	sts_from_row(s, r);
	int stop = ((db_sts_fn)c->fn)(c->ctx, r);
	free(r->policy_text);
	free(r);
	return stop;
}

int db_each_sts(struct db *d, const char *domain, db_sts_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	if (domain)
		bind_text(d->st[S_EACH_STS], 1, domain);
	return each(d, domain ? S_EACH_STS : S_EACH_STS_ALL, sts_row, &c);
}

static int log_row(sqlite3_stmt *s, void *ctx)
{
	struct cb *c = ctx;
	return ((db_log_fn)c->fn)(
	    c->ctx, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
	    (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3),
	    (const char *)sqlite3_column_text(s, 4));
}

int db_each_log(struct db *d, const char *domain, int limit, db_log_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	bind_text(d->st[S_EACH_LOG], 1, domain);
	sqlite3_bind_int(d->st[S_EACH_LOG], 2, limit);
	return each(d, S_EACH_LOG, log_row, &c);
}

static int history_row(sqlite3_stmt *s, void *ctx)
{
	struct cb *c = ctx;
	struct db_history r;
	memset(&r, 0, sizeof(r));
	col_copy(s, 0, r.address, sizeof(r.address));
	r.starttls_offered = sqlite3_column_int(s, 1);
	r.tls_versions = sqlite3_column_int(s, 2);
	r.first_seen = sqlite3_column_int64(s, 3);
	r.last_seen = sqlite3_column_int64(s, 4);
	r.sessions = sqlite3_column_int64(s, 5);
	return ((db_history_fn)c->fn)(c->ctx, &r);
}

int db_each_history(struct db *d, db_history_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	return each(d, S_HIST_EACH, history_row, &c);
}

int db_history_put(struct db *d, const struct db_history *r)
{
	sqlite3_stmt *s = d->st[S_HIST_PUT];
	bind_text(s, 1, r->address);
	sqlite3_bind_int(s, 2, r->starttls_offered);
	sqlite3_bind_int(s, 3, r->tls_versions);
	sqlite3_bind_int64(s, 4, r->first_seen);
	sqlite3_bind_int64(s, 5, r->last_seen);
	sqlite3_bind_int64(s, 6, r->sessions);
	return run(d, S_HIST_PUT);
}

static int session_write(struct db *d, enum stmt st, const struct db_session_row *r)
{
	sqlite3_stmt *s = d->st[st];
	bind_text(s, 1, r->id);
	sqlite3_bind_int64(s, 2, r->ts_start);
	sqlite3_bind_int64(s, 3, r->ts_end);
	bind_text(s, 4, r->client_ip);
	bind_text(s, 5, r->server_ip);
	sqlite3_bind_int(s, 6, r->server_port);
	bind_text_or_null(s, 7, r->domain);
	bind_text_or_null(s, 8, r->mx_host);
	bind_text_or_null(s, 9, r->tls_version);
	if (r->starttls_offered >= 0)
		sqlite3_bind_int(s, 10, r->starttls_offered);
	if (r->verified >= 0)
		sqlite3_bind_int(s, 11, r->verified);
	bind_text(s, 12, r->record);
	bind_text(s, 13, r->verdict);
	bind_text(s, 14, r->verdict_reason);
	bind_text_or_null(s, 15, r->sensor);
	bind_text_or_null(s, 16, r->community_id);
	return run(d, st);
}

int db_session_put(struct db *d, const struct db_session_row *r)
{ /* Session ids are stable across runs: the same capture analysed again
	 * replaces the session, its domains and its findings, counts nothing
	 * twice. */
	bind_text(d->st[S_SESSION_FORGET_FINDINGS], 1, r->id);
	bind_text(d->st[S_SESSION_FORGET_DOMAINS], 1, r->id);
	if (run(d, S_SESSION_FORGET_FINDINGS) || run(d, S_SESSION_FORGET_DOMAINS))
		return -1;
	if (session_write(d, S_SESSION_PUT, r))
		return -1;
	return db_sighting_put(d, r->sensor ? r->sensor : "", r->id, r->id, r->ts_start,
			       r->community_id);
}

int db_session_add(struct db *d, const struct db_session_row *r)
{
	return session_write(d, S_SESSION_ADD, r);
}

/* Steps a one-column query: 1 and the text copied to out, 0 no row, -1
 * error. */
static int lookup_text(struct db *d, enum stmt st, char *out, size_t cap)
{
	sqlite3_stmt *s = d->st[st];
	int rc = sqlite3_step(s), found = -1;
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(s, 0);
		if (out)
			snprintf(out, cap, "%s", v ? (const char *)v : "");
		found = 1;
	} else if (rc == SQLITE_DONE) {
		found = 0;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return found;
}

int db_session_exists(struct db *d, const char *id)
{
	bind_text(d->st[S_SESSION_EXISTS], 1, id);
	return lookup_text(d, S_SESSION_EXISTS, NULL, 0);
}

int db_sighting_get(struct db *d, const char *sensor, const char *record_id, char *session_id,
		    size_t cap)
{
	bind_text(d->st[S_SIGHTING_GET], 1, sensor);
	bind_text(d->st[S_SIGHTING_GET], 2, record_id);
	return lookup_text(d, S_SIGHTING_GET, session_id, cap);
}

int db_session_match(struct db *d, const char *community_id, int64_t ts_start, int64_t window,
		     const char *sensor, char *session_id, size_t cap)
{
	sqlite3_stmt *s = d->st[S_SESSION_MATCH];
	bind_text(s, 1, community_id);
	sqlite3_bind_int64(s, 2, ts_start);
	sqlite3_bind_int64(s, 3, window);
	bind_text(s, 4, sensor);
	return lookup_text(d, S_SESSION_MATCH, session_id, cap);
}

int db_sighting_put(struct db *d, const char *sensor, const char *record_id,
		    const char *session_id, int64_t ts_start, const char *community_id)
{
	sqlite3_stmt *s = d->st[S_SIGHTING_PUT];
	bind_text(s, 1, sensor);
	bind_text(s, 2, record_id);
	bind_text(s, 3, session_id);
	sqlite3_bind_int64(s, 4, ts_start);
	bind_text_or_null(s, 5, community_id);
	return run(d, S_SIGHTING_PUT);
}

int db_findings_move(struct db *d, const char *sensor, const char *record_id,
		     const char *session_id)
{
	sqlite3_stmt *s = d->st[S_FINDINGS_MOVE];
	bind_text(s, 1, sensor);
	bind_text(s, 2, record_id);
	bind_text(s, 3, session_id);
	return run(d, S_FINDINGS_MOVE);
}

int db_observed_put(struct db *d, const char *kind, const char *name, const char *value, int ad,
		    const char *resolver, uint32_t ttl, int64_t seen_at, int64_t expires_at)
{
	sqlite3_stmt *s = d->st[S_OBSERVED_PUT];
	bind_text(s, 1, kind);
	bind_text(s, 2, name);
	bind_text(s, 3, value);
	sqlite3_bind_int(s, 4, ad);
	bind_text_or_null(s, 5, resolver);
	sqlite3_bind_int64(s, 6, ttl);
	sqlite3_bind_int64(s, 7, seen_at);
	sqlite3_bind_int64(s, 8, expires_at);
	return run(d, S_OBSERVED_PUT);
}

int db_observed_trim(struct db *d, int64_t now, int keep)
{
	sqlite3_bind_int64(d->st[S_OBSERVED_EXPIRE], 1, now);
	if (run(d, S_OBSERVED_EXPIRE))
		return -1;
	sqlite3_bind_int(d->st[S_OBSERVED_TRIM], 1, keep);
	return run(d, S_OBSERVED_TRIM);
}

int db_discovery_put(struct db *d, const char *domain, int64_t ts)
{
	sqlite3_stmt *s = d->st[S_DISCOVERY_PUT];
	bind_text(s, 1, domain);
	sqlite3_bind_int64(s, 2, ts);
	return run(d, S_DISCOVERY_PUT);
}

int db_discovery_each(struct db *d, db_result_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	return each(d, S_DISCOVERY_EACH, result_row, &c);
}

int db_discovery_done(struct db *d, const char *domain)
{
	bind_text(d->st[S_DISCOVERY_DEL], 1, domain);
	return run(d, S_DISCOVERY_DEL);
}

int db_each_observed(struct db *d, int limit, db_result_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	sqlite3_bind_int(d->st[S_OBSERVED_EACH], 1, limit);
	return each(d, S_OBSERVED_EACH, result_row, &c);
}

int db_session_domain_put(struct db *d, const char *session_id, const char *domain,
			  const char *mx_host)
{
	sqlite3_stmt *s = d->st[S_SESSION_DOMAIN_PUT];
	bind_text(s, 1, session_id);
	bind_text(s, 2, domain);
	bind_text_or_null(s, 3, mx_host);
	return run(d, S_SESSION_DOMAIN_PUT);
}

int db_finding_put(struct db *d, const struct db_finding_row *r)
{
	sqlite3_stmt *s = d->st[S_FINDING_PUT];
	bind_text(s, 1, r->session_id);
	bind_text(s, 2, r->rule);
	bind_text(s, 3, r->severity);
	bind_text_or_null(s, 4, r->domain);
	bind_text_or_null(s, 5, r->mx_host);
	bind_text_or_null(s, 6, r->rfc8460);
	sqlite3_bind_int64(s, 7, r->ts);
	bind_text_or_null(s, 8, r->sending_ip);
	bind_text_or_null(s, 9, r->receiving_ip);
	bind_text_or_null(s, 10, r->message);
	bind_text_or_null(s, 11, r->sensor);
	bind_text(s, 12, r->record_session ? r->record_session : r->session_id);
	if (run(d, S_FINDING_PUT))
		return -1;
	return sqlite3_changes(d->h) > 0;
}

static int result_row(sqlite3_stmt *s, void *ctx)
{
	struct cb *c = ctx;
	const char *cols[16];
	int n = sqlite3_column_count(s);
	if (n > 16)
		n = 16;
	for (int i = 0; i < n; i++)
		cols[i] = (const char *)sqlite3_column_text(s, i);
	return ((db_result_fn)c->fn)(c->ctx, cols, n);
}

int db_report_sessions(struct db *d, int64_t from, int64_t to, db_result_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	sqlite3_bind_int64(d->st[S_REPORT_SESSIONS], 1, from);
	sqlite3_bind_int64(d->st[S_REPORT_SESSIONS], 2, to);
	return each(d, S_REPORT_SESSIONS, result_row, &c);
}

int db_report_findings(struct db *d, int64_t from, int64_t to, db_result_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	sqlite3_bind_int64(d->st[S_REPORT_FINDINGS], 1, from);
	sqlite3_bind_int64(d->st[S_REPORT_FINDINGS], 2, to);
	return each(d, S_REPORT_FINDINGS, result_row, &c);
}

int db_report_sensors(struct db *d, int64_t from, int64_t to, db_result_fn fn, void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	sqlite3_bind_int64(d->st[S_REPORT_SENSORS], 1, from);
	sqlite3_bind_int64(d->st[S_REPORT_SENSORS], 2, to);
	return each(d, S_REPORT_SENSORS, result_row, &c);
}

static int domain_row(sqlite3_stmt *s, void *ctx)
{
	struct cb *c = ctx;
	const unsigned char *v = sqlite3_column_text(s, 0);
	return ((int (*)(void *, const char *))c->fn)(c->ctx, v ? (const char *)v : "");
}

int db_each_domain(struct db *d, int (*fn)(void *ctx, const char *domain), void *ctx)
{
	struct cb c = {(void *)fn, ctx};
	return each(d, S_DOMAINS, domain_row, &c);
}

/* One count(*); -1 on error. */
static int64_t count_rows(struct db *d, enum stmt st)
{
	sqlite3_stmt *s = d->st[st];
	int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	sqlite3_reset(s);
	return n;
}

/* Retention. sessions has no index on ts_start: the old sessions are
 * found in one scan and kept in a temporary table (of this connection, so
 * these statements are prepared here, not at open), then their findings and
 * domains go by index, and the sessions by rowid. */
enum {
	P_CREATE,
	P_CLEAR,
	P_COLLECT,
	P_FINDINGS,
	P_DOMAINS,
	P_SIGHTINGS,
	P_SESSIONS,
	P_HISTORY,
	P_DROP,
	P_N
};
static const char *const prune_sql[P_N] = {
    [P_CREATE] = "CREATE TEMP TABLE IF NOT EXISTS prune_old(rid INTEGER PRIMARY KEY,"
		 " id TEXT NOT NULL)",
    [P_CLEAR] = "DELETE FROM temp.prune_old",
    [P_COLLECT] = "INSERT INTO temp.prune_old SELECT rowid, id FROM sessions WHERE ts_start < ?1",
    /* with the old findings whose session never arrived (ingest) */
    [P_FINDINGS] = "DELETE FROM findings WHERE session_id IN (SELECT id FROM temp.prune_old)"
		   " OR (ts < ?1 AND NOT EXISTS (SELECT 1 FROM sessions s"
		   " WHERE s.id = findings.session_id))",
    [P_SIGHTINGS] = "DELETE FROM sightings WHERE session_id IN"
		    " (SELECT id FROM temp.prune_old)",
    [P_DOMAINS] = "DELETE FROM session_domains WHERE session_id IN"
		  " (SELECT id FROM temp.prune_old)",
    [P_SESSIONS] = "DELETE FROM sessions WHERE rowid IN (SELECT rid FROM temp.prune_old)",
    [P_HISTORY] = "DELETE FROM server_history WHERE last_seen < ?1",
    [P_DROP] = "DROP TABLE temp.prune_old",
};

int db_prune(struct db *d, int64_t before, int dry_run, struct db_prune_counts *out, char *err,
	     size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (db_begin(d)) {
		int busy = db_busy(d);
		snprintf(err, errlen, "%s", db_errmsg(d));
		return busy ? 1 : -1;
	}
	for (int i = 0; i < P_N; i++) {
		sqlite3_stmt *q;
		if (sqlite3_prepare_v2(d->h, prune_sql[i], -1, &q, NULL) != SQLITE_OK)
			goto fail;
		if (sqlite3_bind_parameter_count(q))
			sqlite3_bind_int64(q, 1, before);
		int rc = sqlite3_step(q);
		sqlite3_finalize(q);
		if (rc != SQLITE_DONE)
			goto fail;
		int64_t n = sqlite3_changes64(d->h);
		switch (i) {
		case P_FINDINGS: out->findings = n; break;
		case P_DOMAINS: out->session_domains = n; break;
		case P_SESSIONS: out->sessions = n; break;
		case P_HISTORY: out->history = n; break;
		}
	}
	if ((out->sessions_kept = count_rows(d, S_COUNT_SESSIONS)) < 0 ||
	    (out->findings_kept = count_rows(d, S_COUNT_FINDINGS)) < 0 ||
	    (out->history_kept = count_rows(d, S_COUNT_HISTORY)) < 0)
		goto fail;
	if (dry_run) {
		db_rollback(d);
		return 0;
	}
	if (db_commit(d))
		goto fail;
	return 0;
fail:;
	int busy = db_busy(d);
	snprintf(err, errlen, "%s", db_errmsg(d));
	db_rollback(d);
	return busy ? 1 : -1;
}

static int pragma_int(struct db *d, const char *sql, int64_t *out)
{
	sqlite3_stmt *q;
	int rc = -1;
	if (sqlite3_prepare_v2(d->h, sql, -1, &q, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(q) == SQLITE_ROW) {
		*out = sqlite3_column_int64(q, 0);
		rc = 0;
	}
	sqlite3_finalize(q);
	return rc;
}

int db_space(struct db *d, int64_t *pages, int64_t *free_pages, int64_t *page_size)
{
	return pragma_int(d, "PRAGMA page_count", pages) ||
		       pragma_int(d, "PRAGMA freelist_count", free_pages) ||
		       pragma_int(d, "PRAGMA page_size", page_size)
		   ? -1
		   : 0;
}

int db_vacuum(struct db *d, char *err, size_t errlen)
{
	return exec(d, "VACUUM", err, errlen);
}

struct db_json_query {
	sqlite3_stmt *fields, *array;
	int n;
};

struct db_json_query *db_json_prepare(struct db *d, const char *const *paths, int n)
{
	struct db_json_query *q = calloc(1, sizeof(*q));
	size_t cap = 64;
	for (int i = 0; i < n; i++)
		cap += 2 * strlen(paths[i]) + 160;
	char *sql = q ? malloc(cap) : NULL;
	if (!sql) {
		free(q);
		return NULL;
	}
	/* json_type and json_extract raise an error on text that is not
	 * JSON: they run only when json_valid said it is. */
	size_t off = (size_t)snprintf(sql, cap, "SELECT json_valid(?1)");
	for (int i = 0; i < n; i++) {
		if (strchr(paths[i], '\'')) {
			free(sql);
			free(q);
			return NULL;
		}
		off += (size_t)snprintf(sql + off, cap - off,
					", CASE WHEN json_valid(?1) THEN json_type(?1, '%s') END"
					", CASE WHEN json_valid(?1) THEN json_extract(?1, '%s') END",
					paths[i], paths[i]);
	}
	q->n = n;
	int rc = sqlite3_prepare_v2(d->h, sql, -1, &q->fields, NULL);
	free(sql);
	if (rc != SQLITE_OK ||
	    sqlite3_prepare_v2(d->h,
			       "SELECT type, value FROM json_each(?1, ?2)"
			       " WHERE json_type(?1, ?2) = 'array' ORDER BY key",
			       -1, &q->array, NULL) != SQLITE_OK) {
		db_json_free(q);
		return NULL;
	}
	return q;
}

static enum db_json_type json_type_of(const unsigned char *t)
{
	static const char *const names[] = {
	    [DB_JSON_NULL] = "null",       [DB_JSON_TRUE] = "true",   [DB_JSON_FALSE] = "false",
	    [DB_JSON_INTEGER] = "integer", [DB_JSON_REAL] = "real",   [DB_JSON_TEXT] = "text",
	    [DB_JSON_ARRAY] = "array",     [DB_JSON_OBJECT] = "object",
	};
	if (t)
		for (int i = DB_JSON_NULL; i <= DB_JSON_OBJECT; i++)
			if (strcmp((const char *)t, names[i]) == 0)
				return (enum db_json_type)i;
	return DB_JSON_ABSENT;
}

static void json_value_of(sqlite3_stmt *s, int type_col, struct db_json_value *v)
{
	v->type = json_type_of(sqlite3_column_text(s, type_col));
	v->text = (const char *)sqlite3_column_text(s, type_col + 1);
	v->len = (size_t)sqlite3_column_bytes(s, type_col + 1);
	v->integer = sqlite3_column_int64(s, type_col + 1);
	if (!v->text) {
		v->text = "";
		v->len = 0;
	}
}

int db_json_extract(struct db_json_query *q, const char *json, size_t len,
		    struct db_json_value *out)
{
	sqlite3_stmt *s = q->fields;
	sqlite3_reset(s);
	if (len > INT_MAX || sqlite3_bind_text(s, 1, json, (int)len, SQLITE_STATIC) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) != SQLITE_ROW)
		return -1;
	if (!sqlite3_column_int(s, 0))
		return 0;
	for (int i = 0; i < q->n; i++)
		json_value_of(s, 1 + 2 * i, &out[i]);
	return 1;
}

int db_json_each(struct db_json_query *q, const char *json, size_t len, const char *path,
		 int (*fn)(void *ctx, const struct db_json_value *v), void *ctx)
{
	sqlite3_stmt *s = q->array;
	sqlite3_reset(s);
	if (len > INT_MAX || sqlite3_bind_text(s, 1, json, (int)len, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC) != SQLITE_OK)
		return -1;
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct db_json_value v;
		json_value_of(s, 0, &v);
		n++;
		if (fn(ctx, &v))
			return -1;
	}
	return rc == SQLITE_DONE ? n : -1;
}

void db_json_free(struct db_json_query *q)
{
	if (!q)
		return;
	sqlite3_finalize(q->fields);
	sqlite3_finalize(q->array);
	free(q);
}

int db_tlsrpt_put(struct db *d, const struct db_tlsrpt *t)
{
	sqlite3_stmt *s = d->st[S_TLSRPT_PUT];
	bind_text(s, 1, t->domain);
	bind_text_or_null(s, 2, t->txt_raw);
	bind_text_or_null(s, 3, t->rua);
	bind_text_or_null(s, 4, t->dnssec);
	sqlite3_bind_int64(s, 5, t->fetched_at);
	sqlite3_bind_int64(s, 6, t->checked_at);
	bind_text_or_null(s, 7, t->result);
	bind_text_or_null(s, 8, t->detail);
	bind_text_or_null(s, 9, t->source);
	return run(d, S_TLSRPT_PUT);
}

static void tlsrpt_from_row(sqlite3_stmt *s, struct db_tlsrpt *t)
{
	memset(t, 0, sizeof(*t));
	col_copy(s, 0, t->domain, sizeof(t->domain));
	col_copy(s, 1, t->txt_raw, sizeof(t->txt_raw));
	col_copy(s, 2, t->rua, sizeof(t->rua));
	col_copy(s, 3, t->dnssec, sizeof(t->dnssec));
	t->fetched_at = sqlite3_column_int64(s, 4);
	t->checked_at = sqlite3_column_int64(s, 5);
	col_copy(s, 6, t->result, sizeof(t->result));
	col_copy(s, 7, t->detail, sizeof(t->detail));
	col_copy(s, 8, t->source, sizeof(t->source));
}

int db_tlsrpt_get(struct db *d, const char *domain, struct db_tlsrpt *out)
{
	sqlite3_stmt *s = d->st[S_TLSRPT_GET];
	bind_text(s, 1, domain);
	int rc = sqlite3_step(s);
	int found = rc == SQLITE_ROW;
	if (found)
		tlsrpt_from_row(s, out);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return found ? 1 : (rc == SQLITE_DONE ? 0 : -1);
}

static int tlsrpt_row(sqlite3_stmt *s, void *ctx)
{
	struct cb *c = ctx;
	struct db_tlsrpt t;
	tlsrpt_from_row(s, &t);
	return ((db_tlsrpt_fn)c->fn)(c->ctx, &t);
}

int db_each_tlsrpt(struct db *d, const char *domain, db_tlsrpt_fn fn, void *ctx)
{
	if (domain) {
		struct db_tlsrpt t;
		int rc = db_tlsrpt_get(d, domain, &t);
		return rc < 0 ? -1 : rc ? (fn(ctx, &t), 0) : 0;
	}
	struct cb c = {(void *)fn, ctx};
	return each(d, S_EACH_TLSRPT_ALL, tlsrpt_row, &c);
}

int db_sent_get(struct db *d, const char *domain, int64_t day, const char *rua,
		struct db_sent *out)
{
	sqlite3_stmt *s = d->st[S_SENT_GET];
	bind_text(s, 1, domain);
	sqlite3_bind_int64(s, 2, day);
	bind_text(s, 3, rua);
	int rc = sqlite3_step(s);
	int found = rc == SQLITE_ROW;
	if (found) {
		memset(out, 0, sizeof(*out));
		col_copy(s, 0, out->status, sizeof(out->status));
		out->attempts = sqlite3_column_int(s, 1);
		out->last_attempt = sqlite3_column_int64(s, 2);
		col_copy(s, 3, out->report_id, sizeof(out->report_id));
		col_copy(s, 4, out->detail, sizeof(out->detail));
		out->first_attempt = sqlite3_column_int64(s, 5);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return found ? 1 : (rc == SQLITE_DONE ? 0 : -1);
}

int db_sent_put(struct db *d, const char *domain, int64_t day, const char *rua,
		const struct db_sent *row)
{
	sqlite3_stmt *s = d->st[S_SENT_PUT];
	bind_text(s, 1, domain);
	sqlite3_bind_int64(s, 2, day);
	bind_text(s, 3, rua);
	bind_text(s, 4, row->status);
	sqlite3_bind_int(s, 5, row->attempts);
	sqlite3_bind_int64(s, 6, row->last_attempt);
	bind_text_or_null(s, 7, row->report_id);
	bind_text_or_null(s, 8, row->detail);
	sqlite3_bind_int64(s, 9, row->first_attempt);
	return run(d, S_SENT_PUT);
}
