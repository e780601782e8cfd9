/*
 * frames.h - builds link/IP/TCP frames byte by byte for unit tests, so
 * decoders are tested on wire bytes rather than on structs.
 */
#ifndef MXW_TEST_FRAMES_H
#define MXW_TEST_FRAMES_H

#include <stdint.h>
#include <string.h>

struct fb {
	uint8_t b[4096];
	size_t n;
};

static inline void fb_u8(struct fb *f, uint8_t v)
{
	f->b[f->n++] = v;
}
static inline void fb_be16(struct fb *f, uint16_t v)
{
	fb_u8(f, (uint8_t)(v >> 8));
	fb_u8(f, (uint8_t)v);
}
static inline void fb_be32(struct fb *f, uint32_t v)
{
	fb_be16(f, (uint16_t)(v >> 16));
	fb_be16(f, (uint16_t)v);
}
static inline void fb_bytes(struct fb *f, const void *p, size_t n)
{
	memcpy(f->b + f->n, p, n);
	f->n += n;
}
static inline void fb_zero(struct fb *f, size_t n)
{
	memset(f->b + f->n, 0, n);
	f->n += n;
}

static inline void fb_eth(struct fb *f, uint16_t type)
{
	static const uint8_t macs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};
	fb_bytes(f, macs, 12);
	fb_be16(f, type);
}

static inline void fb_vlan(struct fb *f, uint16_t tpid_of_next_hdr_after, uint16_t vid)
{
	/* Caller wrote the ethertype 0x8100/0x88a8 already. */
	fb_be16(f, vid);
	fb_be16(f, tpid_of_next_hdr_after);
}

static inline void fb_tcp(struct fb *f, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
			  uint8_t flags, const char *payload)
{
	fb_be16(f, sport);
	fb_be16(f, dport);
	fb_be32(f, seq);
	fb_be32(f, ack);
	fb_u8(f, 5 << 4);
	fb_u8(f, flags);
	fb_be16(f, 65535);
	fb_be16(f, 0);
	fb_be16(f, 0);
	if (payload)
		fb_bytes(f, payload, strlen(payload));
}

/* IPv4 header for a TCP segment with `payload`. */
static inline void fb_ipv4_tcp(struct fb *f, uint32_t src, uint32_t dst, uint16_t sport,
			       uint16_t dport, uint32_t seq, uint8_t flags, const char *payload)
{
	size_t plen = payload ? strlen(payload) : 0;
	fb_u8(f, 0x45);
	fb_u8(f, 0);
	fb_be16(f, (uint16_t)(20 + 20 + plen));
	fb_be16(f, 1);
	fb_be16(f, 0x4000); /* DF */
	fb_u8(f, 64);
	fb_u8(f, 6);
	fb_be16(f, 0);
	fb_be32(f, src);
	fb_be32(f, dst);
	fb_tcp(f, sport, dport, seq, 0, flags, payload);
}

#endif
