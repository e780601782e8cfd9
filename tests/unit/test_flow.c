/*
 * test_flow.c - flow table: orientation, both directions joined, 5-tuple
 * reuse, timeouts, caps with eviction, RST, asymmetric capture and bypass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>

#include "stream/flow.h"

#define SEC 1000000000ull

struct ended {
	char stream[2][256];
	size_t len[2];
	uint16_t client_port, server_port;
	uint8_t end;
	uint8_t midstream;
	uint64_t packets[2];
	uint64_t bytes[2];
	unsigned anomalies[REASM_AN_COUNT]; /* occurrences, both directions */
};

struct rec {
	struct ended e[16];
	int n;
	int open;
	int bypass_after_server_bytes; /* bypass the server direction after this */
	struct ended live[1];
};

static void r_open(void *ctx, struct flow *f)
{
	struct rec *r = ctx;
	r->open++;
	f->app = calloc(1, sizeof(struct ended));
}

static void r_data(void *ctx, struct flow *f, int dir, const uint8_t *p, size_t n)
{
	struct rec *r = ctx;
	struct ended *e = f->app;
	assert_true(e->len[dir] + n < sizeof(e->stream[dir]));
	memcpy(e->stream[dir] + e->len[dir], p, n);
	e->len[dir] += n;
	if (dir == FLOW_TO_CLIENT && r->bypass_after_server_bytes &&
	    e->len[dir] >= (size_t)r->bypass_after_server_bytes)
		flow_bypass(f, dir);
}

static void r_close(void *ctx, struct flow *f)
{
	struct rec *r = ctx;
	struct ended *e = f->app;
	e->client_port = f->key.port[0];
	e->server_port = f->key.port[1];
	e->end = f->end;
	e->midstream = f->midstream;
	for (int d = 0; d < 2; d++) {
		e->packets[d] = f->packets[d];
		e->bytes[d] = flow_stream_bytes(f, d);
	}
	for (unsigned i = 0; i < f->n_anomalies; i++)
		e->anomalies[f->anomalies[i].kind] += (unsigned)f->anomalies[i].count;
	assert_true(r->n < 16);
	r->e[r->n++] = *e;
	free(e);
}

static struct flow_table *table(struct rec *r, uint32_t max_flows)
{
	struct flow_config cfg;
	flow_config_defaults(&cfg);
	cfg.max_flows = max_flows;
	struct flow_consumer c = {.ctx = r, .open = r_open, .data = r_data, .close = r_close};
	struct flow_table *t = flow_table_new(&cfg, &c);
	assert_non_null(t);
	return t;
}

static int next_first_of_file; /* the next packet begins a capture file */

/* 10.0.0.1:port <-> 10.0.0.2:25 */
static void pkt(struct flow_table *t, uint64_t ts, int from_client, uint16_t cport, uint32_t seq,
		uint32_t ack, uint8_t flags, const char *data)
{
	struct packet p;
	memset(&p, 0, sizeof(p));
	p.ts_ns = ts;
	p.family = 4;
	p.ip_proto = 6;
	uint8_t c[4] = {10, 0, 0, 1}, s[4] = {10, 0, 0, 2};
	memcpy(p.src, from_client ? c : s, 4);
	memcpy(p.dst, from_client ? s : c, 4);
	p.sport = from_client ? cport : 25;
	p.dport = from_client ? 25 : cport;
	p.seq = seq;
	p.ack = ack;
	p.tcp_flags = flags;
	p.payload = (const uint8_t *)data;
	p.payload_len = p.payload_wire_len = data ? (uint32_t)strlen(data) : 0;
	p.first_of_file = (uint8_t)next_first_of_file;
	next_first_of_file = 0;
	flow_table_packet(t, &p);
}

#define SYN TCPF_SYN
#define ACK TCPF_ACK
#define FIN (TCPF_FIN | TCPF_ACK)
#define RST TCPF_RST
#define PA  (TCPF_PSH | TCPF_ACK)

