/*
 * pipeline.c - builds and runs the analysis pipeline behind analyze and
 * capture. Results are written by this one writer, in batches.
 */
#include "run/pipeline.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <sys/sysinfo.h>

#include "db/policy/cache.h"
#include "db/policy/mtasts.h"
#include "db/policy/observed.h"
#include "db/sql/db.h"
#include "decoder/dns.h"
#include "decoder/keylog.h"
#include "decoder/tls13.h"
#include "decoder/x509.h"
#include "rules/history.h"
#include "rules/rules.h"
#include "run/config.h"
#include "run/dispatch.h"
#include "sinks/alert_sink.h"
#include "sinks/flowsink.h"
#include "sinks/session_sink.h"
#include "sinks/store.h"
#include "sinks/summary.h"
#include "stream/caps.h"
#include "util/text.h"
#include "util/units.h"

#define MAX_FINDINGS_PER_SESSION 64
#define PIPELINE_MAX_WAITING     4096 /* sessions waiting for their TLS 1.3 keys */

int pipeline_workers(const struct pipeline_opts *o)
{
	if (o->workers > 0)
		return o->workers;
	int n = get_nprocs();
	return n < 1 ? 1 : n > PIPELINE_MAX_WORKERS ? PIPELINE_MAX_WORKERS : n;
}

struct pipeline {
	struct pipeline_opts opts;
	struct observed *observed; /* passive DNS */
	uint64_t disc_window;      /* capture minute of the discovery rate window */
	unsigned disc_in_window;
	uint64_t disc_queued, disc_limited;
	uint64_t dns_messages, dns_bad[DNS_RESULT_COUNT];
	char db_path[4096]; /* "" without a database */
	struct rules_config rcfg;
	struct sink_config scfg;
	struct policy_cache *policy;
	struct db *db;       /* results store, NULL with --no-store */
	struct store *store; /* its writer; NULL without a database */
	int store_failed;    /* some result was not stored */
	int output_failed;   /* some session output could not be written */
	struct rules *rules;
	struct history *history;
	struct alert_sink *alerts;
	uint64_t alerts_sent_before, alerts_suppressed_before; /* by sinks replaced on reload */
	struct summary *summary;
	int fail_on; /* severity index, -1: never */
	int failed;  /* a finding reached --fail-on */
	struct finding findings[MAX_FINDINGS_PER_SESSION];
	int n_findings;
	uint64_t findings_dropped;
	struct jsonw record;
	/* Decoding: one flow table here, or worker threads (offline), or
	 * shards run by capture threads (live). */
	struct flow_table *flows;
	struct session_engine *sessions;
	struct dispatch *dispatch;
	struct shard_hub *hub;
	struct shard **shards;
	int n_workers;
	char sensor[64]; /* on every record, finding and alert */
	FILE *out;       /* the records' stream: stdout, or --output */
	struct session_sink session_out;
	struct flowsink sink;
	int print_flows;
	struct capture_counters counters;
	int quiet;
	char **inputs; /* offline: the capture files, in reading order */
	int n_inputs;
	struct keylog *keylog; /* --tls-keylog: TLS 1.3 server secrets */
	uint64_t tls13_opened, tls13_no_keys, tls13_failed;
	/* Live: TLS 1.3 sessions whose keys the MTA has not written yet, in
	 * arrival order, each judged when its keys come or its wait ends. */
	struct waiting {
		struct session_record *r;
		struct timespec until;
	} waiting[PIPELINE_MAX_WAITING];
	unsigned wait_head, wait_count;
	uint64_t tls13_waited_out; /* judged without keys when the wait ended */
};

/* The host name as a sensor name: other bytes become '_', cut to 63. */
static void default_sensor(char *out, size_t cap)
{
	char host[256] = "";
	if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
		snprintf(host, sizeof(host), "unknown");
	size_t i = 0;
	for (; host[i] && i + 1 < cap && i < 63; i++) {
		unsigned char c = (unsigned char)host[i];
		out[i] = sensor_name_char(c) ? (char)c : '_';
	}
	out[i] = 0;
}

void pipeline_opts_defaults(struct pipeline_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->fail_on = -1;
	o->db_wait_s = -1;
	o->keylog_wait_s = 5;
	o->ndpi = SESSION_NDPI_AUTO;
	flow_config_defaults(&o->flow);
}

