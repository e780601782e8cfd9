/*
 * test_tls.c - the TLS handshake walker on real handshake bytes taken from
 * the corpus captures (Postfix + swaks), fed whole, split at every byte
 * across two segments, and re-framed into records of every small size so
 * that handshake messages straddle records. The leaf certificate must hash
 * like the server's certificate file on disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "capture/capture.h"
#include "decoder/smtp.h"
#include "decoder/tls.h"
#include "decoder/x509.h"
#include "stream/flow.h"

struct streams {
	uint8_t *buf[2];
	size_t len[2];
	int done;
};

static void s_data(void *ctx, struct flow *f, int dir, const uint8_t *p, size_t n)
{
	struct streams *s = ctx;
	if (f->key.port[1] != 25 || s->done)
		return;
	s->buf[dir] = realloc(s->buf[dir], s->len[dir] + n);
	memcpy(s->buf[dir] + s->len[dir], p, n);
	s->len[dir] += n;
}

static void s_close(void *ctx, struct flow *f)
{
	struct streams *s = ctx;
	if (f->key.port[1] == 25 && s->len[0])
		s->done = 1;
}

static void s_packet(void *ctx, const struct packet *p)
{
	flow_table_packet(ctx, p);
}

/* Both directions' bytes from where TLS starts, for the first SMTP flow. */
static void load_tls(const char *path, struct streams *out)
{
	struct streams raw = {0};
	struct flow_config cfg;
	flow_config_defaults(&cfg);
	struct flow_consumer c = {.ctx = &raw, .data = s_data, .close = s_close};
	struct flow_table *t = flow_table_new(&cfg, &c);
	struct capture_counters counters = {0};
	char err[256];
	assert_int_equal(
	    capture_read_file(path, s_packet, t, NULL, NULL, &counters, err, sizeof(err)), 0);
	flow_table_flush(t);
	flow_table_free(t);
	assert_true(raw.len[0] > 0 && raw.len[1] > 0);

	/* Let the SMTP decoder find the switch: replay in capture order is not
	 * needed here because each side's TLS start depends only on the
	 * STARTTLS exchange, which we feed reply by reply. */
	struct smtp *m = smtp_new();
	size_t off[2] = {0, 0};
	while (!(smtp_tls_started(m, 0) && smtp_tls_started(m, 1))) {
		int progressed = 0;
		for (int d = 1; d >= 0; d--) {
			if (smtp_tls_started(m, d) || off[d] >= raw.len[d])
				continue;
			const uint8_t *nl = memchr(raw.buf[d] + off[d], '\n', raw.len[d] - off[d]);
			size_t take = nl ? (size_t)(nl - (raw.buf[d] + off[d])) + 1
					 : raw.len[d] - off[d];
			off[d] += smtp_feed(m, d, raw.buf[d] + off[d], take);
			progressed = 1;
		}
		assert_true(progressed);
	}
	smtp_free(m);
	memset(out, 0, sizeof(*out));
	for (int d = 0; d < 2; d++) {
		out->len[d] = raw.len[d] - off[d];
		out->buf[d] = malloc(out->len[d]);
		memcpy(out->buf[d], raw.buf[d] + off[d], out->len[d]);
		free(raw.buf[d]);
	}
	assert_int_equal(out->buf[0][0], 0x16);
	assert_int_equal(out->buf[1][0], 0x16);
}

static void streams_free(struct streams *s)
{
	free(s->buf[0]);
	free(s->buf[1]);
}

static void der_sha256_of_pem(const char *path, uint8_t out[32])
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	assert_true(n > 0);
	unsigned int mdlen = 0;
	EVP_Digest(der, (size_t)n, out, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	X509_free(x);
}

static void assert_same_facts(const struct tls_facts *a, const struct tls_facts *b)
{
	assert_int_equal(a->client_hello, b->client_hello);
	assert_int_equal(a->server_hello, b->server_hello);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->cipher, b->cipher);
	assert_string_equal(a->sni, b->sni);
	assert_int_equal(a->n_offered_versions, b->n_offered_versions);
	assert_int_equal(a->n_certs, b->n_certs);
	for (int i = 0; i < a->n_certs; i++) {
		assert_int_equal(a->certs[i].len, b->certs[i].len);
		assert_memory_equal(a->certs[i].der, b->certs[i].der, a->certs[i].len);
	}
	assert_int_equal(a->handshake_complete, b->handshake_complete);
	assert_int_equal(a->alert_seen, b->alert_seen);
}

/* Feeds client then server in record-sized turns, as on the wire. */
static struct tls *feed_both(const struct streams *s, size_t split_dir, size_t cut)
{
	struct tls *t = tls_new();
	for (int d = 0; d < 2; d++) {
		if ((size_t)d == split_dir && cut) {
			tls_feed(t, d, s->buf[d], cut);
			tls_feed(t, d, s->buf[d] + cut, s->len[d] - cut);
		} else {
			tls_feed(t, d, s->buf[d], s->len[d]);
		}
	}
	return t;
}

