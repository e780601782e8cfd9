/*
 * ingest.c - sensors' JSON records into the database. Every field that is
 * stored or that decides where a record goes is checked for its JSON type
 * and its form before anything is written; the line as a whole must be
 * UTF-8 JSON without NUL escapes. Nothing is written before a record passed
 * every check; a database error while writing one ends the run, and the
 * caller rolls its transaction back, so no record is ever half-stored.
 */
#include "ingest/ingest.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules/rules.h"
#include "util/text.h"

/* Every path either record type uses: one query extracts them all. */
enum path {
	P_TYPE,
	P_SENSOR,
	P_ID,
	P_COMMUNITY_ID,
	P_TS_START,
	P_TS_END,
	P_CLIENT,
	P_CLIENT_IP,
	P_CLIENT_PORT,
	P_SERVER,
	P_SERVER_IP,
	P_SERVER_PORT,
	P_VERDICT,
	P_VERDICT_REASON,
	P_PROTOCOL,
	P_SMTP,
	P_STARTTLS,
	P_STARTTLS_OFFERED,
	P_TLS,
	P_TLS_VERSION,
	P_POLICY,
	P_POLICY_DOMAIN,
	P_POLICY_MX_HOST,
	P_POLICY_DOMAINS,
	P_POLICY_VERIFIED,
	/* findings */
	P_SEVERITY,
	P_ALERT,
	P_SESSION,
	P_TS,
	P_DOMAIN,
	P_MX_HOST,
	P_RFC8460,
	P_F_CLIENT_IP,
	P_F_CLIENT_PORT,
	P_F_SERVER_IP,
	P_F_SERVER_PORT,
	P_MESSAGE,
	P_COUNT
};

static const char *const paths[P_COUNT] = {
    [P_TYPE] = "$.type",
    [P_SENSOR] = "$.sensor",
    [P_ID] = "$.id",
    [P_COMMUNITY_ID] = "$.community_id",
    [P_TS_START] = "$.ts_start",
    [P_TS_END] = "$.ts_end",
    [P_CLIENT] = "$.client",
    [P_CLIENT_IP] = "$.client.ip",
    [P_CLIENT_PORT] = "$.client.port",
    [P_SERVER] = "$.server",
    [P_SERVER_IP] = "$.server.ip",
    [P_SERVER_PORT] = "$.server.port",
    [P_VERDICT] = "$.verdict",
    [P_VERDICT_REASON] = "$.verdict_reason",
    [P_PROTOCOL] = "$.protocol",
    [P_SMTP] = "$.smtp",
    [P_STARTTLS] = "$.smtp.starttls",
    [P_STARTTLS_OFFERED] = "$.smtp.starttls.offered",
    [P_TLS] = "$.tls",
    [P_TLS_VERSION] = "$.tls.version",
    [P_POLICY] = "$.policy",
    [P_POLICY_DOMAIN] = "$.policy.domain",
    [P_POLICY_MX_HOST] = "$.policy.mx_host",
    [P_POLICY_DOMAINS] = "$.policy.domains",
    [P_POLICY_VERIFIED] = "$.policy.verified",
    [P_SEVERITY] = "$.severity",
    [P_ALERT] = "$.alert",
    [P_SESSION] = "$.session",
    [P_TS] = "$.ts",
    [P_DOMAIN] = "$.domain",
    [P_MX_HOST] = "$.mx_host",
    [P_RFC8460] = "$.rfc8460",
    [P_F_CLIENT_IP] = "$.client_ip",
    [P_F_CLIENT_PORT] = "$.client_port",
    [P_F_SERVER_IP] = "$.server_ip",
    [P_F_SERVER_PORT] = "$.server_port",
    [P_MESSAGE] = "$.message",
};