struct dns_ctx {
	struct pipeline *p;
	char resolver[64];
	int64_t ts;
};

static void on_dns_rr(void *ctx, const struct dns_response *msg, const struct dns_rr *rr)
{
	struct dns_ctx *c = ctx;
	char value[1100];
	enum observed_kind kind;
	switch (rr->type) {
	case DNS_MX:
		kind = OBS_MX;
		snprintf(value, sizeof(value), "%s", rr->host);
		break;
	case DNS_A:
	case DNS_AAAA:
		kind = OBS_ADDR;
		if (!inet_ntop(rr->type == DNS_A ? AF_INET : AF_INET6, rr->addr, value,
			       sizeof(value)))
			return;
		break;
	case DNS_TLSA: {
		kind = OBS_TLSA;
		int o = snprintf(value, sizeof(value), "%u %u %u ", rr->usage, rr->selector,
				 rr->mtype);
		size_t room = (sizeof(value) - (size_t)o - 1) / 2;
		hex_encode(rr->data, rr->data_len < room ? rr->data_len : room, value + o);
		break;
	}
	case DNS_TXT: {
		/* Only MTA-STS records are of interest; keep them printable. */
		if (strncmp(rr->name, "_mta-sts.", 9) != 0)
			return;
		kind = OBS_TXT;
		size_t i = 0;
		for (; i < rr->data_len && i + 1 < sizeof(value); i++)
			value[i] = (rr->data[i] >= 0x20 && rr->data[i] < 0x7f) ? (char)rr->data[i]
									       : '?';
		value[i] = 0;
		break;
	}
	default: return;
	}
	observed_add(c->p->observed, kind, rr->name, value, msg->ad, c->resolver, rr->ttl, c->ts);
}

static void dns_message(struct pipeline *a, const uint8_t *family_src, int family,
			const uint8_t *msg, size_t len, uint64_t ts_ns)
{
	struct dns_ctx c = {.p = a, .ts = (int64_t)(ts_ns / NS_PER_S)};
	if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, family_src, c.resolver,
		       sizeof(c.resolver)))
		c.resolver[0] = 0;
	enum dns_result r = dns_parse(msg, len, on_dns_rr, &c);
	a->dns_messages++;
	a->dns_bad[r]++;
}

static void on_tcp_dns(void *ctx, const struct flow *f, const uint8_t *msg, size_t len,
		       uint64_t ts_ns)
{
	dns_message(ctx, f->key.addr[1], f->key.family, msg, len, ts_ns);
}

void pipeline_on_packet(void *ctx, const struct packet *p)
{
	struct pipeline *a = ctx;
	if (p->ip_proto != 6)
		a->counters.udp++;
	if (a->dispatch) {
		dispatch_packet(a->dispatch, p);
		return;
	}
	if (p->ip_proto == 6)
		flow_table_packet(a->flows, p);
	else if (p->sport == 53 && a->observed)
		dns_message(a, p->src, p->family, p->payload, p->payload_len, p->ts_ns);
}

static void on_finding(void *ctx, const struct finding *f)
{
	struct pipeline *a = ctx;
	if (a->n_findings == MAX_FINDINGS_PER_SESSION) {
		a->findings_dropped++;
		return;
	}
	a->findings[a->n_findings] = *f;
	a->findings[a->n_findings++].sensor = a->sensor;
}

/* On-demand discovery: recipient domains with no cached policy go to a
 * queue the refresher works through; rate-limited per capture minute. */
static void discover(struct pipeline *a, const struct session_record *r)
{
	if (!a->scfg.discovery_enabled || !store_usable(a->store) || !r->smtp)
		return;
	const struct smtp_facts *m = r->smtp;
	uint64_t minute = r->ts_first / (60 * NS_PER_S);
	for (uint32_t i = 0; i < m->rcpt_domain_count; i++) {
		const char *d = m->rcpt_domains[i];
		if (!hostname_valid(d) || policy_cache_domain(a->policy, d))
			continue;
		if (minute != a->disc_window) {
			a->disc_window = minute;
			a->disc_in_window = 0;
		}
		if (a->disc_in_window >= a->scfg.discovery_per_minute) {
			a->disc_limited++;
			continue;
		}
		if (store_discovery(a->store, d, (int64_t)(r->ts_first / NS_PER_S))) {
			a->disc_in_window++;
			a->disc_queued++;
		}
	}
}

