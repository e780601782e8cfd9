/*
 * test_reasm.c - TCP reassembly on crafted segment sequences: the delivered
 * byte stream, gap sizes and anomalies are asserted exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stream/caps.h"
#include "stream/reasm.h"

struct collect {
	uint8_t buf[1 << 20];
	size_t len;
	uint32_t gaps[64];
	int ngaps;
	int anomalies[REASM_AN_COUNT];
	uint64_t anomaly_bytes[REASM_AN_COUNT];
	struct reasm_dir *bypass_dir; /* ask for bypass once this many bytes arrived */
	struct reasm_budget *budget;
	size_t bypass_after;
};

static void c_data(void *ctx, int dir, const uint8_t *p, size_t n)
{
	struct collect *c = ctx;
	(void)dir;
	assert_true(c->len + n <= sizeof(c->buf));
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	if (c->bypass_dir && c->len >= c->bypass_after) {
		reasm_bypass(c->bypass_dir, c->budget);
		c->bypass_dir = NULL;
	}
}

static void c_gap(void *ctx, int dir, uint32_t n)
{
	struct collect *c = ctx;
	(void)dir;
	assert_true(c->ngaps < 64);
	c->gaps[c->ngaps++] = n;
}

static void c_anomaly(void *ctx, int dir, enum reasm_anomaly k, uint32_t bytes)
{
	struct collect *c = ctx;
	(void)dir;
	c->anomalies[k]++;
	c->anomaly_bytes[k] += bytes;
}

struct fixture {
	struct collect c;
	struct reasm_sink sink;
	struct reasm_dir d;
	struct reasm_budget b;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->sink = (struct reasm_sink){&f->c, c_data, c_gap, c_anomaly};
	reasm_init(&f->d);
	f->b.limit = 64 << 20;
	f->c.budget = &f->b;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	reasm_free(&f->d, &f->b);
	assert_int_equal(f->b.used, 0); /* every buffer returned to the budget */
	free(f);
	return 0;
}

static void seg(struct fixture *f, uint32_t seq, const char *s)
{
	assert_int_equal(reasm_segment(&f->d, &f->sink, 0, seq, 0, (const uint8_t *)s,
				       (uint32_t)strlen(s), &f->b),
			 REASM_OK);
}

static void assert_stream(struct fixture *f, const char *want)
{
	assert_int_equal(f->c.len, strlen(want));
	assert_memory_equal(f->c.buf, want, f->c.len);
}

static void test_in_order(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 1000);
	seg(f, 1001, "HELO a\r\n");
	seg(f, 1009, "QUIT\r\n");
	assert_stream(f, "HELO a\r\nQUIT\r\n");
	assert_int_equal(f->c.ngaps, 0);
	assert_int_equal(f->d.queued_segs, 0);
}

static void test_out_of_order(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 1000);
	seg(f, 1007, "world");
	seg(f, 1012, "!");
	assert_int_equal(f->c.len, 0);
	assert_int_equal(f->d.queued_segs, 2);
	seg(f, 1001, "hello ");
	assert_stream(f, "hello world!");
	assert_int_equal(f->d.queued_segs, 0);
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 0);
}

static void test_retransmission_deduplicated(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 1);
	seg(f, 2, "abcdef");
	seg(f, 2, "abcdef");
	seg(f, 5, "defgh");
	assert_stream(f, "abcdefgh");
	assert_int_equal(f->d.retrans_bytes, 6 + 3);
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 0);
}

static void test_conflict_with_delivered_data(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 1);
	seg(f, 2, "RCPT TO:<a@b>\r\n");
	seg(f, 2, "RCPT TO:<x@y>\r\n");
	assert_stream(f, "RCPT TO:<a@b>\r\n");
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 1);
}

/* The history ring starts small and grows with the largest segment: bytes
 * delivered before it grew are still compared, and a segment larger than
 * the full ring keeps its tail. */
static void test_conflict_across_history_growth(void **state)
{
	struct fixture *f = *state;
	char big[700], changed[700];
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	reasm_syn(&f->d, 1);
	seg(f, 2, "EHLO client.example\r\n"); /* 21 bytes: the smallest ring */
	assert_int_equal(f->d.hist_cap, REASM_HISTORY_MIN_BYTES);
	seg(f, 23, big); /* 699 bytes: the ring grows, the EHLO line moves over */
	assert_int_equal(f->d.hist_cap, REASM_HISTORY_BYTES);
	seg(f, 2, "EHLO client.example\r\n");
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 0);
	seg(f, 2, "EHLO attacker.test!\r\n");
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 1);
	memcpy(changed, big, sizeof(big));
	changed[sizeof(changed) - 2] = 'X';
	seg(f, 23, changed); /* the last byte of the big segment differs */
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 2);
	/* One segment over the full ring: its last REASM_HISTORY_BYTES kept. */
	char huge[1500];
	memset(huge, 'h', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = 0;
	seg(f, 722, huge);
	assert_int_equal(f->d.hist_len, REASM_HISTORY_BYTES);
	huge[sizeof(huge) - 2] = 'Y';
	seg(f, 722, huge);
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 3);
}

