/*
 * tlsrpt.c - RFC 8460 aggregation: stored sessions and findings counted per
 * policy domain (successful and failed sessions, failure details by result
 * type, sending MTA, receiving MX and address) and written as reports.
 */
#include "sinks/tlsrpt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules/rules.h"
#include "sinks/jsonw.h"
#include "util/siphash.h"
#include "util/units.h"

#define MAX_REPORT_DOMAINS 4096
#define MAX_DETAILS        256

struct detail {
	char result[40], sending[64], receiving_ip[64], mx[256];
	uint64_t sessions;
	uint64_t last_session; /* id_key of the last session counted */
};

/* The failures of a domain's sessions as judged against one kind of policy:
 * a domain with both DANE and MTA-STS is reported against each (RFC 8460
 * 4.3), and a DANE failure is not an MTA-STS one, nor the other way round. */
enum { ACC_TLSA, ACC_STS, ACC_N };
struct acct {
	uint64_t failed, failed_tls; /* failed sessions; of those, with TLS */
	struct detail *details; /* grown as needed, up to MAX_DETAILS */
	int n_details, cap_details;
	/* Sessions already counted as failed: a set of their ids (the 16 hex
	 * digits as a number; 0 marks a free slot), open addressing. */
	uint64_t *failed_ids;
	size_t n_failed_ids, failed_cap;
	uint64_t *dropped; /* the report's count of details past the cap */
};

struct dom {
	char name[256];
	uint64_t sessions;
	uint64_t tls_sessions; /* negotiated TLS */
	int64_t first, last;
	struct acct acc[ACC_N];
};

struct tlsrpt {
	struct db *db;
	struct dom *doms;
	int n, cap;
	uint64_t dropped_domains, dropped_details; /* past the caps: said, not hidden */
	struct summary *sum;
	int64_t first, last;
	const char *only;
	const struct report_config *senders; /* NULL: every session */
};

static struct dom *dom_get(struct tlsrpt *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->doms[i].name, name))
			return &r->doms[i];
	if (r->n == MAX_REPORT_DOMAINS) {
		r->dropped_domains++;
		return NULL;
	}
	if (r->n == r->cap) {
		int cap = r->cap ? r->cap * 2 : 16;
		struct dom *grown = realloc(r->doms, (size_t)cap * sizeof(*grown));
		if (!grown) {
			r->dropped_domains++;
			return NULL;
		}
		r->doms = grown;
		r->cap = cap;
	}
	struct dom *d = &r->doms[r->n++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	for (int k = 0; k < ACC_N; k++)
		d->acc[k].dropped = &r->dropped_details;
	return d;
}

static const char *col(const char *const *c, int i, int n)
{
	return i < n && c[i] ? c[i] : "";
}

static int on_session(void *ctx, const char *const *c, int n)
{
	struct tlsrpt *r = ctx;
	if (r->senders && !report_sender_match(r->senders, col(c, 6, n)))
		return 0; /* another organisation's mail */
	const char *domain = col(c, 0, n);
	int64_t ts = strtoll(col(c, 8, n), NULL, 10);
	int tls = col(c, 3, n)[0] != 0;
	summary_session(r->sum, domain, tls, verdict_from_name(col(c, 10, n)));
	if (!r->first || ts < r->first)
		r->first = ts;
	if (ts > r->last)
		r->last = ts;
	/* Every domain the session was tied to counts it (column 9; older rows
	 * have only the first domain, column 0). */
	char list[4096];
	snprintf(list, sizeof(list), "%s", col(c, 9, n)[0] ? col(c, 9, n) : domain);
	for (char *save = NULL, *dn = strtok_r(list, " ", &save); dn;
	     dn = strtok_r(NULL, " ", &save)) {
		if (r->only && strcmp(r->only, dn))
			continue;
		struct dom *d = dom_get(r, dn);
		if (!d)
			continue;
		d->sessions++;
		d->tls_sessions += tls;
		if (!d->first || ts < d->first)
			d->first = ts;
		if (ts > d->last)
			d->last = ts;
	}
	return 0;
}

