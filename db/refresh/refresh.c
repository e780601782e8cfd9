/*
 * refresh.c - MX, addresses, TLSA (RFC 7672) and MTA-STS (RFC 8461) from the
 * network into the database.
 */
#include "db/refresh/refresh.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "db/policy/mtasts.h"
#include "db/policy/tlsrpt_txt.h"
#include "util/text.h"

#define RR_A      1
#define RR_MX     15
#define RR_TXT    16
#define RR_AAAA   28
#define RR_TLSA   52
#define MAX_MX    32
#define MAX_ADDRS 32
#define MAX_TLSA  32

struct refresher {
	struct refresh_config cfg;
	struct ub_ctx *ub;
	char failure[640]; /* why the last refresher_fetch() returned 1 */
};

static int curl_ready;

struct refresher *refresher_new(const struct refresh_config *cfg, char *err, size_t errlen)
{
	struct refresher *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->cfg = *cfg;
	if (!r->cfg.https_port)
		r->cfg.https_port = 443;
	if (!r->cfg.timeout_s)
		r->cfg.timeout_s = 60;
	r->ub = ub_ctx_create();
	if (!r->ub) {
		snprintf(err, errlen, "cannot create the DNS resolver");
		free(r);
		return NULL;
	}
	int rc = ub_ctx_set_option(r->ub, "do-not-query-localhost:", "no");
	const char *anchor = cfg->trust_anchor ? cfg->trust_anchor : REFRESH_DEFAULT_ANCHOR;
	if (!rc)
		rc = ub_ctx_add_ta_file(r->ub, anchor);
	if (rc) {
		snprintf(err, errlen, "trust anchor %s: %s", anchor, ub_strerror(rc));
		goto fail;
	}
	for (int i = 0; i < cfg->n_stubs; i++) {
		char zone[256];
		const char *at = strchr(cfg->stubs[i], '@');
		if (!at || at == cfg->stubs[i] || (size_t)(at - cfg->stubs[i]) >= sizeof(zone)) {
			snprintf(err, errlen, "--stub %s: expected ZONE@ADDRESS[@PORT]",
				 cfg->stubs[i]);
			goto fail;
		}
		memcpy(zone, cfg->stubs[i], (size_t)(at - cfg->stubs[i]));
		zone[at - cfg->stubs[i]] = 0;
		char lz[300];
		/* unbound answers NXDOMAIN for special-use names such as .test
		 * unless told the zone is served for real. */
		snprintf(lz, sizeof(lz), "%s transparent", zone);
		rc = ub_ctx_set_option(r->ub, "local-zone:", lz);
		if (!rc)
			rc = ub_ctx_set_stub(r->ub, zone, at + 1, 0);
		if (rc) {
			snprintf(err, errlen, "--stub %s: %s", cfg->stubs[i], ub_strerror(rc));
			goto fail;
		}
	}
	/* A forwarder answers for every name, special-use ones (RFC 6761)
	 * included: libunbound must not answer NXDOMAIN for them itself. */
	static const char *const special[] = {"test.", "invalid.", "example.", "local.",
					      "home.arpa."};
	for (size_t i = 0; cfg->n_forwarders && i < sizeof(special) / sizeof(special[0]); i++) {
		char lz[64];
		snprintf(lz, sizeof(lz), "%s transparent", special[i]);
		if ((rc = ub_ctx_set_option(r->ub, "local-zone:", lz))) {
			snprintf(err, errlen, "--resolver: %s", ub_strerror(rc));
			goto fail;
		}
	}
	for (int i = 0; i < cfg->n_forwarders; i++) {
		rc = ub_ctx_set_fwd(r->ub, cfg->forwarders[i]);
		if (rc) {
			snprintf(err, errlen, "--resolver %s: %s", cfg->forwarders[i],
				 ub_strerror(rc));
			goto fail;
		}
	}
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(err, errlen, "cannot initialise libcurl");
			goto fail;
		}
		curl_ready = 1;
	}
	return r;
fail:
	ub_ctx_delete(r->ub);
	free(r);
	return NULL;
}

void refresher_free(struct refresher *r)
{
	if (!r)
		return;
	ub_ctx_delete(r->ub);
	free(r);
}

static const char *dnssec_of(const struct ub_result *res)
{
	if (res->bogus)
		return "bogus";
	return res->secure ? "secure" : "insecure";
}

/* Wire-format name (uncompressed, as libunbound hands rdata over) to text.
 * Returns bytes used, 0 on malformed input. */