/* Growth after the small ring wrapped: the bytes move over in order. */
static void test_history_growth_after_wrap(void **state)
{
	struct fixture *f = *state;
	char line[21], big[301];
	reasm_syn(&f->d, 0);
	for (int i = 0; i < 10; i++) { /* 200 bytes through a 128-byte ring */
		snprintf(line, sizeof(line), "line %02d of twenty.\r\n", i);
		seg(f, 1 + 20 * (uint32_t)i, line);
	}
	assert_int_equal(f->d.hist_cap, REASM_HISTORY_MIN_BYTES);
	memset(big, 'x', 300);
	big[300] = 0;
	seg(f, 201, big); /* grows to 512 */
	assert_int_equal(f->d.hist_cap, 512);
	seg(f, 181, "line 09 of twenty.\r\n"); /* the same bytes: no conflict */
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 0);
	seg(f, 181, "line 09 of twentY.\r\n");
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 1);
	seg(f, 121, "line 06 of twenty.\r\n"); /* across the old wrap point, same */
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 1);
	seg(f, 121, "LINE 06 of twenty.\r\n");
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 2);
}

static void test_conflict_in_queue_first_wins(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 99);
	seg(f, 110, "AAAAAAAAAA"); /* [110,120) */
	seg(f, 115, "BBBBBBBBBB"); /* [115,125): 5 bytes overlap, differ */
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 1);
	seg(f, 100, "0123456789");
	assert_stream(f, "0123456789AAAAAAAAAABBBBB");
}

static void test_in_order_segment_overlapping_queue(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0);
	seg(f, 5, "xyz");     /* queued [5,8) */
	seg(f, 1, "abcdEFG"); /* [1,8): overlaps [5,8) with other bytes */
	assert_stream(f, "abcdxyz");
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 1);
}

static void test_same_overlap_no_conflict(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0);
	seg(f, 5, "efgh");
	seg(f, 3, "cdefghij");
	seg(f, 1, "ab");
	assert_stream(f, "abcdefghij");
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 0);
}

static void test_sequence_wraparound(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0xfffffff8u);
	seg(f, 0xfffffff9u, "0123");
	seg(f, 0x00000001u, "89ab"); /* out of order, after the wrap */
	seg(f, 0xfffffffdu, "4567"); /* crosses 2^32 */
	seg(f, 0x00000005u, "cd");
	assert_stream(f, "0123456789abcd");
	assert_int_equal(f->c.ngaps, 0);
}

static void test_gap_confirmed_by_ack(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0);
	seg(f, 1, "aaaa");
	reasm_ack(&f->d, &f->sink, 0, 15); /* peer got 14 bytes; we saw 4 */
	seg(f, 11, "cccc");                /* [5,11) never captured */
	assert_int_equal(f->c.ngaps, 1);
	assert_int_equal(f->c.gaps[0], 6);
	assert_stream(f, "aaaacccc");
	assert_int_equal(f->d.gap_bytes, 6);
}

static void test_gap_at_flush(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0);
	seg(f, 1, "ab");
	seg(f, 10, "XY");
	seg(f, 20, "Z");
	assert_stream(f, "ab");
	reasm_flush(&f->d, &f->sink, 0, &f->b);
	assert_stream(f, "abXYZ");
	assert_int_equal(f->c.ngaps, 2);
	assert_int_equal(f->c.gaps[0], 7);
	assert_int_equal(f->c.gaps[1], 8);
	assert_true(f->d.done);
}

static void test_tail_loss_acknowledged(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0);
	seg(f, 1, "abc");
	reasm_ack(&f->d, &f->sink, 0, 104); /* peer acked 100 bytes we never saw */
	reasm_flush(&f->d, &f->sink, 0, &f->b);
	assert_int_equal(f->c.ngaps, 1);
	assert_int_equal(f->c.gaps[0], 100);
}

static void test_midstream_start(void **state)
{
	struct fixture *f = *state;
	seg(f, 500000, "250 OK\r\n");
	seg(f, 500008, "354 go\r\n");
	assert_stream(f, "250 OK\r\n354 go\r\n");
	assert_false(f->d.syn_seen);
}