/* A session id as a set key: its 16 hex digits, or a hash of whatever
 * else it is; never 0. */
static uint64_t id_key(const char *session)
{
	static const uint8_t k[16] = "mxwatch-rpt-ids!";
	char *end = NULL;
	uint64_t v = strlen(session) == 16 ? strtoull(session, &end, 16) : 0;
	if (!end || *end)
		v = siphash24(k, (const uint8_t *)session, strlen(session));
	return v ? v : 1;
}

/* Adds the session to d's failed set; 1 when it is new there, 0 when seen
 * (or when memory ran out: then it is not counted twice either). */
static int failed_add(struct acct *d, const char *session)
{
	if ((d->n_failed_ids + 1) * 2 > d->failed_cap) {
		size_t cap = d->failed_cap ? d->failed_cap * 2 : 64;
		uint64_t *set = calloc(cap, sizeof(*set));
		if (!set)
			return 0;
		for (size_t i = 0; i < d->failed_cap; i++) {
			uint64_t v = d->failed_ids[i];
			if (!v)
				continue;
			size_t j = v & (cap - 1);
			while (set[j])
				j = (j + 1) & (cap - 1);
			set[j] = v;
		}
		free(d->failed_ids);
		d->failed_ids = set;
		d->failed_cap = cap;
	}
	uint64_t v = id_key(session);
	size_t j = v & (d->failed_cap - 1);
	while (d->failed_ids[j]) {
		if (d->failed_ids[j] == v)
			return 0;
		j = (j + 1) & (d->failed_cap - 1);
	}
	d->failed_ids[j] = v;
	d->n_failed_ids++;
	return 1;
}

/* A finding counts against one account's failures. */
static void account(struct acct *a, const char *type, const char *session, int had_tls,
		    const char *sending, const char *rip, const char *mx)
{
	if (failed_add(a, session)) {
		a->failed++;
		a->failed_tls += had_tls;
	}
	for (int i = 0; i < a->n_details; i++) {
		struct detail *x = &a->details[i];
		if (!strcmp(x->result, type) && !strcmp(x->sending, sending) &&
		    !strcmp(x->receiving_ip, rip) && !strcmp(x->mx, mx)) {
			/* One failed session counts once per detail row (findings
			 * come in session order). */
			if (x->last_session != id_key(session)) {
				x->sessions++;
				x->last_session = id_key(session);
			}
			return;
		}
	}
	if (a->n_details == a->cap_details) {
		int cap = a->cap_details ? a->cap_details * 2 : 8;
		struct detail *grown = a->n_details < MAX_DETAILS
					   ? realloc(a->details, (size_t)cap * sizeof(*grown))
					   : NULL;
		if (!grown) {
			(*a->dropped)++;
			return;
		}
		a->details = grown;
		a->cap_details = cap;
	}
	struct detail *x = &a->details[a->n_details++];
	snprintf(x->result, sizeof(x->result), "%s", type);
	snprintf(x->sending, sizeof(x->sending), "%s", sending);
	snprintf(x->receiving_ip, sizeof(x->receiving_ip), "%s", rip);
	snprintf(x->mx, sizeof(x->mx), "%s", mx);
	x->last_session = id_key(session);
	x->sessions = 1;
}