/* A TLS 1.3 session's server flight, opened with its secret from the key
 * log so its chain is checked like a TLS 1.2 one. The flight is dropped
 * either way: nothing of it is kept or written. */
static void open_tls13(struct pipeline *a, struct session_record *r)
{
	struct tls_facts *t = r->tls;
	if (!a->keylog || !t || !t->server_hello || t->version < TLS_V13)
		return;
	if (t->client_random_seen && (t->server_flight_len || t->server_flight_truncated)) {
		uint8_t secret[KEYLOG_MAX_SECRET];
		size_t n = keylog_server_secret(a->keylog, t->client_random, secret);
		t->keylog_problem = n ? tls13_open_server_flight(t, secret, n) : "tls13-no-keys";
		OPENSSL_cleanse(secret, sizeof(secret));
		if (!t->keylog_problem) {
			a->tls13_opened++;
			record_describe_certs(r);
		}
		else if (n)
			a->tls13_failed++;
		else
			a->tls13_no_keys++;
		if (t->keylog_problem && n)
			record_add_anomaly(r, RECORD_LAYER_TLS, t->keylog_problem, 1, 1, 0);
	}
	free(t->server_flight);
	t->server_flight = NULL;
	t->server_flight_len = 0;
}

static int keys_pending(struct pipeline *a, const struct session_record *r)
{
	const struct tls_facts *t = r->tls;
	uint8_t secret[KEYLOG_MAX_SECRET];
	int pending = a->keylog && t && t->server_hello && t->version >= TLS_V13 &&
		      t->client_random_seen && t->server_flight_len &&
		      !keylog_server_secret(a->keylog, t->client_random, secret);
	OPENSSL_cleanse(secret, sizeof(secret));
	return pending;
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void judge(struct pipeline *a, struct session_record *r);

/* Live: judges the waiting sessions whose keys arrived or whose wait is
 * over (all of them with `all`), oldest first. */
static void release_waiting(struct pipeline *a, int all)
{
	if (!a->wait_count)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	while (a->wait_count) {
		struct waiting *w = &a->waiting[a->wait_head];
		int expired = !ts_before(&now, &w->until);
		int pending = keys_pending(a, w->r);
		if (!all && !expired && pending)
			break; /* the oldest waits; later ones are judged in order after it */
		if (expired && pending)
			a->tls13_waited_out++;
		struct session_record *r = w->r;
		a->wait_head = (a->wait_head + 1) % PIPELINE_MAX_WAITING;
		a->wait_count--;
		judge(a, r);
		record_free(r);
	}
}

/* Takes the record when it must wait for its keys (live); 0 otherwise. */
static int wait_for_keys(struct pipeline *a, struct session_record *r)
{
	if (!a->opts.live || !a->keylog || a->opts.keylog_wait_s <= 0)
		return 0;
	if (!a->wait_count && !keys_pending(a, r))
		return 0;
	if (a->wait_count == PIPELINE_MAX_WAITING)
		release_waiting(a, 0);
	if (a->wait_count == PIPELINE_MAX_WAITING) { /* still full: the oldest goes now */
		struct session_record *old = a->waiting[a->wait_head].r;
		a->wait_head = (a->wait_head + 1) % PIPELINE_MAX_WAITING;
		a->wait_count--;
		a->tls13_waited_out++;
		judge(a, old);
		record_free(old);
	}
	struct waiting *w = &a->waiting[(a->wait_head + a->wait_count) % PIPELINE_MAX_WAITING];
	w->r = r;
	clock_gettime(CLOCK_MONOTONIC, &w->until);
	w->until.tv_sec += a->opts.keylog_wait_s;
	a->wait_count++;
	return 1;
}

/* Returns 1 when it kept the record (to judge it once its TLS 1.3 keys
 * are in), 0 when the caller still owns it. */
static int on_record(struct pipeline *a, struct session_record *r)
{
	if (!a->print_flows && wait_for_keys(a, r))
		return 1;
	judge(a, r);
	return 0;
}

static void judge(struct pipeline *a, struct session_record *r)
{
	r->sensor = a->sensor;
	if (r->file_index && r->file_index <= a->n_inputs)
		r->pcap = a->inputs[r->file_index - 1];
	if (a->print_flows) {
		if (!a->quiet)
			flowsink_write(&a->sink, r);
		return;
	}
	struct verdict v;
	a->n_findings = 0;
	open_tls13(a, r);
	rules_evaluate(a->rules, r, on_finding, a, &v);
	const struct tls_facts *t = r->tls;
	summary_session(a->summary, v.domain, t && t->server_hello, (int)v.verdict);
	for (int i = 0; i < a->n_findings; i++) {
		const struct finding *x = &a->findings[i];
		summary_finding(a->summary, x);
		alert_sink_send(a->alerts, x);
		if (a->fail_on >= 0 && x->alert && (int)x->severity >= a->fail_on)
			a->failed = 1;
	}
	discover(a, r);
	/* Serialised once, for the store and the JSON output alike. */
	jw_reset(&a->record);
	int stored = store_usable(a->store);
	if (stored || (a->opts.json && !a->quiet && !a->opts.findings_only))
		session_record_json(&a->record, r, &v);
	if (stored)
		store_session(a->store, r, &v, jw_cstr(&a->record), a->findings, a->n_findings);
	if (!a->quiet)
		session_sink_write(&a->session_out, r, &v, &a->record, a->findings, a->n_findings);
}

/* One flow table: records straight from the session engine. */
static void on_session(void *ctx, const struct flow *f, struct session_record *r)
{
	(void)f;
	if (!on_record(ctx, r))
		record_free(r);
}

/* Results from worker threads: the same path as one flow table's. */
static void on_event(void *ctx, struct shard_event *ev)
{
	struct pipeline *a = ctx;
	if (ev->kind == SHARD_EV_SESSION) {
		if (on_record(a, ev->record))
			ev->record = NULL;
	}
	else if (ev->kind == SHARD_EV_DNS && a->observed)
		dns_message(a, ev->src, ev->family, ev->msg, ev->len, ev->ts_ns);
}

static void decode_stats(const struct pipeline *a, struct flow_stats *fs, struct session_stats *ss,
			 struct reasm_budget *b)
{
	if (a->dispatch) {
		dispatch_stats(a->dispatch, fs, ss, b);
		return;
	}
	if (a->flows) {
		*fs = *flow_table_stats(a->flows);
		*ss = *session_engine_stats(a->sessions);
		*b = *flow_table_budget(a->flows);
		return;
	}
	shard_stats_sum(a->shards, a->shards ? a->n_workers : 0, fs, ss, b);
}

static int by_flows_desc(const void *a, const void *b)
{
	uint64_t x = ((const struct server_tally *)a)->flows, y = ((const struct server_tally *)b)->flows;
	return x < y ? 1 : x > y ? -1 : 0;
}

static void print_counters(const struct pipeline *a, FILE *out)
{
	const struct capture_counters *c = &a->counters;
	struct flow_stats fs;
	struct session_stats sst;
	struct reasm_budget bud;
	decode_stats(a, &fs, &sst, &bud);
	const struct flow_stats *s = &fs;
	const struct reasm_budget *b = &bud;

	fprintf(out, "frames %" PRIu64 " (%" PRIu64 " bytes):", c->frames, c->bytes);
	for (int r = 0; r < PKT_RESULT_COUNT; r++)
		if (c->by_result[r])
			fprintf(out, " %s=%" PRIu64, packet_result_name((enum packet_result)r),
				c->by_result[r]);
	fprintf(out, "\n");
	fprintf(out,
		"tcp packets %" PRIu64 ", stray (no flow) %" PRIu64 ", udp packets %" PRIu64 "\n",
		s->packets_tcp, s->packets_ignored, c->udp);
	fprintf(out,
		"flows %" PRIu64 " (peak %" PRIu64 " at once, %" PRIu64 " time jumps back, %" PRIu64
		" packets with an outlying time, %" PRIu64 " out-of-window RSTs ignored), ended:",
		s->flows_created, s->flows_peak, s->clock_jumps, s->clock_outliers, s->rst_ignored);
	for (int e = 1; e < FLOW_END_COUNT; e++)
		if (s->ended[e])
			fprintf(out, " %s=%" PRIu64, flow_end_name((enum flow_end)e), s->ended[e]);
	fprintf(out, "\n");
	if (a->policy) {
		int nd, nh, na, nt;
		policy_cache_counts(a->policy, &nd, &nh, &na, &nt);
		fprintf(out,
			"policy cache: %d domains, %d mx hosts, %d addresses, %d tlsa records\n",
			nd, nh, na, nt);
	}
	const struct session_stats *ss = &sst;
	fprintf(out,
		"sessions: smtp %" PRIu64 ", implicit tls %" PRIu64 ", not mail %" PRIu64
		", bypassed after tls %" PRIu64 "\n",
		ss->sessions[SESSION_SMTP], ss->sessions[SESSION_SMTPS],
		ss->sessions[SESSION_OTHER] + ss->sessions[SESSION_UNDECIDED], ss->tls_bypassed);
	if (ss->results_lost)
		fprintf(out, "results lost for want of memory %" PRIu64 "\n", ss->results_lost);
	if (a->keylog) {
		struct keylog_stats ks = keylog_stats(a->keylog);
		fprintf(out,
			"tls 1.3 through the key log: %" PRIu64 " opened, %" PRIu64
			" without keys, %" PRIu64 " failed; key log: %" PRIu64
			" server secrets held, %" PRIu64 " lines read, %" PRIu64 " unreadable, %" PRIu64
			" given up at the cap; %" PRIu64 " judged when their wait for keys ended\n",
			a->tls13_opened, a->tls13_no_keys, a->tls13_failed, ks.secrets, ks.lines,
			ks.bad_lines, ks.evicted, a->tls13_waited_out);
	}
	if (ss->empty_flows) {
		struct server_tally top[SESSION_EMPTY_TOP];
		memcpy(top, ss->empty_top, sizeof(top));
		qsort(top, SESSION_EMPTY_TOP, sizeof(top[0]), by_flows_desc);
		fprintf(out, "flows without payload (not recorded) %" PRIu64 ", most to:",
			ss->empty_flows);
		for (int i = 0; i < SESSION_EMPTY_TOP && top[i].flows; i++)
			fprintf(out, " %s=%" PRIu64, top[i].ip, top[i].flows);
		fprintf(out, "\n");
	}
	if (a->dns_messages) {
		fprintf(out, "dns responses %" PRIu64 ":", a->dns_messages);
		for (int r = 0; r < DNS_RESULT_COUNT; r++)
			if (a->dns_bad[r])
				fprintf(out, " %s=%" PRIu64, dns_result_name((enum dns_result)r),
					a->dns_bad[r]);
		fprintf(out,
			", observed records %" PRIu64 " (%" PRIu64 " evicted, %" PRIu64
			" of them unexpired)\n",
			observed_count(a->observed), observed_evicted(a->observed),
			observed_evicted_unexpired(a->observed));
	}
	if (a->disc_queued || a->disc_limited)
		fprintf(out,
			"discovery: %" PRIu64 " domains queued for policy fetch, %" PRIu64
			" held back by the rate limit\n",
			a->disc_queued, a->disc_limited);
	if (a->alerts && a->opts.syslog_on) /* without --syslog none is sent */
		fprintf(out,
			"alerts sent %" PRIu64 ", suppressed by rate limit %" PRIu64
			", findings over the per-session cap %" PRIu64 "\n",
			a->alerts_sent_before + alert_sink_sent(a->alerts),
			a->alerts_suppressed_before + alert_sink_suppressed(a->alerts),
			a->findings_dropped);
	fprintf(out,
		"evicted for memory %" PRIu64 ", segments dropped %" PRIu64 " (%" PRIu64
		" bytes), gap bytes %" PRIu64 ", overlap conflicts %" PRIu64
		", reassembly budget refusals %" PRIu64 "\n",
		s->evicted_for_memory, s->segments_dropped, s->bytes_dropped, s->gap_bytes,
		s->overlap_conflicts, b->over_limit + b->oom);
	fprintf(out,
		"evicted at the flow or memory cap: %" PRIu64 " closed, %" PRIu64 " half-open, %" PRIu64
		" bypassed, %" PRIu64 " live sessions (each marked \"evicted\" on its record)\n",
		s->evicted_by_class[0], s->evicted_by_class[1], s->evicted_by_class[2],
		s->evicted_by_class[3]);
}

struct capture_counters *pipeline_counters(struct pipeline *p)
{
	return &p->counters;
}

int pipeline_failed(const struct pipeline *p)
{
	return p->failed;
}

/* Config file and policy cache into fresh objects: on any error the running
 * ones stay. */
static int load_config_and_cache(struct pipeline *a, struct rules_config *rcfg,
				 struct sink_config *scfg, struct policy_cache **cache, char *err,
				 size_t errlen)
{
	rules_config_defaults(rcfg);
	sink_config_defaults(scfg);
	if (a->opts.config_path && config_load(a->opts.config_path, rcfg, scfg, err, errlen))
		return -1;
	if (a->opts.syslog_on)
		scfg->syslog_enabled = 1;
	*cache = NULL;
	if (!a->db_path[0])
		return 0;
	/* The writer owns the results connection once the store runs. */
	struct db *d = a->store ? NULL : a->db;
	if (!d) {
		d = db_open_readonly(a->db_path, err, errlen);
		if (!d)
			return -1;
	}
	char e[512];
	*cache = policy_cache_load(d, e, sizeof(e));
	if (!*cache)
		snprintf(err, errlen, "%s: %s", a->db_path, e);
	if (d != a->db)
		db_close(d);
	return *cache ? 0 : -1;
}

/* The database named by the options ("none": no database), with what the
 * pipeline keeps from it in memory: learned history and passive DNS. */
static int open_database(struct pipeline *a, const struct pipeline_opts *o, char *err,
			 size_t errlen)
{
	if (o->db_path && !strcmp(o->db_path, "none"))
		a->db_path[0] = 0;
	else if (o->db_path)
		snprintf(a->db_path, sizeof(a->db_path), "%s", o->db_path);
	else if (access(db_default_path(a->db_path, sizeof(a->db_path)), R_OK) != 0)
		a->db_path[0] = 0;
	a->observed = observed_new();
	if (!a->observed) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!a->db_path[0])
		return 0;
	/* --no-store never writes: a read-only database is enough. */
	a->db = o->no_store ? db_open_readonly(a->db_path, err, errlen)
			    : db_open(a->db_path, err, errlen);
	if (!a->db)
		return -1;
	if (history_load(a->history, a->db) || observed_load(a->observed, a->db)) {
		snprintf(err, errlen, "%s: %s", a->db_path, db_errmsg(a->db));
		return -1;
	}
	return 0;
}