static void test_queue_cap_skips_ahead(void **state)
{
	struct fixture *f = *state;
	static uint8_t chunk[1000];
	memset(chunk, 'q', sizeof(chunk));
	reasm_syn(&f->d, 0);
	/* A hole at [1,1001), then more out-of-order data than the cap allows. */
	uint32_t n = REASM_DIR_MAX_BYTES / sizeof(chunk) + 2;
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(reasm_segment(&f->d, &f->sink, 0, 1001 + i * 1000, 0, chunk,
					       sizeof(chunk), &f->b),
				 REASM_OK);
	assert_int_equal(f->c.anomalies[REASM_AN_QUEUE_FULL], 1);
	assert_int_equal(f->c.ngaps, 1);
	assert_int_equal(f->c.gaps[0], 1000);
	assert_int_equal(f->c.len, (size_t)n * 1000);
	assert_true(f->d.queued_bytes <= REASM_DIR_MAX_BYTES);
}

static void test_bypass_stops_buffering(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0);
	f->c.bypass_dir = &f->d;
	f->c.bypass_after = 4;
	seg(f, 9, "later"); /* queued, freed by the bypass */
	seg(f, 1, "handshk!");
	assert_stream(f, "handshk!");
	assert_true(f->d.bypass);
	assert_int_equal(f->d.queued_bytes, 0);
	assert_null(f->d.hist);
	seg(f, 14, "0123456789");
	seg(f, 14, "0123456789"); /* retransmission counts once */
	assert_stream(f, "handshk!");
	assert_int_equal(reasm_stream_bytes(&f->d), 8 + 5 + 10);
	assert_int_equal(f->b.used, 0);
}

/* Bypassed before this direction sent a byte: the first segment sets the
 * base, so the count is its length, not its sequence number. */
static void test_bypass_before_base(void **state)
{
	struct fixture *f = *state;
	reasm_bypass(&f->d, &f->b);
	seg(f, 700000000u, "0123456789");
	assert_int_equal(reasm_stream_bytes(&f->d), 10);
}

static void test_budget_refusal(void **state)
{
	struct fixture *f = *state;
	f->b.limit = 100;
	reasm_syn(&f->d, 0);
	static uint8_t big[200];
	assert_int_equal(reasm_segment(&f->d, &f->sink, 0, 50, 0, big, sizeof(big), &f->b),
			 REASM_OVER_BUDGET);
	assert_int_equal(f->d.queued_segs, 0);
	/* In-order data needs no queue and still flows. */
	assert_int_equal(reasm_segment(&f->d, &f->sink, 0, 1, 0, big, 49, &f->b), REASM_OK);
	assert_int_equal(f->c.len, 49);
}

/* The history goes once the FIN is reached and acknowledged (not before:
 * until then a retransmission may still be compared), or at a reset. */
static void test_history_settles_after_acked_fin(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0);
	assert_int_equal(reasm_segment(&f->d, &f->sink, 0, 1, 1, (const uint8_t *)"QUIT\r\n", 6,
				       &f->b),
			 REASM_OK);
	assert_true(f->d.done);
	reasm_ack(&f->d, &f->sink, 0, 7); /* the data, not the FIN */
	reasm_settle(&f->d, 0, &f->b);
	assert_non_null(f->d.hist);
	seg(f, 1, "QUIX\r\n");
	assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 1);
	reasm_ack(&f->d, &f->sink, 0, 8); /* the FIN too */
	reasm_settle(&f->d, 0, &f->b);
	assert_null(f->d.hist);
	assert_int_equal(f->b.used, 0);
	assert_stream(f, "QUIT\r\n");

	struct reasm_dir d2;
	reasm_init(&d2);
	reasm_syn(&d2, 0);
	assert_int_equal(reasm_segment(&d2, &f->sink, 0, 1, 0, (const uint8_t *)"EHLO", 4, &f->b),
			 REASM_OK);
	assert_non_null(d2.hist);
	reasm_settle(&d2, 0, &f->b); /* open: kept */
	assert_non_null(d2.hist);
	reasm_settle(&d2, 1, &f->b); /* reset: gone */
	assert_null(d2.hist);
	reasm_free(&d2, &f->b);
}

static void test_data_after_fin(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0);
	assert_int_equal(reasm_segment(&f->d, &f->sink, 0, 1, 1, (const uint8_t *)"bye", 3, &f->b),
			 REASM_OK);
	assert_true(f->d.done);
	seg(f, 4, "more");
	assert_stream(f, "bye");
	assert_int_equal(f->c.anomalies[REASM_AN_DATA_AFTER_FIN], 1);
	assert_int_equal(f->c.anomaly_bytes[REASM_AN_DATA_AFTER_FIN], 4);
}