enum kind {
	K_TOKEN,    /* a name of ours: [A-Za-z0-9._:-], 1-64 */
	K_SENSOR,   /* --sensor */
	K_ID,       /* a session id: [A-Za-z0-9_-], 1-64 */
	K_CID,      /* Community ID: "1:" and base64 */
	K_TIME,     /* RFC 3339, UTC */
	K_IP,       /* IPv4 or IPv6 address */
	K_PORT,     /* 0-65535 */
	K_VERDICT,  /* one of the verdicts */
	K_RULE,     /* one of the finding ids */
	K_SEVERITY, /* one of the severities */
	K_HOST,     /* a domain or host name: no spaces or controls, 1-255 bytes */
	K_TEXT,     /* a message: no controls, up to 64 KiB */
	K_BOOL,
	K_OBJECT,
	K_ARRAY
};

#define REQUIRED 1u /* absent: rejected */
#define NULLABLE 2u /* null accepted */

struct check {
	enum path path;
	enum kind kind;
	unsigned flags;
};

static const struct check session_checks[] = {
    {P_SENSOR, K_SENSOR, REQUIRED},
    {P_ID, K_ID, REQUIRED},
    {P_COMMUNITY_ID, K_CID, REQUIRED},
    {P_TS_START, K_TIME, REQUIRED},
    {P_TS_END, K_TIME, REQUIRED},
    {P_CLIENT, K_OBJECT, REQUIRED},
    {P_CLIENT_IP, K_IP, REQUIRED},
    {P_CLIENT_PORT, K_PORT, REQUIRED},
    {P_SERVER, K_OBJECT, REQUIRED},
    {P_SERVER_IP, K_IP, REQUIRED},
    {P_SERVER_PORT, K_PORT, REQUIRED},
    {P_VERDICT, K_VERDICT, 0},
    {P_VERDICT_REASON, K_TEXT, NULLABLE},
    {P_PROTOCOL, K_TOKEN, REQUIRED},
    {P_SMTP, K_OBJECT, REQUIRED | NULLABLE},
    {P_STARTTLS, K_OBJECT, 0},
    {P_STARTTLS_OFFERED, K_BOOL, NULLABLE},
    {P_TLS, K_OBJECT, REQUIRED | NULLABLE},
    {P_TLS_VERSION, K_TOKEN, NULLABLE},
    {P_POLICY, K_OBJECT, REQUIRED | NULLABLE},
    {P_POLICY_DOMAIN, K_HOST, NULLABLE},
    {P_POLICY_MX_HOST, K_HOST, NULLABLE},
    {P_POLICY_DOMAINS, K_ARRAY, 0},
    {P_POLICY_VERIFIED, K_BOOL, NULLABLE},
};

static const struct check finding_checks[] = {
    {P_SENSOR, K_SENSOR, REQUIRED},
    {P_ID, K_RULE, REQUIRED},
    {P_SEVERITY, K_SEVERITY, REQUIRED},
    {P_ALERT, K_BOOL, REQUIRED},
    {P_SESSION, K_ID, REQUIRED},
    {P_TS, K_TIME, REQUIRED},
    {P_DOMAIN, K_HOST, NULLABLE},
    {P_MX_HOST, K_HOST, NULLABLE},
    {P_RFC8460, K_TOKEN, REQUIRED | NULLABLE},
    {P_F_CLIENT_IP, K_IP, REQUIRED},
    {P_F_CLIENT_PORT, K_PORT, REQUIRED},
    {P_F_SERVER_IP, K_IP, REQUIRED},
    {P_F_SERVER_PORT, K_PORT, REQUIRED},
    {P_COMMUNITY_ID, K_CID, REQUIRED},
    {P_MESSAGE, K_TEXT, REQUIRED},
};

#define MAX_DOMAINS 256 /* policy domains of one session */
#define MAX_TEXT    65536

struct ingest {
	struct db *db;
	struct db_json_query *q;
	int64_t window;
	struct db_json_value v[P_COUNT];
	int64_t secs[P_COUNT]; /* K_TIME fields, once checked */
	char domains[MAX_DOMAINS][256];
};

struct ingest *ingest_new(struct db *d, int64_t match_window_s)
{
	struct ingest *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->db = d;
	g->window = match_window_s;
	if (!(g->q = db_json_prepare(d, paths, P_COUNT))) {
		free(g);
		return NULL;
	}
	return g;
}

void ingest_free(struct ingest *g)
{
	if (!g)
		return;
	db_json_free(g->q);
	free(g);
}