static void session(struct flow_table *t, uint64_t ts, uint16_t cport)
{
	pkt(t, ts, 1, cport, 100, 0, SYN, NULL);
	pkt(t, ts + 1, 0, cport, 500, 101, SYN | ACK, NULL);
	pkt(t, ts + 2, 1, cport, 101, 501, ACK, NULL);
	pkt(t, ts + 3, 0, cport, 501, 101, PA, "220 hi\r\n");
	pkt(t, ts + 4, 1, cport, 101, 509, PA, "QUIT\r\n");
	pkt(t, ts + 5, 0, cport, 509, 107, PA, "221 bye\r\n");
	pkt(t, ts + 6, 0, cport, 518, 107, FIN, NULL);
	pkt(t, ts + 7, 1, cport, 107, 519, FIN, NULL);
	pkt(t, ts + 8, 0, cport, 519, 108, ACK, NULL);
}

static void test_full_session(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	session(t, 1 * SEC, 40000);
	assert_int_equal(r.n, 0); /* closed flows linger for late packets */
	flow_table_flush(t);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].client_port, 40000);
	assert_int_equal(r.e[0].server_port, 25);
	assert_int_equal(r.e[0].end, FLOW_END_FIN);
	assert_int_equal(r.e[0].packets[0], 4);
	assert_int_equal(r.e[0].packets[1], 5);
	assert_string_equal(r.e[0].stream[0], "QUIT\r\n");
	assert_string_equal(r.e[0].stream[1], "220 hi\r\n221 bye\r\n");
	assert_false(r.e[0].midstream);
	flow_table_free(t);
}

static void test_orientation_without_syn(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	/* First packet seen is the server's: the well-known port decides. */
	pkt(t, SEC, 0, 51000, 9000, 77, PA, "250 ok\r\n");
	pkt(t, SEC + 1, 1, 51000, 77, 9008, PA, "DATA\r\n");
	flow_table_flush(t);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].client_port, 51000);
	assert_true(r.e[0].midstream);
	assert_int_equal(r.e[0].end, FLOW_END_EOF);
	assert_string_equal(r.e[0].stream[0], "DATA\r\n");
	assert_string_equal(r.e[0].stream[1], "250 ok\r\n");
	flow_table_free(t);
}

static void test_synack_first_orients(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	pkt(t, SEC, 0, 40001, 500, 101, SYN | ACK, NULL);
	pkt(t, SEC + 1, 0, 40001, 501, 101, PA, "220 x\r\n");
	flow_table_flush(t);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].client_port, 40001);
	assert_string_equal(r.e[0].stream[1], "220 x\r\n");
	flow_table_free(t);
}

static void test_tuple_reuse_starts_new_flow(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	session(t, SEC, 40000);
	session(t, 2 * SEC, 40000); /* same 5-tuple, new ISNs would differ; same here */
	flow_table_flush(t);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.e[0].end, FLOW_END_FIN);
	assert_int_equal(r.e[1].end, FLOW_END_FIN);
	assert_string_equal(r.e[1].stream[0], "QUIT\r\n");
	assert_int_equal(r.open, 2);
	flow_table_free(t);
}

static void test_idle_timeout(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	pkt(t, SEC, 1, 40000, 100, 0, SYN, NULL);
	pkt(t, SEC + 1, 0, 40000, 500, 101, SYN | ACK, NULL);
	pkt(t, SEC + 2, 0, 40000, 501, 101, PA, "220 hi\r\n");
	/* 999 s later: one packet alone could be a forged stamp; a run of
	 * them moves the clock. */
	for (int i = 0; i < FLOW_CLOCK_CONFIRM; i++) {
		pkt(t, SEC * 1000, 1, (uint16_t)(40002 + i), 7, 0, SYN, NULL);
		assert_int_equal(r.n, i == FLOW_CLOCK_CONFIRM - 1);
	}
	assert_int_equal(r.e[0].end, FLOW_END_TIMEOUT);
	flow_table_flush(t);
	flow_table_free(t);
}

/* A closed flow times out on its own short timeout even when an older,
 * still established flow sits in the table. */