static void test_tls12_facts(void **state)
{
	(void)state;
	struct streams s;
	load_tls("pcaps/smtp-starttls-tls12.pcap", &s);
	struct tls *t = feed_both(&s, 2, 0);
	const struct tls_facts *f = tls_facts(t);
	assert_true(f->client_hello);
	assert_true(f->server_hello);
	assert_int_equal(f->version, 0x0303);
	char name[64];
	tls_cipher_name(f->cipher, name, sizeof(name));
	assert_memory_equal(name, "TLS_", 4);
	assert_string_equal(f->sni, "mx.example.test");
	assert_true(f->n_certs >= 1);
	assert_true(f->handshake_complete);
	assert_true(tls_done(t));
	uint8_t want[32], got[32];
	unsigned int mdlen = 0;
	der_sha256_of_pem("pcaps/certs/mx.example.test.pem", want);
	EVP_Digest(f->certs[0].der, f->certs[0].len, got, &mdlen, EVP_sha256(), NULL);
	assert_memory_equal(want, got, 32);
	tls_free(t);
	streams_free(&s);
}

static void test_tls13_hides_certificate(void **state)
{
	(void)state;
	struct streams s;
	load_tls("pcaps/smtp-starttls-tls13.pcap", &s);
	struct tls *t = feed_both(&s, 2, 0);
	const struct tls_facts *f = tls_facts(t);
	assert_int_equal(f->version, 0x0304);
	assert_int_equal(f->n_certs, 0);
	assert_false(f->certificate_seen);
	assert_true(f->handshake_complete);
	int has13 = 0;
	for (int i = 0; i < f->n_offered_versions; i++)
		has13 |= f->offered_versions[i] == 0x0304;
	assert_true(has13);
	tls_free(t);
	streams_free(&s);
}

/* ClientHello, ServerHello and Certificate split at every byte. */
static void test_every_split_point(void **state)
{
	(void)state;
	struct streams s;
	load_tls("pcaps/smtp-starttls-tls12.pcap", &s);
	struct tls *whole = feed_both(&s, 2, 0);
	for (int d = 0; d < 2; d++) {
		for (size_t cut = 1; cut < s.len[d]; cut++) {
			struct tls *t = feed_both(&s, (size_t)d, cut);
			assert_same_facts(tls_facts(whole), tls_facts(t));
			tls_free(t);
		}
	}
	tls_free(whole);
	streams_free(&s);
}

/* Rewrites a direction's plaintext handshake records into records carrying
 * at most `size` bytes each, so every message crosses record boundaries. */
static size_t reframe(const uint8_t *in, size_t n, size_t size, uint8_t *out)
{
	uint8_t hs[65536];
	size_t hs_len = 0, off = 0, o = 0;
	while (off + 5 <= n && in[off] == 0x16) {
		size_t len = (size_t)in[off + 3] << 8 | in[off + 4];
		memcpy(hs + hs_len, in + off + 5, len);
		hs_len += len;
		off += 5 + len;
	}
	for (size_t i = 0; i < hs_len; i += size) {
		size_t m = hs_len - i < size ? hs_len - i : size;
		out[o++] = 0x16;
		out[o++] = in[1];
		out[o++] = in[2];
		out[o++] = (uint8_t)(m >> 8);
		out[o++] = (uint8_t)m;
		memcpy(out + o, hs + i, m);
		o += m;
	}
	memcpy(out + o, in + off, n - off);
	return o + n - off;
}

static void test_messages_across_records(void **state)
{
	(void)state;
	struct streams s;
	load_tls("pcaps/smtp-starttls-tls12.pcap", &s);
	struct tls *whole = feed_both(&s, 2, 0);
	static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 13, 64, 100, 511, 1000, 4096};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct streams r;
		for (int d = 0; d < 2; d++) {
			r.buf[d] = malloc(s.len[d] * 6 + 64);
			r.len[d] = reframe(s.buf[d], s.len[d], sizes[i], r.buf[d]);
		}
		struct tls *t = feed_both(&r, 2, 0);
		assert_same_facts(tls_facts(whole), tls_facts(t));
		tls_free(t);
		streams_free(&r);
	}
	tls_free(whole);
	streams_free(&s);
}

static void test_truncations_and_garbage(void **state)
{
	(void)state;
	struct streams s;
	load_tls("pcaps/smtp-starttls-tls12.pcap", &s);
	for (size_t cut = 0; cut < s.len[1]; cut += 7) {
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, s.buf[1], cut);
		struct tls *t = tls_new();
		tls_feed(t, 1, copy, cut);
		tls_free(t);
		free(copy);
	}
	/* Every byte of the server's first records flipped in turn. */
	for (size_t i = 0; i < s.len[1] && i < 1500; i++) {
		uint8_t *copy = malloc(s.len[1]);
		memcpy(copy, s.buf[1], s.len[1]);
		copy[i] ^= 0xa5;
		struct tls *t = tls_new();
		tls_feed(t, 0, s.buf[0], s.len[0]);
		tls_feed(t, 1, copy, s.len[1]);
		tls_free(t);
		free(copy);
	}
	struct tls *t = tls_new();
	tls_feed(t, 0, (const uint8_t *)"GET / HTTP/1.1\r\n", 16);
	tls_feed(t, 1, (const uint8_t *)"HTTP/1.1 200 OK\r\n", 17);
	assert_int_equal(tls_facts(t)->anomalies[TLS_AN_NOT_TLS][0], 1);
	assert_true(tls_done(t));
	tls_free(t);
	streams_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tls12_facts),
	    cmocka_unit_test(test_tls13_hides_certificate),
	    cmocka_unit_test(test_every_split_point),
	    cmocka_unit_test(test_messages_across_records),
	    cmocka_unit_test(test_truncations_and_garbage),
	};
	int rc = cmocka_run_group_tests_name("tls", tests, NULL, NULL);
	x509_cleanup();
	return rc;
}