static enum ingest_result reject(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum ingest_result reject(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return INGEST_REJECTED;
}

/* ---- forms */

static int all_of(const char *s, size_t n, size_t min, size_t max, const char *extra)
{
	if (n < min || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c && strchr(extra, c))))
			return 0;
	}
	return 1;
}

/* No C0 control, DEL or NUL (a NUL would cut the stored text short). */
static int no_controls(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "YYYY-MM-DDTHH:MM:SS[.fraction]Z", as the sensors write it. */
static int parse_time(const char *s, size_t n, int64_t *secs)
{
	int y, mo, d, h, mi, se;
	if (n < 20 || n > 30 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[n - 1] != 'Z' || digits(s, 4, &y) || digits(s + 5, 2, &mo) ||
	    digits(s + 8, 2, &d) || digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) ||
	    digits(s + 17, 2, &se))
		return -1;
	if (n > 20) {
		int frac;
		if (s[19] != '.' || n - 21 > 9 || n == 21 || digits(s + 20, (int)(n - 21), &frac))
			return -1;
	}
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
	    se > 60)
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			.tm_hour = h, .tm_min = mi, .tm_sec = se};
	*secs = (int64_t)timegm(&tm);
	return 0;
}

static int valid_ip(const char *s, size_t n)
{
	char buf[64];
	unsigned char addr[16];
	if (n == 0 || n >= sizeof(buf) || !no_controls(s, n))
		return 0;
	memcpy(buf, s, n);
	buf[n] = 0;
	return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

/* A name from the text of a record field, for the name tables. */
static int lookup(const char *s, size_t n, int (*from_name)(const char *))
{
	char buf[64];
	if (n == 0 || n >= sizeof(buf) || memchr(s, 0, n))
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	return from_name(buf);
}

static const char *type_name(enum db_json_type t)
{
	static const char *const names[] = {"absent", "null",   "true",  "false", "an integer",
					    "a real", "a string", "an array", "an object"};
	return names[t];
}

/* NULL when the value has the kind's form, else what is wrong with it. */
static const char *form_error(enum kind k, const struct db_json_value *v)
{
	const char *s = v->text;
	size_t n = v->len;
	switch (k) {
	case K_TOKEN:
		return all_of(s, n, 1, 64, "._:-") ? NULL
						   : "is not a name (1-64 of A-Z a-z 0-9 . _ : -)";
	case K_SENSOR:
		return all_of(s, n, 1, 63, "._-") /* sensor_name_valid's rule, on a length */
			   ? NULL
			   : "is not a sensor name (1-63 of A-Z a-z 0-9 . _ -)";
	case K_ID:
		return all_of(s, n, 1, 64, "_-") ? NULL : "is not a session id";
	case K_CID:
		return all_of(s, n, 3, 64, "+/=:") && s[0] == '1' && s[1] == ':'
			   ? NULL
			   : "is not a Community ID (version 1)";
	case K_IP: return valid_ip(s, n) ? NULL : "is not an IPv4 or IPv6 address";
	case K_PORT:
		return v->integer >= 0 && v->integer <= 65535 ? NULL : "is not a port (0-65535)";
	case K_VERDICT: return lookup(s, n, verdict_from_name) >= 0 ? NULL : "is not a verdict";
	case K_RULE: return lookup(s, n, finding_from_name) >= 0 ? NULL : "is not a finding id";
	case K_SEVERITY:
		return lookup(s, n, severity_from_name) >= 0 ? NULL : "is not a severity";
	case K_HOST:
		return n >= 1 && n <= 255 && text_is_clean(s, n) && !memchr(s, ' ', n)
			   ? NULL
			   : "is not a host name (1-255 bytes of UTF-8, no spaces, controls or "
			     "display controls)";
	case K_TEXT:
		return n > MAX_TEXT ? "is longer than 65536 bytes"
		       : !text_is_clean(s, n)
			   ? "holds a control character, a display control or bytes that are "
			     "not UTF-8"
			   : NULL;
	default: return NULL;
	}
}

static enum db_json_type wanted_type(enum kind k)
{
	switch (k) {
	case K_PORT: return DB_JSON_INTEGER;
	case K_OBJECT: return DB_JSON_OBJECT;
	case K_ARRAY: return DB_JSON_ARRAY;
	case K_BOOL: return DB_JSON_TRUE; /* or false */
	default: return DB_JSON_TEXT;
	}
}

/* 0 when every field passes, else INGEST_REJECTED with why set. */
static int check_fields(struct ingest *g, const struct check *c, size_t n, char *why, size_t cap)
{
	for (size_t i = 0; i < n; i++) {
		const struct db_json_value *v = &g->v[c[i].path];
		const char *name = paths[c[i].path] + 2, *bad;
		if (v->type == DB_JSON_ABSENT) {
			if (c[i].flags & REQUIRED)
				return reject(why, cap, "field %s is missing", name);
			continue;
		}
		if (v->type == DB_JSON_NULL && (c[i].flags & NULLABLE))
			continue;
		enum db_json_type want = wanted_type(c[i].kind);
		int type_ok = v->type == want || (want == DB_JSON_TRUE && v->type == DB_JSON_FALSE);
		if (!type_ok)
			return reject(why, cap, "field %s is %s, not %s%s", name, type_name(v->type),
				      type_name(want == DB_JSON_TRUE ? DB_JSON_TRUE : want),
				      want == DB_JSON_TRUE ? " or false" : "");
		if (c[i].kind == K_TIME) {
			if (parse_time(v->text, v->len, &g->secs[c[i].path]))
				return reject(why, cap, "field %s is not an RFC 3339 UTC time", name);
		} else if ((bad = form_error(c[i].kind, v))) {
			return reject(why, cap, "field %s %s", name, bad);
		}
	}
	return 0;
}

/* A JSON escape of NUL ("\u0000") would cut a stored string short: the line
 * is refused instead. An escape is one with an odd run of backslashes. */
static int has_nul_escape(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\')
			continue;
		size_t run = 0;
		while (i < n && s[i] == '\\') {
			run++;
			i++;
		}
		if ((run & 1) && n - i >= 5 && s[i] == 'u' && memcmp(s + i + 1, "0000", 4) == 0)
			return 1;
	}
	return 0;
}

