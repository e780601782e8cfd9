/*
 * test_dns.c - passive DNS parser on crafted messages: a response with
 * compression in owner names and MX targets, and the malformed shapes a
 * sensor must survive: compression loops (self, forward, mutual), truncated
 * names and records, counts beyond the packet, over-long labels and names.
 * Every prefix of a valid message is also parsed (ASan checks the reads).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decoder/dns.h"
#include "frames.h"

struct got {
	struct dns_rr rr[16];
	int n;
	int ad;
};

static void collect(void *ctx, const struct dns_response *m, const struct dns_rr *rr)
{
	struct got *g = ctx;
	g->ad = m->ad;
	if (g->n < 16)
		g->rr[g->n++] = *rr;
}

static void name(struct fb *f, const char *dotted)
{
	while (*dotted) {
		const char *dot = strchr(dotted, '.');
		size_t l = dot ? (size_t)(dot - dotted) : strlen(dotted);
		fb_u8(f, (uint8_t)l);
		fb_bytes(f, dotted, l);
		dotted += l + (dot ? 1 : 0);
	}
	fb_u8(f, 0);
}

/* example.test MX 10 mx.example.test, plus mx A 192.0.2.25 and a TLSA in
 * the additional section; names compressed against the question. */
static void build_response(struct fb *f, int ad)
{
	fb_be16(f, 0x1234);
	fb_be16(f, 0x8180 | (ad ? 0x20 : 0)); /* QR RD RA [AD] */
	fb_be16(f, 1);
	fb_be16(f, 1);
	fb_be16(f, 0);
	fb_be16(f, 2);
	name(f, "Example.TEST"); /* at offset 12 */
	fb_be16(f, 15);
	fb_be16(f, 1);
	/* answer: owner -> 12, MX 10 "mx" + pointer to 12 */
	fb_be16(f, 0xc00c);
	fb_be16(f, 15);
	fb_be16(f, 1);
	fb_be32(f, 300);
	fb_be16(f, 2 + 1 + 2 + 2);
	fb_be16(f, 10);
	size_t mx_at = f->n;
	fb_u8(f, 2);
	fb_bytes(f, "mx", 2);
	fb_be16(f, 0xc00c);
	/* additional: mx.example.test A 192.0.2.25, owner -> mx_at */
	fb_be16(f, (uint16_t)(0xc000 | mx_at));
	fb_be16(f, 1);
	fb_be16(f, 1);
	fb_be32(f, 60);
	fb_be16(f, 4);
	fb_be32(f, 0xc0000219);
	/* additional: _25._tcp.mx.example.test TLSA 3 1 1 <32 bytes> */
	fb_u8(f, 3);
	fb_bytes(f, "_25", 3);
	fb_u8(f, 4);
	fb_bytes(f, "_tcp", 4);
	fb_be16(f, (uint16_t)(0xc000 | mx_at));
	fb_be16(f, 52);
	fb_be16(f, 1);
	fb_be32(f, 60);
	fb_be16(f, 3 + 32);
	fb_u8(f, 3);
	fb_u8(f, 1);
	fb_u8(f, 1);
	for (int i = 0; i < 32; i++)
		fb_u8(f, (uint8_t)i);
}

static void test_response(void **state)
{
	(void)state;
	struct fb f = {0};
	struct got g = {0};
	build_response(&f, 1);
	/* With one additional record announced, the TLSA after it is ignored. */
	f.b[11] = 1;
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_OK);
	assert_int_equal(g.n, 2);
	memset(&g, 0, sizeof(g));
	f.b[11] = 2;
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_OK);
	assert_int_equal(g.n, 3);
	assert_true(g.ad);
	assert_int_equal(g.rr[0].type, DNS_MX);
	assert_string_equal(g.rr[0].name, "example.test");
	assert_string_equal(g.rr[0].host, "mx.example.test");
	assert_int_equal(g.rr[0].preference, 10);
	assert_int_equal(g.rr[1].type, DNS_A);
	assert_string_equal(g.rr[1].name, "mx.example.test");
	assert_int_equal(g.rr[1].addr[3], 25);
	assert_int_equal(g.rr[2].type, DNS_TLSA);
	assert_string_equal(g.rr[2].name, "_25._tcp.mx.example.test");
	assert_int_equal(g.rr[2].data_len, 32);
	assert_int_equal(g.rr[2].data[31], 31);
}