/* The decode stage: capture threads' shards (live), worker threads
 * (offline, several workers), or one flow table here. */
static int build_decoders(struct pipeline *a, const struct pipeline_opts *o, char *err,
			  size_t errlen)
{
	a->n_workers = pipeline_workers(o);
	if (o->live) {
		/* Each capture thread gets its share of the flow and memory caps. */
		struct flow_config c = flow_config_share(&o->flow, a->n_workers);
		a->hub = shard_hub_new(a->n_workers, 0);
		a->shards = a->hub ? calloc((size_t)a->n_workers, sizeof(*a->shards)) : NULL;
		for (int i = 0; a->shards && i < a->n_workers; i++)
			if (!(a->shards[i] = shard_new(a->hub, i, o->ndpi, &c, 1, o->flows)))
				break;
		if (!a->shards || !a->shards[a->n_workers - 1]) {
			snprintf(err, errlen, "out of memory creating the flow tables");
			return -1;
		}
		return 0;
	}
	if (a->n_workers > 1) {
		/* The reading thread is one of the N: N - 1 decode. */
		a->dispatch = dispatch_new(a->n_workers - 1, o->ndpi, &o->flow, 1, o->flows,
					   on_event, a);
		if (!a->dispatch) {
			snprintf(err, errlen, "cannot start %d worker threads", a->n_workers);
			return -1;
		}
		return 0;
	}
	a->sessions = session_engine_new(o->ndpi, o->flows, on_session, a);
	if (!a->sessions) {
		snprintf(err, errlen, "cannot initialise the session decoders");
		return -1;
	}
	session_engine_set_dns(a->sessions, on_tcp_dns, a);
	struct flow_consumer consumer = session_engine_consumer(a->sessions);
	a->flows = flow_table_new(&o->flow, &consumer);
	if (!a->flows) {
		snprintf(err, errlen, "out of memory creating the flow table");
		return -1;
	}
	return 0;
}

