/*
 * test_packet.c - L2..L4 decoding per link type, on frames built byte by byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pcap/dlt.h>

#include "capture/packet.h"
#include "frames.h"

static const char payload[] = "EHLO a.example\r\n";

static void assert_smtp_segment(const struct packet *p)
{
	assert_int_equal(p->family, 4);
	assert_int_equal(p->ip_proto, 6);
	assert_int_equal(p->sport, 40000);
	assert_int_equal(p->dport, 25);
	assert_int_equal(p->seq, 1234);
	assert_int_equal(p->tcp_flags, 0x18);
	assert_int_equal(p->payload_len, strlen(payload));
	assert_memory_equal(p->payload, payload, strlen(payload));
	static const uint8_t src[4] = {192, 0, 2, 1}, dst[4] = {198, 51, 100, 25};
	assert_memory_equal(p->src, src, 4);
	assert_memory_equal(p->dst, dst, 4);
}

static void ipv4_segment(struct fb *f)
{
	fb_ipv4_tcp(f, 0xc0000201, 0xc6336419, 40000, 25, 1234, 0x18, payload);
}

static void decode_ok(int dlt, struct fb *f, struct packet *p)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(packet_decode(dlt, f->b, f->n, p), PKT_OK);
}

static void test_ethernet(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	fb_eth(&f, 0x0800);
	ipv4_segment(&f);
	fb_zero(&f, 6); /* Ethernet trailer padding is not payload */
	decode_ok(DLT_EN10MB, &f, &p);
	assert_smtp_segment(&p);
	assert_int_equal(p.vlan_depth, 0);
}

static void test_vlan_and_qinq(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	fb_eth(&f, 0x8100);
	fb_vlan(&f, 0x0800, 100);
	ipv4_segment(&f);
	decode_ok(DLT_EN10MB, &f, &p);
	assert_smtp_segment(&p);
	assert_int_equal(p.vlan_depth, 1);

	f.n = 0;
	fb_eth(&f, 0x88a8);
	fb_vlan(&f, 0x8100, 200);
	fb_vlan(&f, 0x0800, 100);
	ipv4_segment(&f);
	decode_ok(DLT_EN10MB, &f, &p);
	assert_smtp_segment(&p);
	assert_int_equal(p.vlan_depth, 2);
}

static void test_linux_sll(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	fb_be16(&f, 0); /* packet type: to us */
	fb_be16(&f, 1); /* ARPHRD_ETHER */
	fb_be16(&f, 6);
	fb_zero(&f, 8);
	fb_be16(&f, 0x0800);
	ipv4_segment(&f);
	decode_ok(DLT_LINUX_SLL, &f, &p);
	assert_smtp_segment(&p);
}

static void test_linux_sll2(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	fb_be16(&f, 0x0800); /* protocol first in SLL2 */
	fb_be16(&f, 0);
	fb_be32(&f, 3); /* ifindex */
	fb_be16(&f, 1);
	fb_u8(&f, 4);
	fb_u8(&f, 6);
	fb_zero(&f, 8);
	ipv4_segment(&f);
	decode_ok(DLT_LINUX_SLL2, &f, &p);
	assert_smtp_segment(&p);
}

static void test_null_and_loop(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	/* DLT_NULL in little-endian host order, AF_INET = 2 */
	fb_u8(&f, 2);
	fb_zero(&f, 3);
	ipv4_segment(&f);
	decode_ok(DLT_NULL, &f, &p);
	assert_smtp_segment(&p);

	/* Big-endian host writing DLT_NULL */
	f.n = 0;
	fb_be32(&f, 2);
	ipv4_segment(&f);
	decode_ok(DLT_NULL, &f, &p);
	assert_smtp_segment(&p);

	/* DLT_LOOP is always network order; macOS AF_INET6 = 30 */
	f.n = 0;
	fb_be32(&f, 30);
	fb_be32(&f, 0x60000000);
	fb_be16(&f, 20);
	fb_u8(&f, 6);
	fb_u8(&f, 64);
	fb_zero(&f, 15);
	fb_u8(&f, 1);
	fb_zero(&f, 15);
	fb_u8(&f, 2);
	fb_tcp(&f, 1025, 25, 7, 0, 0x02, NULL);
	decode_ok(DLT_LOOP, &f, &p);
	assert_int_equal(p.family, 6);
	assert_int_equal(p.dport, 25);
	assert_int_equal(p.tcp_flags, 0x02);
}

static void test_raw_ip(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	ipv4_segment(&f);
	decode_ok(DLT_RAW, &f, &p);
	assert_smtp_segment(&p);
	decode_ok(DLT_IPV4, &f, &p);
	assert_smtp_segment(&p);
}

/* IPv6 with hop-by-hop, routing and destination options before TCP. */
static void build_ipv6_ext(struct fb *f)
{
	size_t plen = strlen(payload);
	fb_be32(f, 0x60000000);
	fb_be16(f, (uint16_t)(8 + 24 + 16 + 20 + plen));
	fb_u8(f, 0); /* hop-by-hop */
	fb_u8(f, 64);
	static const uint8_t s6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	static const uint8_t d6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x25};
	fb_bytes(f, s6, 16);
	fb_bytes(f, d6, 16);
	fb_u8(f, 43); /* hop-by-hop: next routing, 8 bytes */
	fb_u8(f, 0);
	fb_zero(f, 6);
	fb_u8(f, 60); /* routing: next dest opts, (2+1)*8 = 24 bytes */
	fb_u8(f, 2);
	fb_zero(f, 22);
	fb_u8(f, 6); /* dest opts: next TCP, (1+1)*8 = 16 bytes */
	fb_u8(f, 1);
	fb_zero(f, 14);
	fb_tcp(f, 40000, 25, 1234, 0, 0x18, payload);
}