static void test_out_of_window_ignored(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 0);
	seg(f, 1, "ok");
	seg(f, 0x80000000u, "junk");
	assert_stream(f, "ok");
	assert_int_equal(f->c.anomalies[REASM_AN_OUT_OF_WINDOW], 1);
	assert_int_equal(f->d.queued_segs, 0);
}

/* Every byte its own segment, fed in reverse: the stream must come out whole. */
static void test_every_split_reversed(void **state)
{
	struct fixture *f = *state;
	const char *msg = "EHLO client.example.test\r\nSTARTTLS\r\n";
	size_t n = strlen(msg);
	reasm_syn(&f->d, 41);
	for (size_t i = n; i-- > 1;)
		assert_int_equal(reasm_segment(&f->d, &f->sink, 0, 42 + (uint32_t)i, 0,
					       (const uint8_t *)msg + i, 1, &f->b),
				 REASM_OK);
	assert_int_equal(f->c.len, 0);
	seg(f, 42, "E");
	assert_stream(f, msg);
}

/* Two segments split at every position, each order: same stream, no anomaly. */
static void test_two_segments_every_split(void **state)
{
	(void)state;
	const char *msg = "220 mx.example.test ESMTP\r\n";
	size_t n = strlen(msg);
	for (size_t cut = 1; cut < n; cut++) {
		for (int order = 0; order < 2; order++) {
			struct fixture *f;
			setup((void **)&f);
			reasm_syn(&f->d, 7);
			const uint8_t *m = (const uint8_t *)msg;
			if (order == 0) {
				reasm_segment(&f->d, &f->sink, 0, 8, 0, m, (uint32_t)cut, &f->b);
				reasm_segment(&f->d, &f->sink, 0, 8 + (uint32_t)cut, 0, m + cut,
					      (uint32_t)(n - cut), &f->b);
			} else {
				reasm_segment(&f->d, &f->sink, 0, 8 + (uint32_t)cut, 0, m + cut,
					      (uint32_t)(n - cut), &f->b);
				reasm_segment(&f->d, &f->sink, 0, 8, 0, m, (uint32_t)cut, &f->b);
			}
			assert_stream(f, msg);
			assert_int_equal(f->c.anomalies[REASM_AN_OVERLAP_CONFLICT], 0);
			teardown((void **)&f);
		}
	}
}

/* A segment far ahead, then a FIN short of it: the sender cannot have
 * sent past its FIN, so those bytes are data-after-fin, never delivered,
 * never a gap. */
static void test_queued_past_a_later_fin(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 1000);
	seg(f, 1001 + 1000000000u, "XY");
	seg(f, 1001, "abc");
	assert_int_equal(reasm_segment(&f->d, &f->sink, 0, 1004, 1, NULL, 0, &f->b), REASM_OK);
	assert_stream(f, "abc");
	assert_int_equal(f->c.anomalies[REASM_AN_DATA_AFTER_FIN], 1);
	assert_int_equal(f->c.anomaly_bytes[REASM_AN_DATA_AFTER_FIN], 2);
	assert_int_equal(f->d.queued_segs, 0);
	assert_int_equal(f->c.ngaps, 0);
}

/* The budget counts what the allocator holds: 1-byte segments cost a
 * whole chunk each (at least 32 bytes), not 1 byte plus a header. */
static void test_budget_counts_real_cost(void **state)
{
	struct fixture *f = *state;
	reasm_syn(&f->d, 1000);
	for (uint32_t i = 0; i < 1000; i++)
		seg(f, 1003 + 2 * i, "z"); /* every other byte: 1,000 pieces */
	assert_int_equal(f->d.queued_segs, 1000);
	assert_true(f->b.used >= 1000 * 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queued_past_a_later_fin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_budget_counts_real_cost, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retransmission_deduplicated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conflict_with_delivered_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conflict_across_history_growth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_history_settles_after_acked_fin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_history_growth_after_wrap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conflict_in_queue_first_wins, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_in_order_segment_overlapping_queue, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_same_overlap_no_conflict, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sequence_wraparound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gap_confirmed_by_ack, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gap_at_flush, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tail_loss_acknowledged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_midstream_start, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_cap_skips_ahead, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bypass_stops_buffering, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_budget_refusal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bypass_before_base, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_after_fin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_window_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_split_reversed, setup, teardown),
	    cmocka_unit_test(test_two_segments_every_split),
	};
	return cmocka_run_group_tests_name("reasm", tests, NULL, NULL);
}