struct pipeline *pipeline_new(const struct pipeline_opts *o, char *err, size_t errlen)
{
	struct pipeline *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->opts = *o;
	if (o->sensor)
		snprintf(a->sensor, sizeof(a->sensor), "%s", o->sensor);
	else
		default_sensor(a->sensor, sizeof(a->sensor));
	a->fail_on = o->fail_on;
	a->quiet = o->quiet;
	a->print_flows = o->flows;
	jw_init(&a->record);
	a->out = stdout;
	if (o->output_path && !(a->out = fopen(o->output_path, "a"))) {
		snprintf(err, errlen, "--output %s: %s", o->output_path, strerror(errno));
		a->out = stdout;
		goto fail;
	}
	flowsink_init(&a->sink, a->out, o->json ? FLOWSINK_JSON : FLOWSINK_TEXT);
	session_sink_init(&a->session_out, a->out, o->json);
	a->session_out.findings_only = o->findings_only;
	a->history = history_new();
	a->summary = calloc(1, sizeof(*a->summary));
	if (!a->history || !a->summary) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (open_database(a, o, err, errlen) ||
	    load_config_and_cache(a, &a->rcfg, &a->scfg, &a->policy, err, errlen))
		goto fail;
	if (a->db && o->no_store) {
		db_close(a->db);
		a->db = NULL;
	}
	if (a->db) {
		struct store_config sc;
		store_config_defaults(&sc);
		sc.live = o->live;
		sc.syslog = a->scfg.syslog_enabled;
		if (o->db_wait_s >= 0)
			sc.wait_s = (unsigned)o->db_wait_s;
		a->store = store_open(a->db, a->db_path, &sc);
		if (!a->store) {
			snprintf(err, errlen, "cannot start the database writer thread");
			goto fail;
		}
	}
	a->rules = rules_new(&a->rcfg, a->policy, a->history, err, errlen);
	if (!a->rules)
		goto fail;
	rules_set_observed(a->rules, a->observed);
	a->alerts = alert_sink_new(&a->scfg);
	if (!a->alerts) {
		snprintf(err, errlen, "bad syslog facility");
		goto fail;
	}
	if (x509_init() != 0) {
		snprintf(err, errlen, "cannot initialise OpenSSL");
		goto fail;
	}
	if (o->n_keylogs) {
		a->keylog = keylog_new(KEYLOG_MAX_ENTRIES_DEFAULT);
		if (!a->keylog) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		for (int i = 0; i < o->n_keylogs; i++)
			if (keylog_add_file(a->keylog, o->keylogs[i], err, errlen))
				goto fail;
		tls_keep_tls13_flights(1);
	}
	if (build_decoders(a, o, err, errlen))
		goto fail;
	return a;
fail:
	pipeline_free(a);
	return NULL;
}