static void test_closed_flow_ages_out_behind_live_one(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	pkt(t, SEC, 1, 40001, 1, 0, SYN, NULL);
	pkt(t, SEC, 1, 40001, 2, 0, PA, "EHLO x\r\n"); /* established, stays open */
	session(t, 2 * SEC, 40002);                    /* closed by FIN both ways */
	pkt(t, 20 * SEC, 1, 40003, 1, 0, SYN, NULL);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].client_port, 40002);
	assert_int_equal(r.e[0].end, FLOW_END_FIN);
	assert_int_equal(flow_table_stats(t)->flows_active, 2);
	flow_table_flush(t);
	flow_table_free(t);
}

/* A second, older capture in the same run: its sessions must come out whole,
 * not cut into one flow per packet by timeouts measured on the newer clock. */
static void test_time_going_back_starts_afresh(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	session(t, 1000 * SEC, 40000);
	next_first_of_file = 1;
	session(t, 10 * SEC, 40001);
	flow_table_flush(t);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.e[1].client_port, 40001);
	assert_int_equal(r.e[1].end, FLOW_END_FIN);
	assert_string_equal(r.e[1].stream[1], "220 hi\r\n221 bye\r\n");
	assert_int_equal(flow_table_stats(t)->clock_jumps, 1);
	flow_table_free(t);
}

/* Live capture on a quiet link: the clock advances without packets. */
static void test_tick_expires_idle_flows(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	session(t, SEC, 40000);
	pkt(t, 2 * SEC, 1, 40001, 1, 0, SYN, NULL);
	flow_table_tick(t, 3 * SEC);
	assert_int_equal(r.n, 0);
	flow_table_tick(t, 20 * SEC); /* closed flow: 5 s linger */
	assert_int_equal(r.n, 1);
	flow_table_tick(t, 10 * SEC); /* backwards: ignored */
	flow_table_tick(t, 40 * SEC); /* embryonic: 30 s */
	assert_int_equal(r.n, 2);
	assert_int_equal(r.e[1].end, FLOW_END_TIMEOUT);
	flow_table_free(t);
}

static void test_flow_cap_evicts_oldest(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 2);
	pkt(t, SEC, 1, 40001, 1, 0, SYN, NULL);
	pkt(t, SEC + 1, 1, 40002, 1, 0, SYN, NULL);
	pkt(t, SEC + 2, 1, 40001, 2, 0, PA, "x"); /* 40001 is now the newest */
	pkt(t, SEC + 3, 1, 40003, 1, 0, SYN, NULL);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].client_port, 40002);
	assert_int_equal(r.e[0].end, FLOW_END_EVICTED);
	assert_int_equal(flow_table_stats(t)->ended[FLOW_END_EVICTED], 1);
	flow_table_flush(t);
	assert_int_equal(r.n, 3);
	flow_table_free(t);
}

/* A SYN flood at the flow cap pushes out half-open flows, never the live
 * mail session; when only live sessions are left, the oldest goes, marked. */