static size_t wire_name(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t i = 0, o = 0;
	while (i < n) {
		uint8_t l = p[i++];
		if (l == 0) {
			if (o == 0 && cap > 1)
				out[o++] = '.';
			out[o] = 0;
			return i;
		}
		if (l > 63 || i + l > n || o + l + 2 > cap)
			return 0;
		for (uint8_t k = 0; k < l; k++) {
			char c = ascii_lower((char)p[i + k]);
			out[o++] = (c > 0x20 && c < 0x7f) ? c : '?';
		}
		out[o++] = '.';
		i += l;
	}
	return 0;
}

static void strip_dot(char *s)
{
	size_t n = strlen(s);
	if (n > 1 && s[n - 1] == '.')
		s[n - 1] = 0;
}

/* Why the last lookup failed ("SERVFAIL", "timeout", ...). */
static _Thread_local char resolve_error[96];

/* An answer is a fact only with NOERROR (data or none) or NXDOMAIN: a
 * SERVFAIL, a timeout (libunbound reports it as SERVFAIL), REFUSED or an
 * unreachable resolver is a failed lookup, never "no records" (RFC 8461
 * 5.1: the last good policy stays; RFC 7672: TLSA indeterminate). */
static int resolve(struct refresher *r, const char *name, int type, struct ub_result **res)
{
	static const char *const rcodes[] = {"NOERROR",  "FORMERR", "SERVFAIL",
					     "NXDOMAIN", "NOTIMP",  "REFUSED"};
	*res = NULL;
	int rc = ub_resolve(r->ub, name, type, 1, res);
	if (rc) {
		snprintf(resolve_error, sizeof(resolve_error), "%s", ub_strerror(rc));
		return -1;
	}
	int code = (*res)->rcode;
	if (code != 0 && code != 3) {
		snprintf(resolve_error, sizeof(resolve_error), "%s (no answer from the resolver)",
			 code >= 0 && code < 6 ? rcodes[code] : "error");
		ub_resolve_free(*res);
		*res = NULL;
		return -1;
	}
	return 0;
}

/* A database write held back until every lookup of the domain is done:
 * network I/O never runs inside a write transaction, so a slow resolver
 * or policy host never holds the database's write lock. */
enum deferred_kind { DEFER_MX, DEFER_ADDR, DEFER_TLSA, DEFER_STS, DEFER_TLSRPT, DEFER_LOG };

struct deferred_write {
	enum deferred_kind kind;
	char key[DB_MAX_NAME + 16]; /* domain, host or TLSA name; for a log line, what */
	void *rows;                 /* owned copy; a db_sts for DEFER_STS */
	int n;
	char *result, *detail; /* DEFER_LOG */
};

#define MAX_DEFERRED 256

struct fetch_state {
	struct refresher *r;
	struct db *d;
	const char *domain;
	int64_t now;
	FILE *out;
	int db_error;
	struct deferred_write writes[MAX_DEFERRED];
	int n_writes;
	int lookup_failed; /* some answer was missing: cached data was kept */
	char failure[640]; /* the first one, for the exit message */
	char summary[1024];
	size_t sum_len;
};

static void say(struct fetch_state *st, const char *fmt, const char *a, const char *b)
{
	if (st->sum_len >= sizeof(st->summary))
		return;
	int n = snprintf(st->summary + st->sum_len, sizeof(st->summary) - st->sum_len, fmt, a, b);
	if (n > 0)
		st->sum_len += (size_t)n;
}

static struct deferred_write *defer(struct fetch_state *st, enum deferred_kind kind,
				    const char *key, const void *rows, size_t size)
{
	if (st->n_writes == MAX_DEFERRED) {
		st->db_error = 1;
		return NULL;
	}
	void *copy = NULL;
	if (size && !(copy = malloc(size))) {
		st->db_error = 1;
		return NULL;
	}
	if (size)
		memcpy(copy, rows, size);
	struct deferred_write *w = &st->writes[st->n_writes++];
	memset(w, 0, sizeof(*w));
	w->kind = kind;
	snprintf(w->key, sizeof(w->key), "%s", key);
	w->rows = copy;
	return w;
}

static void defer_rows(struct fetch_state *st, enum deferred_kind kind, const char *key,
		       const void *rows, int n, size_t row_size)
{
	struct deferred_write *w = defer(st, kind, key, rows, (size_t)n * row_size);
	if (w)
		w->n = n;
}

static char *dup_or_null(const char *s, int *failed)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*failed = 1;
	return d;
}

