/*
 * test_mutate.c - 10,000 randomly mutated versions of the corpus captures
 * pushed through the whole pipeline in-process (libpcap from memory ->
 * decode -> flows -> SMTP/TLS/X.509/nDPI -> JSON records). Run under ASan
 * and UBSan it proves no read past a buffer, no leak, no crash; the seed is
 * fixed so a failure replays.
 */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capture/capture.h"
#include "decoder/x509.h"
#include "run/session.h"
#include "sinks/session_sink.h"
#include "stream/flow.h"

#define MUTANTS 10000

struct corpus {
	uint8_t *data[128];
	size_t len[128];
	int n;
};

struct pipeline {
	struct flow_table *flows;
	struct session_sink sink;
	struct jsonw json;
	uint64_t sessions;
};

static uint64_t rng = 0x6d787761746368ull;

static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static void load_corpus(struct corpus *c)
{
	static const char *const patterns[] = {"pcaps/*.pcap", "pcaps/*.pcapng",
					       "pcaps/thirdparty/*.pcap",
					       "pcaps/thirdparty/*.pcapng"};
	for (size_t p = 0; p < 4; p++) {
		glob_t g;
		if (glob(patterns[p], 0, NULL, &g) != 0)
			continue;
		for (size_t i = 0; i < g.gl_pathc && c->n < 128; i++) {
			FILE *f = fopen(g.gl_pathv[i], "rb");
			assert_non_null(f);
			fseek(f, 0, SEEK_END);
			long n = ftell(f);
			fseek(f, 0, SEEK_SET);
			c->data[c->n] = malloc((size_t)n);
			assert_int_equal(fread(c->data[c->n], 1, (size_t)n, f), (size_t)n);
			c->len[c->n++] = (size_t)n;
			fclose(f);
		}
		globfree(&g);
	}
	assert_true(c->n >= 10);
}

static void on_session(void *ctx, const struct flow *f, struct session_record *r)
{
	struct pipeline *p = ctx;
	(void)f;
	p->sessions++;
	session_record_json(&p->json, r, NULL);
	session_sink_write(&p->sink, r, NULL, &p->json, NULL, 0);
	record_free(r);
}

static void on_packet(void *ctx, const struct packet *pkt)
{
	struct pipeline *p = ctx;
	if (pkt->ip_proto == 6)
		flow_table_packet(p->flows, pkt);
}

/* Flips, overwrites, truncates or shifts bytes; keeps the file header most
 * of the time so the damage reaches packet records and payloads. */
static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
	uint32_t kind = next_rand() % 8;
	size_t start = (next_rand() % 4) ? 24 : 0;
	if (len <= start + 1)
		return len;
	uint32_t edits = 1 + next_rand() % 16;
	for (uint32_t e = 0; e < edits; e++) {
		size_t pos = start + next_rand() % (len - start);
		switch (kind) {
		case 0: /* truncate */ return pos;
		case 1: { /* delete a run */
			size_t run = 1 + next_rand() % 64;
			if (pos + run > len)
				run = len - pos;
			memmove(buf + pos, buf + pos + run, len - pos - run);
			len -= run;
			break;
		}
		case 2: { /* duplicate a run */
			size_t run = 1 + next_rand() % 64;
			if (pos + run > len)
				run = len - pos;
			if (len + run > cap)
				break;
			memmove(buf + pos + run, buf + pos, len - pos);
			len += run;
			break;
		}
		case 3: /* boundary values */
			buf[pos] = (uint8_t[]){
			    0, 0xff, 0x7f, 0x80, 0x16, 0x03, '\r', '\n'}[next_rand() % 8];
			break;
		default: buf[pos] ^= (uint8_t)(1u << (next_rand() % 8)); break;
		}
		if (len <= start + 1)
			break;
	}
	return len;
}

static void test_mutated_captures(void **state)
{
	(void)state;
	struct corpus c = {0};
	load_corpus(&c);
	FILE *devnull = fopen("/dev/null", "w");
	assert_non_null(devnull);
	struct pipeline p = {0};
	session_sink_init(&p.sink, devnull, 1);
	jw_init(&p.json);
	struct session_engine *e = session_engine_new(SESSION_NDPI_ALL, 0, on_session, &p);
	assert_non_null(e);
	struct flow_consumer consumer = session_engine_consumer(e);
	struct flow_config cfg;
	flow_config_defaults(&cfg);
	cfg.max_flows = 64;
	uint64_t read_errors = 0;
	for (int i = 0; i < MUTANTS; i++) {
		int which = (int)(next_rand() % (uint32_t)c.n);
		size_t cap = c.len[which] + 4096;
		uint8_t *buf = malloc(cap);
		memcpy(buf, c.data[which], c.len[which]);
		size_t len = mutate(buf, c.len[which], cap);
		p.flows = flow_table_new(&cfg, &consumer);
		assert_non_null(p.flows);
		struct capture_counters counters = {0};
		char err[512];
		FILE *fp = fmemopen(buf, len ? len : 1, "rb");
		assert_non_null(fp);
		if (capture_read_stream(fp, "mutant", on_packet, &p, &counters, err, sizeof(err)))
			read_errors++;
		flow_table_flush(p.flows);
		flow_table_free(p.flows);
		free(buf);
	}
	/* Most mutants still hold sessions; some are cut before any. */
	assert_true(p.sessions > MUTANTS / 2);
	assert_true(read_errors > 0);
	print_message("%d mutants, %llu sessions decoded, %llu unreadable files\n", MUTANTS,
		      (unsigned long long)p.sessions, (unsigned long long)read_errors);
	session_engine_free(e);
	session_sink_free(&p.sink);
	jw_free(&p.json);
	fclose(devnull);
	for (int i = 0; i < c.n; i++)
		free(c.data[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mutated_captures),
	};
	int rc = cmocka_run_group_tests_name("mutate", tests, NULL, NULL);
	x509_cleanup();
	return rc;
}