static void test_flood_spares_live_sessions(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 4);
	pkt(t, SEC, 1, 40000, 100, 0, SYN, NULL);
	pkt(t, SEC + 1, 0, 40000, 500, 101, SYN | ACK, NULL);
	pkt(t, SEC + 2, 0, 40000, 501, 101, PA, "220 hi\r\n");
	pkt(t, SEC + 3, 1, 40000, 101, 509, PA, "EHLO c\r\n");
	for (int i = 0; i < 14; i++) /* r.e holds 16 */
		pkt(t, SEC + 4 + (uint64_t)i, 1, (uint16_t)(50000 + i), 7, 0, SYN, NULL);
	assert_int_equal(r.n, 11); /* 14 SYNs, 3 of them still in the table */
	for (int i = 0; i < r.n; i++)
		assert_int_not_equal(r.e[i].client_port, 40000);
	assert_int_equal(flow_table_stats(t)->evicted_by_class[1], 11);
	pkt(t, SEC + 20, 0, 40000, 509, 109, PA, "250 ok\r\n");
	/* Now only live sessions: each new one pushes out the oldest. */
	struct flow_table *u = table(&r, 1);
	r.n = 0;
	pkt(u, SEC, 1, 40001, 1, 0, PA, "EHLO a\r\n");
	pkt(u, SEC + 1, 1, 40002, 1, 0, PA, "EHLO b\r\n");
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].client_port, 40001);
	assert_int_equal(r.e[0].end, FLOW_END_EVICTED);
	assert_int_equal(r.e[0].anomalies[REASM_AN_EVICTED], 1);
	assert_int_equal(flow_table_stats(u)->evicted_by_class[3], 1);
	flow_table_flush(u);
	flow_table_free(u);
	r.n = 0;
	flow_table_flush(t);
	int live = -1;
	for (int i = 0; i < r.n; i++)
		if (r.e[i].client_port == 40000)
			live = i;
	assert_true(live >= 0);
	assert_string_equal(r.e[live].stream[1], "220 hi\r\n250 ok\r\n");
	assert_int_equal(r.e[live].anomalies[REASM_AN_EVICTED], 0);
	flow_table_free(t);
}

static void test_rst_ends_flow(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	pkt(t, SEC, 1, 40000, 100, 0, SYN, NULL);
	pkt(t, SEC + 1, 0, 40000, 500, 101, SYN | ACK, NULL);
	pkt(t, SEC + 2, 0, 40000, 501, 101, PA, "220 hi\r\n");
	pkt(t, SEC + 3, 1, 40000, 101, 509, RST, NULL);
	pkt(t, SEC + 4, 0, 40000, 509, 101, PA, "late\r\n"); /* ignored after RST */
	flow_table_flush(t);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].end, FLOW_END_RST);
	assert_string_equal(r.e[0].stream[1], "220 hi\r\n");
	flow_table_free(t);
}

/* A forged RST far from the stream does not end it (RFC 5961). */
static void test_blind_rst_ignored(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	pkt(t, SEC, 1, 40000, 100, 0, SYN, NULL);
	pkt(t, SEC + 1, 0, 40000, 500, 101, SYN | ACK, NULL);
	pkt(t, SEC + 2, 0, 40000, 501, 101, PA, "220 hi\r\n");
	pkt(t, SEC + 3, 1, 40000, 101 + 123456789, 509, RST, NULL);
	pkt(t, SEC + 4, 1, 40000, 101, 509, PA, "QUIT\r\n");
	flow_table_flush(t);
	assert_int_equal(r.n, 1);
	assert_int_not_equal(r.e[0].end, FLOW_END_RST);
	assert_string_equal(r.e[0].stream[0], "QUIT\r\n");
	assert_int_equal(flow_table_stats(t)->rst_ignored, 1);
	flow_table_free(t);
}

static void test_one_direction_only(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	/* Asymmetric SPAN: only the client's half, out of order. */
	pkt(t, SEC, 1, 40000, 100, 0, SYN, NULL);
	pkt(t, SEC + 1, 1, 40000, 114, 555, PA, "MAIL FROM:<>\r\n");
	pkt(t, SEC + 2, 1, 40000, 101, 555, PA, "EHLO client\r\n");
	pkt(t, SEC + 3, 1, 40000, 128, 555, FIN, NULL);
	for (int i = 0; i < FLOW_CLOCK_CONFIRM; i++) /* age the first out */
		pkt(t, 100 * SEC, 1, (uint16_t)(40009 + i), 1, 0, SYN, NULL);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].end, FLOW_END_FIN);
	assert_string_equal(r.e[0].stream[0], "EHLO client\r\nMAIL FROM:<>\r\n");
	assert_int_equal(r.e[0].packets[1], 0);
	flow_table_flush(t);
	flow_table_free(t);
}