/* The value as a C string in buf (checked fields are short and NUL-free). */
static const char *cstr(const struct db_json_value *v, char *buf, size_t cap)
{
	if (v->type != DB_JSON_TEXT)
		return NULL;
	size_t n = v->len < cap - 1 ? v->len : cap - 1;
	memcpy(buf, v->text, n);
	buf[n] = 0;
	return buf;
}

static int bool_of(const struct db_json_value *v)
{
	return v->type == DB_JSON_TRUE ? 1 : v->type == DB_JSON_FALSE ? 0 : -1;
}

/* ---- sessions */

struct domain_list {
	char (*names)[256];
	int n;
	const char *bad;
};

static int collect_domain(void *ctx, const struct db_json_value *v)
{
	struct domain_list *l = ctx;
	if (l->n >= MAX_DOMAINS) {
		l->bad = "more than 256 policy domains";
		return -1;
	}
	if (v->type != DB_JSON_TEXT || form_error(K_HOST, v)) {
		l->bad = "an element of policy.domains is not a domain name";
		return -1;
	}
	memcpy(l->names[l->n], v->text, v->len);
	l->names[l->n][v->len] = 0;
	l->n++;
	return 0;
}

static enum ingest_result db_failed(struct ingest *g, char *why, size_t cap)
{
	snprintf(why, cap, "database: %s", db_errmsg(g->db));
	return INGEST_ERROR;
}