static void log_result(struct fetch_state *st, const char *what, const char *result,
		       const char *detail)
{
	struct deferred_write *w = defer(st, DEFER_LOG, what, NULL, 0);
	if (!w)
		return;
	w->result = dup_or_null(result, &st->db_error);
	w->detail = dup_or_null(detail, &st->db_error);
}

static void defer_sts(struct fetch_state *st, const struct db_sts *cur)
{
	struct deferred_write *w = defer(st, DEFER_STS, st->domain, cur, sizeof(*cur));
	if (!w)
		return;
	struct db_sts *copy = w->rows;
	copy->policy_text = dup_or_null(cur->policy_text, &st->db_error);
}

static int apply_write(struct fetch_state *st, const struct deferred_write *w)
{
	switch (w->kind) {
	case DEFER_MX: return db_mx_replace(st->d, w->key, "dns", w->rows, w->n);
	case DEFER_ADDR: return db_addr_replace(st->d, w->key, "dns", w->rows, w->n);
	case DEFER_TLSA: return db_tlsa_replace(st->d, w->key, "dns", w->rows, w->n);
	case DEFER_STS: return db_sts_put(st->d, w->rows);
	case DEFER_TLSRPT: return db_tlsrpt_put(st->d, w->rows);
	case DEFER_LOG:
		return db_log(st->d, st->now, st->domain, w->key, w->result, w->detail);
	}
	return -1;
}

static void free_writes(struct fetch_state *st)
{
	for (int i = 0; i < st->n_writes; i++) {
		struct deferred_write *w = &st->writes[i];
		if (w->kind == DEFER_STS && w->rows)
			free(((struct db_sts *)w->rows)->policy_text);
		free(w->rows);
		free(w->result);
		free(w->detail);
	}
	st->n_writes = 0;
}

/* Every held-back write of the domain in one short transaction. */
static int apply_writes(struct fetch_state *st)
{
	if (db_begin(st->d))
		return -1;
	for (int i = 0; i < st->n_writes; i++)
		if (apply_write(st, &st->writes[i])) {
			db_rollback(st->d);
			return -1;
		}
	return db_commit(st->d);
}

/* A lookup that failed: the cached data stays, the failure is logged
 * with its RFC 8460 type and reported. */
static void lookup_failed(struct fetch_state *st, const char *what, const char *type,
			  const char *name)
{
	char detail[300];
	snprintf(detail, sizeof(detail), "%s: %s", name, resolve_error);
	log_result(st, what, type, detail);
	if (!st->lookup_failed)
		snprintf(st->failure, sizeof(st->failure), "%s lookup failed: %s", what, detail);
	st->lookup_failed = 1;
}

static void fetch_addresses(struct fetch_state *st, const char *host)
{
	struct db_addr rows[MAX_ADDRS];
	int n = 0;
	static const int types[2] = {RR_A, RR_AAAA};
	for (int t = 0; t < 2; t++) {
		struct ub_result *res;
		if (resolve(st->r, host, types[t], &res)) {
			lookup_failed(st, "address", "sts-policy-fetch-error", host);
			return; /* half an answer would replace good addresses */
		}
		if (res->bogus) {
			log_result(st, "address", "dnssec-invalid", res->why_bogus);
		} else {
			for (int i = 0; res->havedata && res->data[i] && n < MAX_ADDRS; i++) {
				struct db_addr *a = &rows[n];
				memset(a, 0, sizeof(*a));
				if (!inet_ntop(types[t] == RR_A ? AF_INET : AF_INET6, res->data[i],
					       a->address, sizeof(a->address)) ||
				    res->len[i] != (types[t] == RR_A ? 4 : 16))
					continue;
				snprintf(a->host, sizeof(a->host), "%s", host);
				snprintf(a->dnssec, sizeof(a->dnssec), "%s", dnssec_of(res));
				a->ttl = (uint32_t)res->ttl;
				a->fetched_at = st->now;
				n++;
			}
		}
		ub_resolve_free(res);
	}
	defer_rows(st, DEFER_ADDR, host, rows, n, sizeof(rows[0]));
}