static void test_bypass_counts_without_delivering(void **state)
{
	(void)state;
	struct rec r = {0};
	r.bypass_after_server_bytes = 1;
	struct flow_table *t = table(&r, 16);
	pkt(t, SEC, 1, 40000, 100, 0, SYN, NULL);
	pkt(t, SEC + 1, 0, 40000, 500, 101, SYN | ACK, NULL);
	pkt(t, SEC + 2, 0, 40000, 501, 101, PA, "220 hi\r\n");
	pkt(t, SEC + 3, 0, 40000, 509, 101, PA, "encrypted");
	flow_table_flush(t);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.e[0].len[1], 8);
	assert_int_equal(r.e[0].bytes[1], 17);
	flow_table_free(t);
}

static void test_stray_packets_make_no_flow(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	pkt(t, SEC, 1, 40000, 100, 5, ACK, NULL);
	pkt(t, SEC, 1, 40000, 100, 5, RST, NULL);
	flow_table_flush(t);
	assert_int_equal(r.n, 0);
	assert_int_equal(flow_table_stats(t)->packets_ignored, 2);
	flow_table_free(t);
}

/* The hand-written IPv4 formatter against the C library's, for every value
 * of every octet position. */
/* An attacker on the path stamps one packet 5 s in the past: it is an
 * outlier of its own flow, and the sessions around it go on whole. */
static void test_lone_packet_in_the_past(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	pkt(t, 100 * SEC, 1, 40000, 100, 0, SYN, NULL);
	pkt(t, 100 * SEC + 1, 0, 40000, 500, 101, SYN | ACK, NULL);
	pkt(t, 95 * SEC, 1, 40001, 7, 0, SYN, NULL);
	pkt(t, 100 * SEC + 2, 0, 40000, 501, 101, PA, "220 hi\r\n");
	pkt(t, 100 * SEC + 3, 1, 40000, 101, 509, PA, "QUIT\r\n");
	assert_int_equal(r.n, 0);
	flow_table_flush(t);
	assert_int_equal(r.n, 2);
	assert_int_equal(flow_table_stats(t)->clock_jumps, 0);
	assert_int_equal(flow_table_stats(t)->clock_outliers, 1);
	int victim = r.e[0].client_port == 40000 ? 0 : 1;
	assert_string_equal(r.e[victim].stream[1], "220 hi\r\n");
	assert_string_equal(r.e[victim].stream[0], "QUIT\r\n");
	assert_int_equal(r.e[victim].anomalies[REASM_AN_TS_OUTLIER], 0);
	assert_int_equal(r.e[!victim].anomalies[REASM_AN_TS_OUTLIER], 1);
	flow_table_free(t);
}

/* One packet a day ahead does not age every open flow out; a run of
 * FLOW_CLOCK_CONFIRM does (a quiet link resuming). */
static void test_lone_packet_far_ahead(void **state)
{
	(void)state;
	struct rec r = {0};
	struct flow_table *t = table(&r, 16);
	pkt(t, 100 * SEC, 1, 40000, 100, 0, SYN, NULL);
	pkt(t, 100 * SEC + 1, 0, 40000, 500, 101, SYN | ACK, NULL);
	pkt(t, 100 * SEC + 2, 0, 40000, 501, 101, PA, "220 hi\r\n");
	pkt(t, 86500 * SEC, 1, 40001, 7, 0, SYN, NULL);
	assert_int_equal(r.n, 0);
	pkt(t, 100 * SEC + 3, 1, 40000, 101, 509, PA, "QUIT\r\n");
	assert_int_equal(flow_table_stats(t)->clock_outliers, 1);
	for (int i = 0; i < FLOW_CLOCK_CONFIRM - 1; i++)
		pkt(t, 86500 * SEC + (uint64_t)i, 1, (uint16_t)(40002 + i), 7, 0, SYN, NULL);
	assert_int_equal(r.n, 0);
	pkt(t, 86600 * SEC, 1, 40100, 7, 0, SYN, NULL);
	assert_int_equal(r.n, 2); /* the victim and the lone SYN, timed out at last */
	int victim = r.e[0].client_port == 40000 ? 0 : 1;
	assert_int_equal(r.e[victim].client_port, 40000);
	assert_int_equal(r.e[victim].end, FLOW_END_TIMEOUT);
	assert_string_equal(r.e[victim].stream[1], "220 hi\r\n");
	assert_string_equal(r.e[victim].stream[0], "QUIT\r\n");
	flow_table_flush(t);
	flow_table_free(t);
}