int pipeline_reload(struct pipeline *a, char *err, size_t errlen)
{
	struct rules_config rcfg;
	struct sink_config scfg;
	struct policy_cache *cache;
	if (load_config_and_cache(a, &rcfg, &scfg, &cache, err, errlen))
		return -1;
	struct rules *rules = rules_new(&rcfg, cache, a->history, err, errlen);
	/* Same syslog settings: the sink, its rate limiter and its counts stay,
	 * or a reload after every policy fetch would defeat the limit. */
	int same_sink = !strcmp(scfg.syslog_facility, a->scfg.syslog_facility) &&
			!strcmp(scfg.syslog_tag, a->scfg.syslog_tag) &&
			scfg.syslog_enabled == a->scfg.syslog_enabled &&
			scfg.alert_interval_s == a->scfg.alert_interval_s;
	struct alert_sink *alerts = rules ? (same_sink ? a->alerts : alert_sink_new(&scfg)) : NULL;
	if (!rules || !alerts) {
		if (rules && !alerts)
			snprintf(err, errlen, "bad syslog facility");
		rules_free(rules);
		policy_cache_free(cache);
		return -1;
	}
	/* Swapped whole between packets: flows and their decoders carry on. */
	rules_set_observed(rules, a->observed);
	rules_free(a->rules);
	if (alerts != a->alerts) {
		a->alerts_sent_before += alert_sink_sent(a->alerts);
		a->alerts_suppressed_before += alert_sink_suppressed(a->alerts);
		alert_sink_free(a->alerts);
	}
	policy_cache_free(a->policy);
	a->rules = rules;
	a->alerts = alerts;
	a->policy = cache;
	a->rcfg = rcfg;
	a->scfg = scfg;
	store_set_syslog(a->store, scfg.syslog_enabled);
	return 0;
}