static int fetch_tlsa(struct fetch_state *st, const char *host, const char **status)
{
	char name[DB_MAX_NAME];
	*status = "error";
	if (snprintf(name, sizeof(name), "_25._tcp.%s", host) >= (int)sizeof(name))
		return 0;
	struct ub_result *res;
	if (resolve(st->r, name, RR_TLSA, &res)) {
		/* Indeterminate (RFC 7672 2.1.1): the cached records stay. */
		*status = "indeterminate";
		lookup_failed(st, "tlsa", "tlsa-invalid", name);
		return 0;
	}
	static struct db_tlsa rows[MAX_TLSA];
	int n = 0;
	*status = dnssec_of(res);
	if (res->bogus) {
		/* Never stored: a forged "no TLSA" or forged TLSA must not
		 * look like a fact. */
		snprintf(resolve_error, sizeof(resolve_error), "DNSSEC bogus: %.80s",
			 res->why_bogus ? res->why_bogus : "?");
		lookup_failed(st, "tlsa", "dnssec-invalid", name);
		ub_resolve_free(res);
		*status = "bogus";
		return 0; /* the cached records stay */
	} else {
		for (int i = 0; res->havedata && res->data[i] && n < MAX_TLSA; i++) {
			const uint8_t *p = (const uint8_t *)res->data[i];
			size_t len = (size_t)res->len[i];
			if (len < 4 || (len - 3) * 2 + 1 > DB_MAX_TLSA_HEX)
				continue;
			struct db_tlsa *t = &rows[n++];
			memset(t, 0, sizeof(*t));
			snprintf(t->name, sizeof(t->name), "%s", name);
			snprintf(t->host, sizeof(t->host), "%s", host);
			t->port = 25;
			t->usage = p[0];
			t->selector = p[1];
			t->mtype = p[2];
			hex_encode(p + 3, len - 3, t->data);
			snprintf(t->dnssec, sizeof(t->dnssec), "%s", dnssec_of(res));
			t->ttl = (uint32_t)res->ttl;
			t->fetched_at = st->now;
		}
	}
	ub_resolve_free(res);
	defer_rows(st, DEFER_TLSA, name, rows, n, sizeof(rows[0]));
	return n;
}

static int fetch_mx(struct fetch_state *st)
{
	struct ub_result *res;
	if (resolve(st->r, st->domain, RR_MX, &res)) {
		/* The cached MX hosts stay; the domain is not its own MX. */
		lookup_failed(st, "mx", "sts-policy-fetch-error", st->domain);
		say(st, "mx: lookup failed (%s)%s", resolve_error, "");
		return 0;
	}
	static struct db_mx rows[MAX_MX];
	int n = 0;
	if (res->bogus) {
		/* A forged answer, or a validation that could not finish (a
		 * resolver that answers nothing for DNSKEY): either way not a
		 * fact. The cached MX hosts stay, and the run says so. */
		snprintf(resolve_error, sizeof(resolve_error), "DNSSEC bogus: %.80s",
			 res->why_bogus ? res->why_bogus : "?");
		lookup_failed(st, "mx", "dnssec-invalid", st->domain);
		say(st, "mx: bogus (%s)%s", res->why_bogus ? res->why_bogus : "?", "");
		ub_resolve_free(res);
		return 0;
	}
	for (int i = 0; res->havedata && res->data[i] && n < MAX_MX; i++) {
		const uint8_t *p = (const uint8_t *)res->data[i];
		size_t len = (size_t)res->len[i];
		if (len < 3)
			continue;
		struct db_mx *m = &rows[n];
		memset(m, 0, sizeof(*m));
		if (!wire_name(p + 2, len - 2, m->host, sizeof(m->host)))
			continue;
		strip_dot(m->host);
		snprintf(m->domain, sizeof(m->domain), "%s", st->domain);
		m->preference = p[0] << 8 | p[1];
		snprintf(m->dnssec, sizeof(m->dnssec), "%s", dnssec_of(res));
		m->ttl = (uint32_t)res->ttl;
		m->fetched_at = st->now;
		n++;
	}
	if (n == 0 && !res->nxdomain) {
		/* RFC 5321 5.1: no MX means the domain is its own mail host. */
		struct db_mx *m = &rows[n++];
		memset(m, 0, sizeof(*m));
		snprintf(m->domain, sizeof(m->domain), "%s", st->domain);
		snprintf(m->host, sizeof(m->host), "%s", st->domain);
		snprintf(m->dnssec, sizeof(m->dnssec), "%s", dnssec_of(res));
		m->fetched_at = st->now;
	}
	char count[32];
	snprintf(count, sizeof(count), "%d", n);
	say(st, "mx %s (%s)", count, dnssec_of(res));
	log_result(st, "mx", res->nxdomain ? "nxdomain" : "ok", NULL);
	ub_resolve_free(res);
	defer_rows(st, DEFER_MX, st->domain, rows, n, sizeof(rows[0]));
	for (int i = 0; i < n; i++) {
		fetch_addresses(st, rows[i].host);
		const char *status;
		int t = fetch_tlsa(st, rows[i].host, &status);
		char tn[32];
		snprintf(tn, sizeof(tn), "%d", t);
		say(st, ", tlsa %s %s", rows[i].host, "");
		say(st, "%s (%s)", tn, status);
	}
	return n;
}

