/*
 * session.c - per-flow decoder dispatch: SMTP -> STARTTLS -> TLS -> bypass.
 */
#include "run/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder/dns.h"
#include "util/community_id.h"

struct session_engine {
	enum session_ndpi_mode ndpi_mode;
	int all_flows;
	struct classifier *classifier;
	int classifier_failed;
	session_emit_fn emit;
	void *emit_ctx;
	session_dns_fn dns;
	void *dns_ctx;
	struct session_stats stats;
};

static int is_smtp_port(uint16_t port)
{
	return port == SMTP_PORT || port == SUBMISSION_PORT;
}

struct session_engine *session_engine_new(enum session_ndpi_mode mode, int all_flows,
					  session_emit_fn emit, void *emit_ctx)
{
	struct session_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->ndpi_mode = mode;
	e->all_flows = all_flows;
	e->emit = emit;
	e->emit_ctx = emit_ctx;
	return e;
}

void session_engine_free(struct session_engine *e)
{
	if (!e)
		return;
	classifier_free(e->classifier);
	free(e);
}

const struct session_stats *session_engine_stats(const struct session_engine *e)
{
	return &e->stats;
}

/* Space-saving (Metwally et al.): a server not in a full table takes the
 * smallest slot and its count, so counts are upper bounds, exact until the
 * table fills. */
static void tally_add(struct server_tally *top, const char *ip, uint64_t n)
{
	struct server_tally *least = &top[0];
	for (int i = 0; i < SESSION_EMPTY_TOP; i++) {
		if (top[i].flows && !strcmp(top[i].ip, ip)) {
			top[i].flows += n;
			return;
		}
		if (top[i].flows < least->flows)
			least = &top[i];
	}
	snprintf(least->ip, sizeof(least->ip), "%s", ip);
	least->flows += n;
}

void session_stats_add(struct session_stats *sum, const struct session_stats *x)
{
	sum->empty_flows += x->empty_flows;
	for (int i = 0; i < SESSION_EMPTY_TOP; i++)
		if (x->empty_top[i].flows)
			tally_add(sum->empty_top, x->empty_top[i].ip, x->empty_top[i].flows);
	for (size_t k = 0; k < sizeof(sum->sessions) / sizeof(sum->sessions[0]); k++)
		sum->sessions[k] += x->sessions[k];
	sum->tls_bypassed += x->tls_bypassed;
	sum->other_bypassed += x->other_bypassed;
	sum->results_lost += x->results_lost;
}

/* Sessions worth a record: SMTP, SMTPS, anything on a mail port or that
 * nDPI calls mail. */
static int session_is_mail(const struct flow *f, const struct session *s)
{
	return s->kind == SESSION_SMTP || s->kind == SESSION_SMTPS ||
	       is_smtp_port(f->key.port[1]) || f->key.port[1] == SMTPS_PORT || s->cls_res.smtp;
}

/* The SMTP decoder's state (some kilobytes) is made at the first byte of
 * payload, or gap: a flood of SYNs to port 25 must not cost that each. */
static void start_smtp(struct session *s, enum session_reason why, int midstream)
{
	s->smtp = smtp_new();
	if (s->smtp && midstream)
		smtp_began_midstream(s->smtp);
	s->kind = s->smtp ? SESSION_SMTP : SESSION_OTHER;
	s->reason = why;
}

static int smtp_ready(struct session *s, const struct flow *f)
{
	if (s->kind == SESSION_SMTP && !s->smtp)
		start_smtp(s, s->reason, f->midstream);
	return s->smtp != NULL;
}

static void start_tls(struct session *s, int dir)
{
	if (!s->tls)
		s->tls = tls_new();
	if (s->tls)
		s->tls_active[dir] = 1;
}

/* Room for `need` bytes of the message being assembled: the buffer grows
 * to the length its 2-byte prefix announces (at most 65537 with it), not
 * to the largest possible. */
static int dns_room(struct session *s, size_t need)
{
	if (need <= s->dns_cap)
		return 1;
	size_t cap = need < 512 ? 512 : need;
	uint8_t *b = realloc(s->dns_buf, cap);
	if (!b)
		return 0;
	s->dns_buf = b;
	s->dns_cap = (uint32_t)cap;
	return 1;
}