int pipeline_reopen_output(struct pipeline *a, char *err, size_t errlen)
{
	if (!a->opts.output_path)
		return 0;
	session_sink_flush(&a->session_out);
	if (fflush(a->out) || ferror(a->out))
		a->output_failed = 1;
	FILE *f = fopen(a->opts.output_path, "a");
	if (!f) {
		snprintf(err, errlen, "--output %s: %s (still writing to the old file)",
			 a->opts.output_path, strerror(errno));
		return -1;
	}
	fclose(a->out);
	a->out = a->session_out.out = a->sink.out = f;
	return 0;
}

struct shard *pipeline_shard(struct pipeline *a, int i)
{
	return a->shards && i >= 0 && i < a->n_workers ? a->shards[i] : NULL;
}

int pipeline_drain(struct pipeline *a, int wait_ms)
{
	if (a->keylog && a->opts.live)
		keylog_poll(a->keylog); /* the MTA appends as it goes */
	int done = a->hub ? shard_hub_drain(a->hub, on_event, a, wait_ms) : 1;
	release_waiting(a, done);
	session_sink_flush(&a->session_out); /* live: out within one wait */
	fflush(a->out);
	return done;
}

/* What the run learned (server history, passive DNS), in the store's
 * last transaction. */
static int save_learned(void *ctx, struct db *db)
{
	struct pipeline *a = ctx;
	return history_save(a->history, db) || observed_save(a->observed, db) ? -1 : 0;
}

