/*
 * dns.c - DNS response parser (RFC 1035 4.1) over (pointer, length).
 * Names follow compression pointers only strictly backwards, so no message
 * can loop; every read is bounds-checked by the cursor helpers.
 */
#include "decoder/dns.h"

#include <string.h>

#include "util/bytes.h"
#include "util/text.h"

static const char *const result_names[DNS_RESULT_COUNT] = {
    [DNS_OK] = "ok",
    [DNS_NOT_RESPONSE] = "not-response",
    [DNS_TRUNCATED] = "truncated",
    [DNS_BAD_NAME] = "bad-name",
    [DNS_LOOP] = "compression-loop",
};

parse_ret dns_tcp_frame(const uint8_t *p, size_t n)
{
	if (n < 2)
		return PARSE_NEED_MORE;
	size_t len = rd_be16(p);
	return n - 2 >= len ? (parse_ret)(len + 2) : PARSE_NEED_MORE;
}

const char *dns_result_name(enum dns_result r)
{
	return (unsigned)r < DNS_RESULT_COUNT ? result_names[r] : "unknown";
}

/* Reads the name at *off into out (lower case, dotted, no final dot) and
 * moves *off past it in the message (not past pointed-to data). */
static enum dns_result read_name(const uint8_t *msg, size_t len, size_t *off, char *out)
{
	size_t pos = *off, o = 0, limit = *off; /* pointers must go below `limit` */
	int jumped = 0;
	for (;;) {
		if (pos >= len)
			return DNS_TRUNCATED;
		uint8_t l = msg[pos];
		if ((l & 0xc0) == 0xc0) {
			if (pos + 1 >= len)
				return DNS_TRUNCATED;
			size_t target = (size_t)(l & 0x3f) << 8 | msg[pos + 1];
			if (!jumped)
				*off = pos + 2;
			if (target >= limit)
				return DNS_LOOP;
			limit = target;
			pos = target;
			jumped = 1;
			continue;
		}
		if (l & 0xc0)
			return DNS_BAD_NAME; /* 0x40/0x80: obsolete label types */
		pos++;
		if (l == 0)
			break;
		if (pos + l > len)
			return DNS_TRUNCATED;
		if (o + l + 1 >= DNS_MAX_NAME)
			return DNS_BAD_NAME;
		if (o)
			out[o++] = '.';
		for (uint8_t i = 0; i < l; i++) {
			char c = ascii_lower((char)msg[pos + i]);
			/* Peer bytes: anything odd becomes '?', never reaches a sink raw. */
			out[o++] = (c > 0x20 && c < 0x7f && c != '.') ? c : '?';
		}
		pos += l;
	}
	out[o] = 0;
	if (!jumped)
		*off = pos;
	return DNS_OK;
}

enum dns_result dns_parse(const uint8_t *msg, size_t len, dns_rr_fn fn, void *ctx)
{
	if (len < 12)
		return DNS_TRUNCATED;
	struct dns_response r = {.id = rd_be16(msg)};
	uint16_t flags = rd_be16(msg + 2);
	if (!(flags & 0x8000) || (flags & 0x000f) != 0)
		return DNS_NOT_RESPONSE;
	r.aa = (flags & 0x0400) != 0;
	r.ad = (flags & 0x0020) != 0;
	uint16_t qd = rd_be16(msg + 4), an = rd_be16(msg + 6), ns = rd_be16(msg + 8),
		 ar = rd_be16(msg + 10);
	size_t off = 12;
	char name[DNS_MAX_NAME];
	for (uint16_t i = 0; i < qd; i++) {
		enum dns_result e = read_name(msg, len, &off, name);
		if (e)
			return e;
		if (off + 4 > len)
			return DNS_TRUNCATED;
		off += 4;
	}
	static _Thread_local struct dns_rr rr; /* large: not on the stack */
	uint32_t total = (uint32_t)an + ns + ar;
	for (uint32_t i = 0; i < total; i++) {
		memset(&rr, 0, offsetof(struct dns_rr, data));
		enum dns_result e = read_name(msg, len, &off, rr.name);
		if (e)
			return e;
		if (off + 10 > len)
			return DNS_TRUNCATED;
		rr.type = rd_be16(msg + off);
		uint16_t cls = rd_be16(msg + off + 2);
		rr.ttl = rd_be32(msg + off + 4);
		uint16_t rdlen = rd_be16(msg + off + 8);
		off += 10;
		if (off + rdlen > len)
			return DNS_TRUNCATED;
		size_t rd = off, rdend = off + rdlen;
		off = rdend;
		if (cls != 1 || (i >= an && i < (uint32_t)an + ns))
			continue; /* class IN only; the authority section holds no facts we use */
		int want = 1;
		switch (rr.type) {
		case DNS_A:
			want = rdlen == 4;
			if (want)
				memcpy(rr.addr, msg + rd, 4);
			break;
		case DNS_AAAA:
			want = rdlen == 16;
			if (want)
				memcpy(rr.addr, msg + rd, 16);
			break;
		case DNS_MX: {
			if (rdlen < 3)
				return DNS_TRUNCATED;
			rr.preference = rd_be16(msg + rd);
			size_t p = rd + 2;
			/* The exchange may be compressed; it must stay inside the rdata. */
			e = read_name(msg, rdend, &p, rr.host);
			if (e)
				return e;
			break;
		}
		case DNS_TLSA:
			if (rdlen < 4 || rdlen - 3u > sizeof(rr.data)) {
				want = 0;
				break;
			}
			rr.usage = msg[rd];
			rr.selector = msg[rd + 1];
			rr.mtype = msg[rd + 2];
			rr.data_len = rdlen - 3u;
			memcpy(rr.data, msg + rd + 3, rr.data_len);
			break;
		case DNS_TXT: {
			size_t p = rd, o = 0;
			while (p < rdend) {
				size_t sl = msg[p++];
				if (p + sl > rdend)
					return DNS_TRUNCATED;
				size_t take = sl < sizeof(rr.data) - o ? sl : sizeof(rr.data) - o;
				memcpy(rr.data + o, msg + p, take);
				o += take;
				p += sl;
			}
			rr.data_len = o;
			break;
		}
		default: want = 0;
		}
		if (want && fn)
			fn(ctx, &r, &rr);
	}
	return DNS_OK;
}