/* Server-to-client bytes of DNS over TCP: 2-byte length, then a message. */
static void dns_tcp(struct session_engine *e, struct flow *f, struct session *s, const uint8_t *p,
		    size_t n)
{
	while (n) {
		size_t whole = s->dns_len < 2 ? 2 : (size_t)(s->dns_buf[0] << 8 | s->dns_buf[1]) + 2;
		if (!dns_room(s, whole))
			return;
		/* Copy no further than the frame's end: the next frame starts there. */
		size_t want = whole - s->dns_len;
		size_t take = n < want ? n : want;
		memcpy(s->dns_buf + s->dns_len, p, take);
		s->dns_len += (uint32_t)take;
		p += take;
		n -= take;
		parse_ret frame = dns_tcp_frame(s->dns_buf, s->dns_len);
		if (frame > 0) {
			if (e->dns && frame > 2)
				e->dns(e->dns_ctx, f, s->dns_buf + 2, (size_t)frame - 2,
				       f->ts_last);
			s->dns_len = 0;
		}
	}
}

static void on_open(void *ctx, struct flow *f)
{
	struct session_engine *e = ctx;
	struct session *s = calloc(1, sizeof(*s));
	f->app = s;
	if (!s)
		return;
	/* Auto: only what our own decoders cannot place (not mail ports, not
	 * DNS, which we parse). */
	s->ndpi_wanted = e->ndpi_mode == SESSION_NDPI_ALL ||
			 (e->ndpi_mode == SESSION_NDPI_AUTO && !is_smtp_port(f->key.port[1]) &&
			  f->key.port[1] != SMTPS_PORT && f->key.port[1] != DNS_PORT);
	if (f->key.port[1] == DNS_PORT) {
		s->kind = SESSION_DNS;
		s->reason = SESSION_BY_PORT;
	} else if (is_smtp_port(f->key.port[1])) {
		s->kind = SESSION_SMTP; /* its decoder comes with the first payload */
		s->reason = SESSION_BY_PORT;
	} else if (f->key.port[1] == SMTPS_PORT) {
		s->kind = SESSION_SMTPS;
		s->reason = SESSION_BY_PORT;
		start_tls(s, 0);
		start_tls(s, 1);
	}
}

static void on_packet(void *ctx, struct flow *f, int dir, const struct packet *p)
{
	struct session_engine *e = ctx;
	struct session *s = f->app;
	(void)dir;
	if (!s || !s->ndpi_wanted || s->cls_res.done || !p->l3)
		return;
	/* nDPI's set-up costs tens of milliseconds: pay it only when a flow
	 * needs it. Failure leaves flows unclassified, not the sensor down. */
	if (!e->classifier && !e->classifier_failed) {
		e->classifier = classifier_new();
		e->classifier_failed = e->classifier == NULL;
	}
	if (!e->classifier)
		return;
	/* Bare ACKs tell nDPI nothing; the handshake and payload do. */
	if (p->payload_len == 0 && !(p->tcp_flags & TCPF_SYN))
		return;
	/* Auto: TLS off the mail ports is something nDPI can only call TLS
	 * (SMTP inside is invisible to it as to us), after parsing the whole
	 * ClientHello at some cost: stop at the record header. */
	if (e->ndpi_mode == SESSION_NDPI_AUTO && p->payload_len >= 3 && p->payload[0] == 0x16 &&
	    p->payload[1] == 0x03) {
		s->ndpi_wanted = 0;
		classify_finish(e->classifier, &s->cls, &s->cls_res);
		return;
	}
	classify_packet(e->classifier, &s->cls, p->l3, p->l3_len, p->ts_ns,
			e->ndpi_mode == SESSION_NDPI_ALL, &s->cls_res);
}

static void bypass(struct session_engine *e, struct flow *f, struct session *s, int tls_done)
{
	if (s->bypassed)
		return;
	s->bypassed = 1;
	s->bypass_reason_tls = (uint8_t)tls_done;
	if (tls_done)
		e->stats.tls_bypassed++;
	else
		e->stats.other_bypassed++;
	flow_bypass(f, 0);
	flow_bypass(f, 1);
}

static void on_data(void *ctx, struct flow *f, int dir, const uint8_t *p, size_t n)
{
	struct session_engine *e = ctx;
	struct session *s = f->app;
	if (!s || s->bypassed)
		return;
	if (s->kind == SESSION_DNS) {
		if (dir == FLOW_TO_CLIENT)
			dns_tcp(e, f, s, p, n);
		return;
	}
	if (!s->content_checked) {
		s->content_checked = 1;
		if (s->kind == SESSION_SMTP && !smtp_looks_like(dir, p, n)) {
			/* A mail port carrying something else: let nDPI name it. */
			s->content_not_smtp = 1;
			s->ndpi_wanted |= e->ndpi_mode == SESSION_NDPI_AUTO;
		}
	}
	if (s->kind == SESSION_UNDECIDED) {
		if (smtp_looks_like(dir, p, n)) {
			start_smtp(s, SESSION_BY_CONTENT, f->midstream);
		} else {
			s->kind = SESSION_OTHER;
			bypass(e, f, s, 0);
			return;
		}
	}
	if (s->kind == SESSION_SMTP && !smtp_ready(s, f)) {
		bypass(e, f, s, 0); /* no memory for it: the flow ends unread */
		return;
	}
	if (s->kind == SESSION_SMTP && !s->tls_active[dir]) {
		parse_ret used = smtp_feed(s->smtp, dir, p, n);
		if (used < 0)
			return;
		if ((size_t)used == n && !smtp_tls_started(s->smtp, dir))
			return;
		start_tls(s, dir);
		if (!s->tls)
			return;
		p += used;
		n -= (size_t)used;
	}
	if (s->tls && s->tls_active[dir] && n) {
		tls_feed(s->tls, dir, p, n);
		if (tls_done(s->tls))
			bypass(e, f, s, 1);
	}
}