struct body {
	char *buf;
	size_t len;
	int too_big;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct body *b = ctx;
	size_t n = size * nmemb;
	if (b->len + n > STS_MAX_POLICY_BYTES) {
		b->too_big = 1;
		return 0; /* aborts the transfer */
	}
	char *nb = realloc(b->buf, b->len + n + 1);
	if (!nb)
		return 0;
	b->buf = nb;
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->buf[b->len] = 0;
	return n;
}

/* Downloads the policy file. Returns 0 with the body, or -1 with an RFC
 * 8460 result type and a detail. */
static int download_policy(struct fetch_state *st, struct body *b, const char **type, char *detail,
			   size_t dlen)
{
	char host[DB_MAX_NAME + 16], url[DB_MAX_NAME + 64];
	snprintf(host, sizeof(host), "mta-sts.%s", st->domain);
	/* The policy host is resolved by our validating resolver and pinned,
	 * so the system resolver never decides where the policy comes from. */
	struct curl_slist *pins = NULL;
	static const int types[2] = {RR_A, RR_AAAA};
	for (int t = 0; t < 2; t++) {
		struct ub_result *res;
		if (resolve(st->r, host, types[t], &res))
			continue;
		for (int i = 0; !res->bogus && res->havedata && res->data[i]; i++) {
			char addr[64], pin[DB_MAX_NAME + 96];
			if (!inet_ntop(types[t] == RR_A ? AF_INET : AF_INET6, res->data[i], addr,
				       sizeof(addr)))
				continue;
			snprintf(pin, sizeof(pin), types[t] == RR_A ? "%s:%d:%s" : "%s:%d:[%s]",
				 host, st->r->cfg.https_port, addr);
			pins = curl_slist_append(pins, pin);
		}
		ub_resolve_free(res);
	}
	if (!pins) {
		*type = "sts-policy-fetch-error";
		snprintf(detail, dlen, "%s has no usable address", host);
		return -1;
	}
	if (st->r->cfg.https_port == 443)
		snprintf(url, sizeof(url), "https://%s/.well-known/mta-sts.txt", host);
	else
		snprintf(url, sizeof(url), "https://%s:%d/.well-known/mta-sts.txt", host,
			 st->r->cfg.https_port);
	CURL *c = curl_easy_init();
	if (!c) {
		curl_slist_free_all(pins);
		*type = "sts-policy-fetch-error";
		snprintf(detail, dlen, "cannot create an HTTPS client");
		return -1;
	}
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, pins);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* RFC 8461 3.3: no redirects */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (st->r->cfg.ca_bundle)
		curl_easy_setopt(c, CURLOPT_CAINFO, st->r->cfg.ca_bundle);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, st->r->cfg.timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mxwatch-policy-refresher");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	CURLcode rc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	curl_slist_free_all(pins);
	if (b->too_big) {
		*type = "sts-policy-fetch-error";
		snprintf(detail, dlen, "policy larger than %d bytes", STS_MAX_POLICY_BYTES);
		return -1;
	}
	if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
	    rc == CURLE_SSL_ISSUER_ERROR || rc == CURLE_SSL_CERTPROBLEM) {
		*type = "sts-webpki-invalid";
		snprintf(detail, dlen, "%.200s: %.250s", host,
			 cerr[0] ? cerr : curl_easy_strerror(rc));
		return -1;
	}
	if (rc != CURLE_OK) {
		*type = "sts-policy-fetch-error";
		snprintf(detail, dlen, "%.200s: %.250s", host,
			 cerr[0] ? cerr : curl_easy_strerror(rc));
		return -1;
	}
	if (code != 200) {
		*type = "sts-policy-fetch-error";
		snprintf(detail, dlen, "%s: HTTP %ld%s", host, code,
			 code >= 300 && code < 400 ? " (redirects are not followed)" : "");
		return -1;
	}
	return 0;
}

static void join_patterns(const struct sts_policy *p, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < p->n_mx && o < cap; i++) {
		int n = snprintf(out + o, cap - o, "%s%s", i ? "\n" : "", p->mx[i]);
		if (n < 0 || (size_t)n >= cap - o)
			break; /* cannot happen: cap holds STS_MAX_MX full names */
		o += (size_t)n;
	}
}