static void test_ipv6_extension_headers(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	fb_eth(&f, 0x86dd);
	build_ipv6_ext(&f);
	decode_ok(DLT_EN10MB, &f, &p);
	assert_int_equal(p.family, 6);
	assert_int_equal(p.sport, 40000);
	assert_int_equal(p.dport, 25);
	assert_int_equal(p.payload_len, strlen(payload));
	assert_memory_equal(p.payload, payload, strlen(payload));
	assert_int_equal(p.dst[15], 0x25);
}

static void test_fragments_not_decoded(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	ipv4_segment(&f);
	f.b[6] = 0x20; /* MF */
	assert_int_equal(packet_decode(DLT_RAW, f.b, f.n, &p), PKT_FRAGMENT);

	f.n = 0;
	fb_be32(&f, 0x60000000);
	fb_be16(&f, 8 + 20);
	fb_u8(&f, 44);
	fb_u8(&f, 64);
	fb_zero(&f, 32);
	fb_u8(&f, 6);
	fb_u8(&f, 0);
	fb_be16(&f, 0x0001); /* offset 0, more fragments */
	fb_be32(&f, 99);
	fb_tcp(&f, 1, 25, 0, 0, 0x02, NULL);
	assert_int_equal(packet_decode(DLT_RAW, f.b, f.n, &p), PKT_FRAGMENT);
	f.b[40 + 3] = 0; /* atomic fragment: offset 0, no MF -> whole datagram */
	assert_int_equal(packet_decode(DLT_RAW, f.b, f.n, &p), PKT_OK);
	assert_int_equal(p.dport, 25);
}

static void test_malformed_headers(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	ipv4_segment(&f);
	f.b[0] = 0x44; /* IHL 16 bytes */
	assert_int_equal(packet_decode(DLT_RAW, f.b, f.n, &p), PKT_MALFORMED);
	f.b[0] = 0x45;
	f.b[20 + 12] = 0x40; /* TCP data offset 16 bytes */
	assert_int_equal(packet_decode(DLT_RAW, f.b, f.n, &p), PKT_MALFORMED);
	f.b[20 + 12] = 0xf0; /* TCP data offset 60 bytes > segment */
	assert_int_equal(packet_decode(DLT_RAW, f.b, f.n, &p), PKT_MALFORMED);
	assert_int_equal(packet_decode(147, f.b, f.n, &p), PKT_BAD_LINKTYPE);

	/* An IPv6 extension header claiming more than the payload length. */
	f.n = 0;
	build_ipv6_ext(&f);
	f.b[40 + 8 + 1] = 200;
	assert_int_equal(packet_decode(DLT_RAW, f.b, f.n, &p), PKT_MALFORMED);
}

/* The IP header claims more than was captured: payload is clamped. */
static void test_snaplen_clamps_payload(void **state)
{
	(void)state;
	struct fb f = {0};
	struct packet p;
	ipv4_segment(&f);
	decode_ok(DLT_RAW, &f, &p);
	memset(&p, 0, sizeof(p));
	assert_int_equal(packet_decode(DLT_RAW, f.b, f.n - 5, &p), PKT_OK);
	assert_int_equal(p.payload_len, strlen(payload) - 5);
	assert_int_equal(p.payload_wire_len, strlen(payload));
}

/* Every prefix of every frame decodes without reading past it (ASan checks
 * the reads: each prefix is copied into an exactly sized heap block). */
static void test_every_truncation(void **state)
{
	(void)state;
	struct fb frames[4] = {0};
	int dlts[4] = {DLT_EN10MB, DLT_EN10MB, DLT_LINUX_SLL2, DLT_RAW};
	fb_eth(&frames[0], 0x86dd);
	build_ipv6_ext(&frames[0]);
	fb_eth(&frames[1], 0x88a8);
	fb_vlan(&frames[1], 0x8100, 1);
	fb_vlan(&frames[1], 0x0800, 2);
	ipv4_segment(&frames[1]);
	fb_be16(&frames[2], 0x86dd);
	fb_zero(&frames[2], 18);
	build_ipv6_ext(&frames[2]);
	build_ipv6_ext(&frames[3]);
	for (int i = 0; i < 4; i++) {
		for (size_t len = 0; len < frames[i].n; len++) {
			uint8_t *copy = malloc(len ? len : 1);
			memcpy(copy, frames[i].b, len);
			struct packet p;
			enum packet_result r = packet_decode(dlts[i], copy, len, &p);
			assert_true(r == PKT_TRUNCATED || r == PKT_OK);
			if (r == PKT_OK)
				assert_true(p.payload + p.payload_len <= copy + len);
			free(copy);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ethernet),
	    cmocka_unit_test(test_vlan_and_qinq),
	    cmocka_unit_test(test_linux_sll),
	    cmocka_unit_test(test_linux_sll2),
	    cmocka_unit_test(test_null_and_loop),
	    cmocka_unit_test(test_raw_ip),
	    cmocka_unit_test(test_ipv6_extension_headers),
	    cmocka_unit_test(test_fragments_not_decoded),
	    cmocka_unit_test(test_malformed_headers),
	    cmocka_unit_test(test_snaplen_clamps_payload),
	    cmocka_unit_test(test_every_truncation),
	};
	return cmocka_run_group_tests_name("packet", tests, NULL, NULL);
}