static int on_finding(void *ctx, const char *const *c, int n)
{
	struct tlsrpt *r = ctx;
	struct finding f;
	memset(&f, 0, sizeof(f));
	int id = finding_from_name(col(c, 2, n));
	int sev = severity_from_name(col(c, 3, n));
	if (id < 0 || sev < 0)
		return 0;
	const char *sending = col(c, 5, n), *rip = col(c, 6, n), *mx = col(c, 1, n);
	if (r->senders && !report_sender_match(r->senders, sending))
		return 0;
	f.id = (enum finding_id)id;
	f.severity = (enum severity)sev;
	snprintf(f.domain, sizeof(f.domain), "%s", col(c, 0, n));
	/* Report-only findings (testing mode) are stored with severity info
	 * and do not count as alerts. */
	f.alert = sev != SEV_INFO;
	summary_finding(r->sum, &f);
	const char *type = col(c, 4, n);
	if (!f.domain[0] || !type[0] || (r->only && strcmp(r->only, f.domain)))
		return 0;
	struct dom *d = dom_get(r, f.domain);
	if (!d)
		return 0;
	const char *session = col(c, 7, n), *rule = col(c, 2, n);
	int had_tls = col(c, 9, n)[0] != 0;
	/* DANE's findings fail the TLSA policy only, MTA-STS's the STS one;
	 * the rest (no STARTTLS, a downgrade) fail whichever applies. */
	int dane = !strncmp(rule, "dane-", 5), sts = !strncmp(rule, "mtasts-", 7);
	if (!sts)
		account(&d->acc[ACC_TLSA], type, session, had_tls, sending, rip, mx);
	if (!dane)
		account(&d->acc[ACC_STS], type, session, had_tls, sending, rip, mx);
	return 0;
}

static void jw_datetime(struct jsonw *w, int64_t t)
{
	jw_time(w, (uint64_t)t * NS_PER_S);
}

struct policy_out {
	struct jsonw *w;
	int any;
};

static int mx_host_json(void *ctx, const struct db_mx *m)
{
	jw_str(((struct policy_out *)ctx)->w, m->host);
	return 0;
}

static int tlsa_string(void *ctx, const struct db_tlsa *t)
{
	struct policy_out *p = ctx;
	char s[DB_MAX_TLSA_HEX + 300];
	snprintf(s, sizeof(s), "%s. IN TLSA %d %d %d %s", t->name, t->usage, t->selector, t->mtype,
		 t->data);
	jw_str(p->w, s);
	p->any = 1;
	return 0;
}

struct tlsa_probe {
	struct db *db;
	int found;
};

static int probe_tlsa(void *ctx, const struct db_tlsa *t)
{
	(void)t;
	((struct tlsa_probe *)ctx)->found = 1;
	return 1;
}

static int probe_mx(void *ctx, const struct db_mx *m)
{
	struct tlsa_probe *p = ctx;
	db_each_tlsa(p->db, m->host, probe_tlsa, p);
	return p->found;
}

static int tlsa_of_mx(void *ctx, const struct db_mx *m)
{
	struct policy_out *p = ctx;
	struct db *db = *(struct db **)((char *)ctx + sizeof(struct policy_out));
	db_each_tlsa(db, m->host, tlsa_string, p);
	return 0;
}

struct sts_out {
	struct db_sts sts;
	int have;
};

static int get_sts(void *ctx, const struct db_sts *s)
{
	struct sts_out *o = ctx;
	if (!s->mode[0] || !strcmp(s->mode, "none"))
		return 0;
	o->sts = *s;
	o->sts.policy_text = NULL;
	o->have = 1;
	return 1;
}

enum policy_kind { KIND_STS, KIND_TLSA, KIND_NONE };

/* One policy object of the report: type, its text, domain and MX hosts. */
static void policy_json(struct tlsrpt *r, struct jsonw *w, const struct dom *d,
			enum policy_kind kind, const struct sts_out *so)
{
	jw_key(w, "policy");
	jw_obj_begin(w);
	jw_kv_str(w, "policy-type",
		  kind == KIND_STS ? "sts" : kind == KIND_TLSA ? "tlsa" : "no-policy-found");
	jw_key(w, "policy-string");
	jw_arr_begin(w);
	if (kind == KIND_STS) {
		char line[320];
		jw_str(w, "version: STSv1");
		snprintf(line, sizeof(line), "mode: %s", so->sts.mode);
		jw_str(w, line);
		for (const char *p = so->sts.mx_patterns; *p;) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) : strlen(p);
			snprintf(line, sizeof(line), "mx: %.*s", (int)n, p);
			jw_str(w, line);
			p += n + (nl ? 1 : 0);
		}
		snprintf(line, sizeof(line), "max_age: %lld", (long long)so->sts.max_age);
		jw_str(w, line);
	} else if (kind == KIND_TLSA) {
		struct {
			struct policy_out p;
			struct db *db;
		} ctx = {{w, 0}, r->db};
		db_each_mx(r->db, d->name, tlsa_of_mx, &ctx);
	}
	jw_arr_end(w);
	jw_kv_str(w, "policy-domain", d->name);
	jw_key(w, "mx-host");
	jw_arr_begin(w);
	if (kind == KIND_STS) {
		for (const char *p = so->sts.mx_patterns; *p;) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) : strlen(p);
			jw_strn(w, p, n);
			p += n + (nl ? 1 : 0);
		}
	} else {
		struct policy_out po = {w, 0};
		db_each_mx(r->db, d->name, mx_host_json, &po);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}