/* What one MTA-STS lookup came to: "ok" or an RFC 8460 result type, and a
 * detail for the log. */
struct sts_outcome {
	const char *result;
	char detail[512];
	char kept[40]; /* a result carried over from the cache */
};

#define STS_MAX_TXT 16

/* The _mta-sts TXT records of a lookup: each rdata is one or more
 * <length><text> strings, joined. */
struct sts_txts {
	char text[STS_MAX_TXT][2048];
	const char *p[STS_MAX_TXT];
	size_t len[STS_MAX_TXT];
	int cut[STS_MAX_TXT]; /* longer than the room: never used as it is */
	int n;
};

static void txt_strings(const struct ub_result *res, struct sts_txts *t)
{
	t->n = 0;
	memset(t->cut, 0, sizeof(t->cut));
	for (int i = 0; res->havedata && res->data[i] && t->n < STS_MAX_TXT; i++) {
		const uint8_t *p = (const uint8_t *)res->data[i];
		size_t len = (size_t)res->len[i], off = 0, o = 0;
		char *out = t->text[t->n];
		while (off < len) {
			size_t sl = p[off++];
			if (off + sl > len)
				sl = len - off;
			for (size_t k = 0; k < sl; k++) {
				if (o + 1 >= sizeof(t->text[0])) {
					t->cut[t->n] = 1;
					break;
				}
				out[o++] = (char)p[off + k];
			}
			off += sl;
		}
		out[o] = 0;
		t->p[t->n] = out;
		t->len[t->n] = o;
		t->n++;
	}
}

/* The cached row of the domain, or a fresh one; NULL on a database error. */
static struct db_sts *cached_sts(struct fetch_state *st, int *have)
{
	struct db_sts *cur = calloc(1, sizeof(*cur));
	if (!cur) {
		st->db_error = 1;
		return NULL;
	}
	*have = db_sts_get(st->d, st->domain, cur);
	if (*have < 0) {
		st->db_error = 1;
		free(cur);
		return NULL;
	}
	if (!*have) {
		snprintf(cur->domain, sizeof(cur->domain), "%s", st->domain);
		cur->max_age = -1;
	}
	snprintf(cur->source, sizeof(cur->source), "dns");
	cur->checked_at = st->now;
	return cur;
}

/* Looks up the TXT record into `t`; 0 to go on, -1 with the outcome set. */
static int lookup_sts_txt(struct fetch_state *st, const char *name, struct db_sts *cur,
			  struct sts_txts *t, struct sts_outcome *o)
{
	struct ub_result *res;
	if (resolve(st->r, name, RR_TXT, &res)) {
		/* The cached policy and its id stay (RFC 8461 5.1). */
		o->result = "sts-policy-fetch-error";
		snprintf(o->detail, sizeof(o->detail), "%s: %s", name, resolve_error);
		if (!st->lookup_failed)
			snprintf(st->failure, sizeof(st->failure), "mta-sts lookup failed: %s",
				 o->detail);
		st->lookup_failed = 1;
		return -1;
	}
	snprintf(cur->txt_dnssec, sizeof(cur->txt_dnssec), "%s", dnssec_of(res));
	if (res->bogus) {
		if (!st->lookup_failed)
			snprintf(st->failure, sizeof(st->failure),
				 "mta-sts lookup: DNSSEC bogus: %.200s",
				 res->why_bogus ? res->why_bogus : "?");
		st->lookup_failed = 1;
		o->result = "dnssec-invalid";
		snprintf(o->detail, sizeof(o->detail), "%s: %s", name,
			 res->why_bogus ? res->why_bogus : "bogus");
		cur->txt_id[0] = 0;
		ub_resolve_free(res);
		return -1;
	}
	txt_strings(res, t);
	ub_resolve_free(res);
	if (t->n == 0) {
		/* No record: no (new) policy. A cached one stays valid until its
		 * max_age runs out (RFC 8461 5.1). */
		cur->txt_id[0] = 0;
		cur->txt_raw[0] = 0;
		snprintf(o->detail, sizeof(o->detail), "no _mta-sts TXT record");
		return -1;
	}
	return 0;
}

/* Downloads and parses the policy the TXT record announced; 0 on success
 * (cur holds it), -1 with the outcome set. */