int pipeline_name_input(struct pipeline *p, const char *name)
{
	char **grown = realloc(p->inputs, sizeof(*grown) * (size_t)(p->n_inputs + 1));
	if (!grown)
		return -1;
	p->inputs = grown;
	if (!(p->inputs[p->n_inputs] = strdup(name)))
		return -1;
	p->n_inputs++;
	return 0;
}

void pipeline_before_output(struct pipeline *p, void (*fn)(void *ctx), void *ctx)
{
	p->session_out.before_write = fn;
	p->session_out.before_ctx = ctx;
}

int pipeline_output_failed(const struct pipeline *p)
{
	return p->output_failed;
}

int pipeline_store_failed(const struct pipeline *p)
{
	return p->store_failed;
}

void pipeline_finish(struct pipeline *a, FILE *counters_out)
{
	if (a->flows)
		flow_table_flush(a->flows);
	if (a->dispatch)
		dispatch_finish(a->dispatch);
	if (a->hub)
		while (!pipeline_drain(a, 100))
			;
	release_waiting(a, 1);
	/* Everything analysed is out before the store's last wait. */
	session_sink_flush(&a->session_out);
	if (fflush(a->out) || ferror(a->out) || a->session_out.write_failed) {
		a->output_failed = 1;
		fprintf(stderr, "mxwatch: writing the session output failed (%s): records are "
				"missing from it\n", strerror(errno));
	}
	if (store_close(a->store, save_learned, a))
		a->store_failed = 1;
	if (!a->print_flows && !a->quiet)
		summary_print(a->summary, a->opts.json ? stderr : stdout);
	fflush(stdout);
	print_counters(a, counters_out);
}

void pipeline_free(struct pipeline *a)
{
	if (!a)
		return;
	dispatch_finish(a->dispatch);
	dispatch_free(a->dispatch);
	for (; a->wait_count; a->wait_count--, a->wait_head = (a->wait_head + 1) % PIPELINE_MAX_WAITING)
		record_free(a->waiting[a->wait_head].r);
	flow_table_free(a->flows);
	session_engine_free(a->sessions);
	for (int i = 0; a->shards && i < a->n_workers; i++)
		shard_free(a->shards[i]);
	free(a->shards);
	shard_hub_free(a->hub);
	session_sink_free(&a->session_out);
	flowsink_free(&a->sink);
	if (a->out && a->out != stdout)
		fclose(a->out);
	policy_cache_free(a->policy);
	rules_free(a->rules);
	history_free(a->history);
	observed_free(a->observed);
	keylog_free(a->keylog);
	for (int i = 0; i < a->n_inputs; i++)
		free(a->inputs[i]);
	free(a->inputs);
	alert_sink_free(a->alerts);
	free(a->summary);
	jw_free(&a->record);
	store_free(a->store);
	db_close(a->db);
	free(a);
	x509_cleanup();
}