static enum ingest_result ingest_session(struct ingest *g, const char *line, size_t len,
					 char *why, size_t cap)
{
	enum ingest_result r;
	if (check_fields(g, session_checks, sizeof(session_checks) / sizeof(session_checks[0]), why,
			 cap))
		return INGEST_REJECTED;
	char(*names)[256] = g->domains;
	struct domain_list dl = {names, 0, NULL};
	if (g->v[P_POLICY_DOMAINS].type == DB_JSON_ARRAY &&
	    db_json_each(g->q, line, len, paths[P_POLICY_DOMAINS], collect_domain, &dl) < 0)
		return dl.bad ? reject(why, cap, "%s", dl.bad) : db_failed(g, why, cap);

	char sensor[64], id[72], cid[72], cip[64], sip[64], verdict[72], domain[256], mx[256],
	    tlsv[72];
	char *reason = NULL;
	const struct db_json_value *vr = &g->v[P_VERDICT_REASON];
	if (vr->type == DB_JSON_TEXT && !(reason = strndup(vr->text, vr->len))) {
		snprintf(why, cap, "out of memory");
		return INGEST_ERROR;
	}
	const char *tls_version = cstr(&g->v[P_TLS_VERSION], tlsv, sizeof(tlsv));
	if (tls_version && strncmp(tls_version, "0x", 2) == 0)
		tls_version = NULL; /* a version without a name: not stored as one */
	struct db_session_row row = {
	    .id = cstr(&g->v[P_ID], id, sizeof(id)),
	    .ts_start = g->secs[P_TS_START],
	    .ts_end = g->secs[P_TS_END],
	    .client_ip = cstr(&g->v[P_CLIENT_IP], cip, sizeof(cip)),
	    .server_ip = cstr(&g->v[P_SERVER_IP], sip, sizeof(sip)),
	    .server_port = (int)g->v[P_SERVER_PORT].integer,
	    .domain = cstr(&g->v[P_POLICY_DOMAIN], domain, sizeof(domain)),
	    .mx_host = cstr(&g->v[P_POLICY_MX_HOST], mx, sizeof(mx)),
	    .tls_version = tls_version,
	    .starttls_offered = bool_of(&g->v[P_STARTTLS_OFFERED]),
	    .verified = bool_of(&g->v[P_POLICY_VERIFIED]),
	    .verdict = cstr(&g->v[P_VERDICT], verdict, sizeof(verdict))
			   ? verdict_name((enum verdict_kind)verdict_from_name(verdict))
			   : NULL,
	    .verdict_reason = reason,
	    .sensor = cstr(&g->v[P_SENSOR], sensor, sizeof(sensor)),
	    .community_id = cstr(&g->v[P_COMMUNITY_ID], cid, sizeof(cid)),
	};
	/* the record as stored: the line, without what surrounded it */
	char *record = strndup(line, len);
	if (!record) {
		free(reason);
		snprintf(why, cap, "out of memory");
		return INGEST_ERROR;
	}
	row.record = record;

	struct db *d = g->db;
	char stored[160];
	int rc;
	if ((rc = db_sighting_get(d, row.sensor, row.id, stored, sizeof(stored))) != 0) {
		r = rc > 0 ? INGEST_DUPLICATE : INGEST_ERROR;
		goto done;
	}
	rc = db_session_match(d, row.community_id, row.ts_start, g->window, row.sensor, stored,
			      sizeof(stored));
	if (rc < 0) {
		r = INGEST_ERROR;
		goto done;
	}
	if (rc > 0) {
		r = INGEST_SIGHTING;
	} else {
		/* Ids are a keyed hash of the flow and its first packet: another
		 * session under this id came from another sensor's clock. */
		snprintf(stored, sizeof(stored), "%s", row.id);
		if ((rc = db_session_exists(d, stored)) > 0) {
			snprintf(stored, sizeof(stored), "%s.%s", row.id, row.sensor);
			rc = db_session_exists(d, stored);
			if (rc > 0) {
				free(reason);
				free(record);
				return reject(why, cap,
					      "session %s is stored for another session of this "
					      "sensor already",
					      row.id);
			}
		}
		if (rc < 0) {
			r = INGEST_ERROR;
			goto done;
		}
		row.id = stored;
		r = INGEST_SESSION;
		if (db_session_add(d, &row)) {
			r = INGEST_ERROR;
			goto done;
		}
		for (int i = 0; i < dl.n; i++) {
			const char *m = row.domain && strcmp(row.domain, names[i]) == 0 ? row.mx_host
											   : NULL;
			if (db_session_domain_put(d, stored, names[i], m)) {
				r = INGEST_ERROR;
				goto done;
			}
		}
	}
	if (db_sighting_put(d, sensor, id, stored, row.ts_start, row.community_id) ||
	    (strcmp(stored, id) != 0 && db_findings_move(d, sensor, id, stored)))
		r = INGEST_ERROR;
done:
	free(reason);
	free(record);
	return r == INGEST_ERROR ? db_failed(g, why, cap) : r;
}