static int download_sts(struct fetch_state *st, struct db_sts *cur, struct sts_outcome *o)
{
	struct body b = {0};
	const char *type = NULL;
	if (download_policy(st, &b, &type, o->detail, sizeof(o->detail))) {
		o->result = type;
		free(b.buf);
		return -1;
	}
	struct sts_policy *pol = calloc(1, sizeof(*pol));
	char perr[256];
	if (!pol || sts_policy_parse(b.buf ? b.buf : "", b.len, pol, perr, sizeof(perr))) {
		o->result = "sts-policy-invalid";
		snprintf(o->detail, sizeof(o->detail), "%s", pol ? perr : "out of memory");
		free(pol);
		free(b.buf);
		return -1;
	}
	free(cur->policy_text);
	cur->policy_text = b.buf;
	snprintf(cur->mode, sizeof(cur->mode), "%s", sts_mode_name(pol->mode));
	cur->max_age = pol->max_age;
	join_patterns(pol, cur->mx_patterns, sizeof(cur->mx_patterns));
	cur->policy_fetched_at = st->now;
	free(pol);
	return 0;
}

/* Decides from the TXT record whether the policy must be downloaded, and
 * does so; fills the outcome. */
static void refresh_sts(struct fetch_state *st, const char *name, struct db_sts *cur, int have,
			const struct sts_txts *t, struct sts_outcome *o)
{
	struct sts_txt txt;
	char terr[200];
	if (sts_txt_select(t->p, t->len, t->n, &txt, terr, sizeof(terr))) {
		o->result = "sts-policy-invalid";
		snprintf(o->detail, sizeof(o->detail), "%s: %s", name, terr);
		cur->txt_id[0] = 0;
		return;
	}
	for (int i = 0; i < t->n; i++)
		if (t->len[i] >= 7 && !memcmp(t->p[i], "v=STSv1", 7))
			snprintf(cur->txt_raw, sizeof(cur->txt_raw), "%s", t->p[i]);
	int fresh = cur->policy_text && cur->policy_fetched_at && cur->max_age >= 0 &&
		    cur->policy_fetched_at + cur->max_age > st->now;
	if (have && fresh && !strcmp(cur->txt_id, txt.id) && !st->r->cfg.force) {
		say(st, ", mta-sts %s id=%s (cached)", cur->mode, cur->txt_id);
		/* Copied out: the store step writes cur->result from o->result. */
		snprintf(o->kept, sizeof(o->kept), "%s", cur->result[0] ? cur->result : "ok");
		o->result = o->kept;
		snprintf(o->detail, sizeof(o->detail), "%s", cur->error_detail);
		return;
	}
	if (download_sts(st, cur, o) == 0)
		say(st, ", mta-sts %s id=%s (fetched)", cur->mode, txt.id);
	/* On failure the previous policy (if any) is kept: it stays in force
	 * until its max_age runs out. The id is only advanced on success so
	 * the next run tries again. */
	if (!strcmp(o->result, "ok"))
		snprintf(cur->txt_id, sizeof(cur->txt_id), "%s", txt.id);
}

static void fetch_sts(struct fetch_state *st)
{
	char name[DB_MAX_NAME + 16];
	snprintf(name, sizeof(name), "_mta-sts.%s", st->domain);
	int have;
	struct db_sts *cur = cached_sts(st, &have);
	if (!cur)
		return;
	struct sts_outcome o = {.result = "ok"};
	/* Large: not on the stack. */
	static _Thread_local struct sts_txts txts;
	if (lookup_sts_txt(st, name, cur, &txts, &o) == 0)
		refresh_sts(st, name, cur, have, &txts, &o);
	if (strcmp(o.result, "ok") != 0)
		say(st, ", mta-sts %s: %s", o.result, o.detail);
	snprintf(cur->result, sizeof(cur->result), "%s", o.result);
	snprintf(cur->error_detail, sizeof(cur->error_detail), "%s", o.detail);
	defer_sts(st, cur);
	log_result(st, "policy", o.result, o.detail[0] ? o.detail : NULL);
	free(cur->policy_text);
	free(cur);
}

/* The domain's TLSRPT record (RFC 8460 3). A failed lookup keeps the
 * destinations known before; a domain whose record went away, or that has
 * several, gets none (the RFC's rule), and says why. */