static void on_gap(void *ctx, struct flow *f, int dir, uint32_t n)
{
	(void)ctx;
	struct session *s = f->app;
	if (!s || s->bypassed)
		return;
	if (s->tls && s->tls_active[dir])
		tls_gap(s->tls, dir, n);
	else if (smtp_ready(s, f))
		smtp_gap(s->smtp, dir, n);
}

/* The facts of the flow itself, common to flow and session records. */
static void record_flow(struct session_record *r, const struct flow *f)
{
	memcpy(r->id, f->id, sizeof(r->id));
	r->file_index = f->file_index;
	community_id_v1(f->key.family, f->key.addr[0], f->key.addr[1], f->key.port[0],
			f->key.port[1], 6, 0, r->community_id);
	r->ts_first = f->ts_first;
	r->ts_last = f->ts_last;
	r->family = f->key.family;
	for (int side = 0; side < 2; side++) {
		flow_addr_str(f, side, r->ip[side], sizeof(r->ip[side]));
		r->port[side] = f->key.port[side];
		r->packets[side] = f->packets[side];
		r->stream_bytes[side] = flow_stream_bytes(f, side);
	}
	r->end = flow_end_name((enum flow_end)f->end);
	r->open_at_end = f->end == FLOW_END_EOF;
	r->midstream = f->midstream;
	for (unsigned i = 0; i < f->n_anomalies; i++) {
		const struct flow_anomaly *a = &f->anomalies[i];
		record_add_anomaly(r, RECORD_LAYER_STREAM,
				   reasm_anomaly_name((enum reasm_anomaly)a->kind), a->dir,
				   a->count, a->bytes);
	}
}

/* The record leaves with the decoders' facts; their working state stays
 * behind to be freed with the flow. */
static void emit_record(struct session_engine *e, const struct flow *f, struct session *s)
{
	if (!e->emit || (!e->all_flows && !session_is_mail(f, s)))
		return;
	struct session_record *r = record_new();
	if (!r) {
		e->stats.results_lost++;
		return;
	}
	record_flow(r, f);
	r->kind = (uint8_t)s->kind;
	r->reason = (uint8_t)s->reason;
	r->content_not_smtp = s->content_not_smtp;
	r->tls_used = s->tls && s->tls_active[0];
	r->ndpi = s->cls_res;
	if (!e->all_flows) {
		if (s->smtp)
			record_take_smtp(r, smtp_take_facts(s->smtp));
		if (s->tls)
			record_take_tls(r, tls_take_facts(s->tls));
	}
	e->emit(e->emit_ctx, f, r);
}

static void on_close(void *ctx, struct flow *f)
{
	struct session_engine *e = ctx;
	struct session *s = f->app;
	if (!s)
		return;
	if (e->classifier)
		classify_finish(e->classifier, &s->cls, &s->cls_res);
	if (!flow_carried_payload(f) && !e->all_flows) {
		char ip[46];
		flow_addr_str(f, 1, ip, sizeof(ip));
		e->stats.empty_flows++;
		tally_add(e->stats.empty_top, ip, 1);
	} else {
		e->stats.sessions[s->kind]++;
		emit_record(e, f, s);
	}
	smtp_free(s->smtp);
	tls_free(s->tls);
	free(s->dns_buf);
	free(s);
	f->app = NULL;
}

void session_engine_set_dns(struct session_engine *e, session_dns_fn fn, void *ctx)
{
	e->dns = fn;
	e->dns_ctx = ctx;
}

struct flow_consumer session_engine_consumer(struct session_engine *e)
{
	struct flow_consumer c = {
	    .ctx = e,
	    .open = on_open,
	    .packet = on_packet,
	    .data = on_data,
	    .gap = on_gap,
	    .close = on_close,
	};
	return c;
}