static void test_every_prefix(void **state)
{
	(void)state;
	struct fb f = {0};
	build_response(&f, 0);
	for (size_t len = 0; len < f.n; len++) {
		uint8_t *copy = malloc(len ? len : 1);
		memcpy(copy, f.b, len);
		struct got g = {0};
		assert_int_equal(dns_parse(copy, len, collect, &g), DNS_TRUNCATED);
		free(copy);
	}
}

static void header(struct fb *f, uint16_t qd, uint16_t an)
{
	fb_be16(f, 1);
	fb_be16(f, 0x8180);
	fb_be16(f, qd);
	fb_be16(f, an);
	fb_be16(f, 0);
	fb_be16(f, 0);
}

static void test_compression_loops(void **state)
{
	(void)state;
	struct got g = {0};
	struct fb f = {0};
	header(&f, 1, 0);
	fb_be16(&f, 0xc00c); /* points at itself */
	fb_be32(&f, 0x000f0001);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_LOOP);

	f.n = 0;
	header(&f, 1, 0);
	fb_be16(&f, 0xc00e); /* points forward */
	fb_be16(&f, 0xc00c); /* which points back: mutual loop */
	fb_be32(&f, 0x000f0001);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_LOOP);

	f.n = 0;
	header(&f, 1, 0);
	fb_u8(&f, 1);
	fb_u8(&f, 'a');
	fb_be16(&f, 0xc00c); /* "a" then back to the start of this very name */
	fb_be32(&f, 0x000f0001);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_LOOP);
}

static void test_bad_names_and_counts(void **state)
{
	(void)state;
	struct got g = {0};
	struct fb f = {0};
	header(&f, 1, 0);
	fb_u8(&f, 0x40); /* extended label type */
	fb_be32(&f, 0x000f0001);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_BAD_NAME);

	f.n = 0;
	header(&f, 1, 0);
	for (int i = 0; i < 5; i++) { /* 5 x 63-byte labels: 320 > 255 */
		fb_u8(&f, 63);
		for (int k = 0; k < 63; k++)
			fb_u8(&f, 'a');
	}
	fb_u8(&f, 0);
	fb_be32(&f, 0x000f0001);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_BAD_NAME);

	f.n = 0;
	header(&f, 1, 50); /* 50 answers promised, none present */
	name(&f, "a.test");
	fb_be32(&f, 0x000f0001);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_TRUNCATED);

	f.n = 0;
	header(&f, 0, 1);
	name(&f, "a.test");
	fb_be16(&f, 1);
	fb_be16(&f, 1);
	fb_be32(&f, 5);
	fb_be16(&f, 400); /* rdlength beyond the message */
	fb_be32(&f, 0x01020304);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_TRUNCATED);

	/* An MX whose target runs out of its rdata. */
	f.n = 0;
	header(&f, 0, 1);
	name(&f, "a.test");
	fb_be16(&f, 15);
	fb_be16(&f, 1);
	fb_be32(&f, 5);
	fb_be16(&f, 4);
	fb_be16(&f, 10);
	fb_u8(&f, 5);
	fb_u8(&f, 'x');
	fb_bytes(&f, "yyyy", 4);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_TRUNCATED);

	/* A query is not a response; an error response carries no facts. */
	f.n = 0;
	fb_be16(&f, 1);
	fb_be16(&f, 0x0100);
	fb_zero(&f, 8);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_NOT_RESPONSE);
	f.b[3] = 0x83; /* NXDOMAIN */
	f.b[2] = 0x81;
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_NOT_RESPONSE);
	assert_int_equal(g.n, 0);
}

static void test_hostile_bytes_in_names(void **state)
{
	(void)state;
	struct got g = {0};
	struct fb f = {0};
	header(&f, 0, 1);
	fb_u8(&f, 5);
	fb_bytes(&f, "a\x1b.\n\x01", 5);
	fb_u8(&f, 0);
	fb_be16(&f, 1);
	fb_be16(&f, 1);
	fb_be32(&f, 5);
	fb_be16(&f, 4);
	fb_be32(&f, 0x7f000001);
	assert_int_equal(dns_parse(f.b, f.n, collect, &g), DNS_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.rr[0].name, "a????");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_response),
	    cmocka_unit_test(test_every_prefix),
	    cmocka_unit_test(test_compression_loops),
	    cmocka_unit_test(test_bad_names_and_counts),
	    cmocka_unit_test(test_hostile_bytes_in_names),
	};
	return cmocka_run_group_tests_name("dns", tests, NULL, NULL);
}