/* ---- findings */

static enum ingest_result ingest_finding(struct ingest *g, char *why, size_t cap)
{
	if (check_fields(g, finding_checks, sizeof(finding_checks) / sizeof(finding_checks[0]), why,
			 cap))
		return INGEST_REJECTED;
	char sensor[64], session[72], rfc[72], cip[64], sip[64], domain[256], mx[256],
	    stored[160], name[72];
	char *message = strndup(g->v[P_MESSAGE].text, g->v[P_MESSAGE].len);
	if (!message) {
		snprintf(why, cap, "out of memory");
		return INGEST_ERROR;
	}
	/* names as the tables spell them, whatever the case in the record */
	struct db_finding_row row = {
	    .session_id = cstr(&g->v[P_SESSION], session, sizeof(session)),
	    .record_session = session,
	    .rule = finding_name(
		(enum finding_id)finding_from_name(cstr(&g->v[P_ID], name, sizeof(name)))),
	    .severity = severity_name(
		(enum severity)severity_from_name(cstr(&g->v[P_SEVERITY], name, sizeof(name)))),
	    .domain = cstr(&g->v[P_DOMAIN], domain, sizeof(domain)),
	    .mx_host = cstr(&g->v[P_MX_HOST], mx, sizeof(mx)),
	    .rfc8460 = cstr(&g->v[P_RFC8460], rfc, sizeof(rfc)),
	    .ts = g->secs[P_TS],
	    .sending_ip = cstr(&g->v[P_F_CLIENT_IP], cip, sizeof(cip)),
	    .receiving_ip = cstr(&g->v[P_F_SERVER_IP], sip, sizeof(sip)),
	    .message = message,
	    .sensor = cstr(&g->v[P_SENSOR], sensor, sizeof(sensor)),
	};
	struct db *d = g->db;
	/* A finding read before its session is stored under the sensor's
	 * record id; the session moves it when it comes. */
	int rc = db_sighting_get(d, row.sensor, row.session_id, stored, sizeof(stored));
	if (rc > 0)
		row.session_id = stored;
	if (rc >= 0)
		rc = db_finding_put(d, &row);
	free(message);
	if (rc < 0)
		return db_failed(g, why, cap);
	return rc > 0 ? INGEST_FINDING : INGEST_DUPLICATE;
}

enum ingest_result ingest_line(struct ingest *g, const char *line, size_t len, char *why,
			       size_t cap)
{
	why[0] = 0;
	/* what a transport may add around the record */
	while (len && (line[0] == ' ' || line[0] == '\t'))
		line++, len--;
	while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
		len--;
	if (!len)
		return INGEST_BLANK;
	if (len > INGEST_MAX_LINE)
		return reject(why, cap, "longer than %u bytes", INGEST_MAX_LINE);
	if (line[0] != '{')
		return reject(why, cap, "not a JSON object");
	if (!utf8_valid(line, len))
		return reject(why, cap, "not UTF-8");
	if (has_nul_escape(line, len))
		return reject(why, cap, "a string holds a NUL character");
	int rc = db_json_extract(g->q, line, len, g->v);
	if (rc < 0) {
		snprintf(why, cap, "database: %s", db_errmsg(g->db));
		return INGEST_ERROR;
	}
	if (rc == 0)
		return reject(why, cap, "not valid JSON");
	const struct db_json_value *t = &g->v[P_TYPE];
	if (t->type != DB_JSON_TEXT)
		return reject(why, cap, "field type is %s, not a string", type_name(t->type));
	if (t->len == 7 && memcmp(t->text, "session", 7) == 0)
		return ingest_session(g, line, len, why, cap);
	if (t->len == 7 && memcmp(t->text, "finding", 7) == 0)
		return ingest_finding(g, why, cap);
	if (t->len == 4 && memcmp(t->text, "flow", 4) == 0)
		return INGEST_SKIPPED;
	return reject(why, cap, "type is not session, finding or flow");
}