static void fetch_tlsrpt(struct fetch_state *st)
{
	char name[DB_MAX_NAME + 16];
	snprintf(name, sizeof(name), "_smtp._tls.%s", st->domain);
	struct db_tlsrpt *cur = calloc(1, sizeof(*cur));
	if (!cur) {
		st->db_error = 1;
		return;
	}
	if (db_tlsrpt_get(st->d, st->domain, cur) < 0) {
		st->db_error = 1;
		free(cur);
		return;
	}
	snprintf(cur->domain, sizeof(cur->domain), "%s", st->domain);
	snprintf(cur->source, sizeof(cur->source), "dns");
	cur->checked_at = st->now;
	struct ub_result *res;
	if (resolve(st->r, name, RR_TXT, &res)) {
		lookup_failed(st, "tlsrpt", "temperror", name);
		snprintf(cur->result, sizeof(cur->result), "temperror");
		snprintf(cur->detail, sizeof(cur->detail), "%s: %s", name, resolve_error);
		say(st, ", tlsrpt lookup failed%s%s", "", "");
	} else if (res->bogus) {
		lookup_failed(st, "tlsrpt", "dnssec-invalid", name);
		snprintf(cur->result, sizeof(cur->result), "dnssec-invalid");
		snprintf(cur->detail, sizeof(cur->detail), "%.200s: %.200s", name,
			 res->why_bogus ? res->why_bogus : "bogus");
		cur->rua[0] = 0; /* an attacker's destinations are never kept */
		ub_resolve_free(res);
		say(st, ", tlsrpt DNSSEC bogus%s%s", "", "");
	} else {
		static _Thread_local struct sts_txts txts;
		snprintf(cur->dnssec, sizeof(cur->dnssec), "%s", dnssec_of(res));
		txt_strings(res, &txts);
		ub_resolve_free(res);
		struct tlsrpt_txt rec;
		char err[256];
		int chosen = -1;
		cur->rua[0] = cur->txt_raw[0] = 0;
		if (txts.n == 0) {
			snprintf(cur->result, sizeof(cur->result), "none");
			snprintf(cur->detail, sizeof(cur->detail), "no _smtp._tls TXT record");
		} else if (tlsrpt_txt_select(txts.p, txts.len, txts.n, &rec, &chosen, err,
					     sizeof(err))) {
			snprintf(cur->result, sizeof(cur->result), "%s",
				 strstr(err, "records (one") ? "multiple"
				 : strstr(err, "no TLSRPTv1")  ? "none"
							       : "invalid");
			snprintf(cur->detail, sizeof(cur->detail), "%s", err);
			if (chosen >= 0)
				snprintf(cur->txt_raw, sizeof(cur->txt_raw), "%s", txts.p[chosen]);
		} else if (txts.cut[chosen]) {
			/* a cut record can still parse, naming another address */
			snprintf(cur->result, sizeof(cur->result), "invalid");
			snprintf(cur->detail, sizeof(cur->detail),
				 "the record is longer than %zu bytes", sizeof(txts.text[0]) - 1);
		} else {
			snprintf(cur->result, sizeof(cur->result), "ok");
			snprintf(cur->txt_raw, sizeof(cur->txt_raw), "%s", txts.p[chosen]);
			size_t o = 0;
			for (int i = 0; i < rec.n_rua; i++) {
				int k = snprintf(cur->rua + o, sizeof(cur->rua) - o, "%s%s",
						 i ? "\n" : "", rec.rua[i]);
				if (k < 0 || (size_t)k >= sizeof(cur->rua) - o)
					break;
				o += (size_t)k;
			}
			cur->fetched_at = st->now;
			snprintf(cur->detail, sizeof(cur->detail), "%d destination(s)%s",
				 rec.n_rua, rec.ignored ? ", URIs of other schemes ignored" : "");
		}
		say(st, ", tlsrpt %s%s", cur->result, "");
		log_result(st, "tlsrpt", cur->result, cur->detail[0] ? cur->detail : NULL);
	}
	defer(st, DEFER_TLSRPT, st->domain, cur, sizeof(*cur));
	free(cur);
}

int refresher_fetch(struct refresher *r, struct db *d, const char *domain, FILE *out)
{
	/* Large (the deferred writes): not on the stack. */
	struct fetch_state *st = calloc(1, sizeof(*st));
	if (!st)
		return -1;
	st->r = r;
	st->d = d;
	st->domain = domain;
	st->now = (int64_t)time(NULL);
	st->out = out;
	fetch_mx(st);
	fetch_sts(st);
	fetch_tlsrpt(st);
	int rc = st->db_error ? -1 : apply_writes(st);
	free_writes(st);
	if (rc) {
		free(st);
		return -1;
	}
	if (out)
		fprintf(out, "%s: %s\n", domain, st->summary);
	rc = st->lookup_failed;
	if (rc)
		snprintf(r->failure, sizeof(r->failure), "%s", st->failure);
	free(st);
	return rc;
}

const char *refresher_failure(const struct refresher *r)
{
	return r->failure;
}