/* Payload on a SYN is stream data only if the peer acknowledged it (TCP
 * Fast Open); otherwise the stack dropped it and the real bytes follow. */
static void test_syn_data_needs_its_ack(void **state)
{
	(void)state;
	for (int fast_open = 0; fast_open < 2; fast_open++) {
		struct rec r = {0};
		struct flow_table *t = table(&r, 16);
		const char *forged = "EHLO syn-data.evil\r\n";
		uint32_t taken = fast_open ? (uint32_t)strlen(forged) : 0;
		pkt(t, SEC, 1, 40000, 100, 0, SYN, forged);
		pkt(t, SEC + 1, 0, 40000, 500, 101 + taken, SYN | ACK, "220 evil\r\n");
		pkt(t, SEC + 2, 1, 40000, 101 + taken, 501, ACK, NULL);
		pkt(t, SEC + 3, 0, 40000, 501, 101 + taken, PA, "220 hi\r\n");
		pkt(t, SEC + 4, 1, 40000, 101 + taken, 509, PA, "QUIT\r\n");
		flow_table_flush(t);
		assert_int_equal(r.n, 1);
		assert_string_equal(r.e[0].stream[0],
				    fast_open ? "EHLO syn-data.evil\r\nQUIT\r\n" : "QUIT\r\n");
		assert_string_equal(r.e[0].stream[1], "220 hi\r\n");
		/* The SYN-ACK's payload is never acknowledged here either way. */
		assert_int_equal(r.e[0].anomalies[REASM_AN_SYN_DATA], fast_open ? 1 : 2);
		flow_table_free(t);
	}
}

static void test_addr_str_matches_inet_ntop(void **state)
{
	(void)state;
	struct flow f;
	memset(&f, 0, sizeof(f));
	f.key.family = 4;
	char ours[64], libc[64];
	for (int pos = 0; pos < 4; pos++)
		for (int v = 0; v < 256; v++) {
			uint8_t a[4] = {10, 200, 7, 99};
			a[pos] = (uint8_t)v;
			memcpy(f.key.addr[1], a, 4);
			flow_addr_str(&f, 1, ours, sizeof(ours));
			assert_non_null(inet_ntop(AF_INET, a, libc, sizeof(libc)));
			assert_string_equal(ours, libc);
		}
	f.key.family = 6;
	uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	memcpy(f.key.addr[0], a6, 16);
	flow_addr_str(&f, 0, ours, sizeof(ours));
	assert_string_equal(ours, "2001:db8::1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_session),
	    cmocka_unit_test(test_orientation_without_syn),
	    cmocka_unit_test(test_synack_first_orients),
	    cmocka_unit_test(test_tuple_reuse_starts_new_flow),
	    cmocka_unit_test(test_idle_timeout),
	    cmocka_unit_test(test_flow_cap_evicts_oldest),
	    cmocka_unit_test(test_flood_spares_live_sessions),
	    cmocka_unit_test(test_closed_flow_ages_out_behind_live_one),
	    cmocka_unit_test(test_time_going_back_starts_afresh),
	    cmocka_unit_test(test_tick_expires_idle_flows),
	    cmocka_unit_test(test_rst_ends_flow),
	    cmocka_unit_test(test_blind_rst_ignored),
	    cmocka_unit_test(test_one_direction_only),
	    cmocka_unit_test(test_bypass_counts_without_delivering),
	    cmocka_unit_test(test_stray_packets_make_no_flow),
	    cmocka_unit_test(test_addr_str_matches_inet_ntop),
	    cmocka_unit_test(test_lone_packet_in_the_past),
	    cmocka_unit_test(test_lone_packet_far_ahead),
	    cmocka_unit_test(test_syn_data_needs_its_ack),
	};
	return cmocka_run_group_tests_name("flow", tests, NULL, NULL);
}