/* Failure details in a fixed order (result type, sending MTA, MX host,
 * receiving address), so that the same sessions give the same report
 * whatever order they were stored in (records of many sensors). */
static int detail_cmp(const void *a, const void *b)
{
	const struct detail *x = *(const struct detail *const *)a;
	const struct detail *y = *(const struct detail *const *)b;
	int c = strcmp(x->result, y->result);
	if (!c)
		c = strcmp(x->sending, y->sending);
	if (!c)
		c = strcmp(x->mx, y->mx);
	if (!c)
		c = strcmp(x->receiving_ip, y->receiving_ip);
	return c;
}

static void policy_entry_json(struct tlsrpt *r, struct jsonw *w, const struct dom *d,
			      enum policy_kind kind, const struct sts_out *so)
{
	const struct acct *a = &d->acc[kind == KIND_TLSA ? ACC_TLSA : ACC_STS];
	jw_obj_begin(w);
	policy_json(r, w, d, kind, so);
	jw_key(w, "summary");
	jw_obj_begin(w);
	/* RFC 8460 4.4: successful sessions are successfully negotiated TLS
	 * connections; a plaintext session is never one. */
	jw_kv_u64(w, "total-successful-session-count",
		  d->tls_sessions >= a->failed_tls ? d->tls_sessions - a->failed_tls : 0);
	jw_kv_u64(w, "total-failure-session-count", a->failed);
	jw_obj_end(w);
	jw_key(w, "failure-details");
	jw_arr_begin(w);
	const struct detail *order[MAX_DETAILS + 1];
	for (int i = 0; i < a->n_details; i++)
		order[i] = &a->details[i];
	qsort(order, (size_t)a->n_details, sizeof(order[0]), detail_cmp);
	for (int i = 0; i < a->n_details; i++) {
		const struct detail *x = order[i];
		jw_obj_begin(w);
		jw_kv_str(w, "result-type", x->result);
		jw_kv_str(w, "sending-mta-ip", x->sending);
		if (x->mx[0])
			jw_kv_str(w, "receiving-mx-hostname", x->mx);
		jw_kv_str(w, "receiving-ip", x->receiving_ip);
		jw_kv_u64(w, "failed-session-count", x->sessions);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}

/* The report of one domain into w (one JSON object), its id into id. */
static void report_build(struct tlsrpt *r, const struct dom *d, struct jsonw *wp,
			 const char *org, const char *contact, int64_t from, int64_t to, char *id,
			 size_t idcap)
{
#define w (*wp)
	int64_t start = from > 0 ? from : d->first;
	int64_t end = to < INT64_MAX ? to - 1 : d->last;
	char key[600];
	snprintf(key, sizeof(key), "%s|%s|%lld|%lld", org, d->name, (long long)start,
		 (long long)end);
	static const uint8_t k[16] = "mxwatch-reportid";
	uint64_t h = siphash24(k, (const uint8_t *)key, strlen(key));
	char day[32];
	time_t ts = (time_t)start;
	struct tm tm;
	gmtime_r(&ts, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(id, idcap, "%s_%016llx@mxwatch", day, (unsigned long long)h);
	jw_obj_begin(&w);
	jw_kv_str(&w, "organization-name", org);
	jw_key(&w, "date-range");
	jw_obj_begin(&w);
	jw_key(&w, "start-datetime");
	jw_datetime(&w, start);
	jw_key(&w, "end-datetime");
	jw_datetime(&w, end);
	jw_obj_end(&w);
	jw_kv_str(&w, "contact-info", contact);
	jw_kv_str(&w, "report-id", id);
	jw_key(&w, "policies");
	jw_arr_begin(&w);
	struct sts_out *so = calloc(1, sizeof(*so));
	if (so)
		db_each_sts(r->db, d->name, get_sts, so);
	struct tlsa_probe probe = {r->db, 0};
	db_each_mx(r->db, d->name, probe_mx, &probe);
	/* Both policies when both exist: each with the sessions' outcome
	 * against it. */
	enum policy_kind kinds[2];
	int n_kinds = 0;
	if (probe.found)
		kinds[n_kinds++] = KIND_TLSA;
	if (so && so->have)
		kinds[n_kinds++] = KIND_STS;
	if (!n_kinds)
		kinds[n_kinds++] = KIND_NONE;
	for (int i = 0; i < n_kinds; i++)
		policy_entry_json(r, &w, d, kinds[i], so);
	free(so);
	jw_arr_end(&w);
	jw_obj_end(&w);
#undef w
}

static void report_json(struct tlsrpt *r, const struct dom *d, FILE *out, const char *org,
			const char *contact, int64_t from, int64_t to)
{
	struct jsonw w;
	char id[160];
	jw_init(&w);
	report_build(r, d, &w, org, contact, from, to, id, sizeof(id));
	jw_emit_line(&w, out);
	jw_free(&w);
}

struct tlsrpt *tlsrpt_new(struct db *db, const char *only_domain)
{
	struct tlsrpt *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->db = db;
	r->only = only_domain;
	r->sum = calloc(1, sizeof(*r->sum));
	if (!r->sum) {
		tlsrpt_free(r);
		return NULL;
	}
	return r;
}

void tlsrpt_free(struct tlsrpt *r)
{
	if (!r)
		return;
	for (int i = 0; r->doms && i < r->n; i++)
		for (int k = 0; k < ACC_N; k++) {
			free(r->doms[i].acc[k].failed_ids);
			free(r->doms[i].acc[k].details);
		}
	free(r->doms);
	free(r->sum);
	free(r);
}

int tlsrpt_load(struct tlsrpt *r, int64_t from, int64_t to)
{
	if (db_report_sessions(r->db, from, to, on_session, r) ||
	    db_report_findings(r->db, from, to, on_finding, r))
		return -1;
	return 0;
}

void tlsrpt_write_json(struct tlsrpt *r, FILE *out, const char *org, const char *contact,
		       int64_t from, int64_t to)
{
	for (int i = 0; i < r->n; i++)
		report_json(r, &r->doms[i], out, org, contact, from, to);
}

int tlsrpt_domains(const struct tlsrpt *r)
{
	return r->n;
}

const struct summary *tlsrpt_summary(const struct tlsrpt *r)
{
	return r->sum;
}

void tlsrpt_span(const struct tlsrpt *r, int64_t *first, int64_t *last)
{
	*first = r->first;
	*last = r->last;
}

void tlsrpt_set_senders(struct tlsrpt *r, const struct report_config *c)
{
	r->senders = c && c->n_senders ? c : NULL;
}

const char *tlsrpt_domain_name(const struct tlsrpt *r, int i)
{
	return i >= 0 && i < r->n ? r->doms[i].name : NULL;
}

char *tlsrpt_report_text(struct tlsrpt *r, int i, const char *org, const char *contact,
			 int64_t from, int64_t to, char *id, size_t idcap, size_t *len)
{
	if (i < 0 || i >= r->n)
		return NULL;
	struct jsonw w;
	jw_init(&w);
	report_build(r, &r->doms[i], &w, org, contact, from, to, id, idcap);
	char *text = w.failed ? NULL : malloc(w.len + 1);
	if (text) {
		memcpy(text, w.buf, w.len);
		text[w.len] = 0;
		*len = w.len;
	}
	jw_free(&w);
	return text;
}

void tlsrpt_dropped(const struct tlsrpt *r, uint64_t *domains, uint64_t *details)
{
	*domains = r->dropped_domains;
	*details = r->dropped_details;
}
