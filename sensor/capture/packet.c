/*
 * packet.c - link, network and transport header decoding.
 * Lengths are clamped to min(captured, header-claimed) before use, and every
 * read goes through the cursor helpers, so a lying or short frame only ever
 * yields PKT_TRUNCATED or PKT_MALFORMED.
 */
#include "capture/packet.h"

#include <pcap/dlt.h>
#include <string.h>

#include "util/bytes.h"

#define ETH_IPV4          0x0800
#define ETH_IPV6          0x86DD
#define ETH_VLAN          0x8100
#define ETH_QINQ          0x88A8
#define ETH_QINQ_OLD      0x9100
#define ETH_MPLS          0x8847
#define ETH_MPLS_MC       0x8848
#define ETH_PPPOE_SESSION 0x8864

#define MAX_VLAN_TAGS        8
#define MAX_MPLS_LABELS      8
#define MAX_IPV6_EXT_HEADERS 16

static const char *const result_names[PKT_RESULT_COUNT] = {
    [PKT_OK] = "ok",
    [PKT_NOT_IP] = "not-ip",
    [PKT_NOT_TCPUDP] = "not-tcp-udp",
    [PKT_FRAGMENT] = "ip-fragment",
    [PKT_TRUNCATED] = "truncated",
    [PKT_MALFORMED] = "malformed",
    [PKT_BAD_LINKTYPE] = "unsupported-linktype",
};

const char *packet_result_name(enum packet_result r)
{
	return (unsigned)r < PKT_RESULT_COUNT ? result_names[r] : "unknown";
}

int packet_linktype_supported(int linktype)
{
	switch (linktype) {
	case DLT_NULL:
	case DLT_LOOP:
	case DLT_EN10MB:
	case DLT_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
	case DLT_LINUX_SLL:
	case DLT_LINUX_SLL2: return 1;
	default: return 0;
	}
}

static enum packet_result decode_l4(struct cursor *c, uint8_t proto, uint32_t claimed,
				    struct packet *out)
{
	/* `claimed` is the transport length the IP header announces; the cursor
	 * holds only what was captured of it. */
	size_t avail = cur_left(c);
	const uint8_t *h = cur_ptr(c);

	out->ip_proto = proto;
	if (proto == 6) {
		if (avail < 20)
			return PKT_TRUNCATED;
		size_t doff = (size_t)(h[12] >> 4) * 4;
		if (doff < 20 || doff > claimed)
			return PKT_MALFORMED;
		if (doff > avail)
			return PKT_TRUNCATED;
		out->sport = rd_be16(h);
		out->dport = rd_be16(h + 2);
		out->seq = rd_be32(h + 4);
		out->ack = rd_be32(h + 8);
		out->tcp_flags = h[13] & 0x3f;
		out->window = rd_be16(h + 14);
		out->payload = h + doff;
		out->payload_wire_len = claimed - (uint32_t)doff;
		size_t cap = avail - doff;
		out->payload_len = cap < out->payload_wire_len ? (uint32_t)cap
							       : out->payload_wire_len;
		return PKT_OK;
	}
	if (proto == 17) {
		if (avail < 8)
			return PKT_TRUNCATED;
		if (claimed < 8)
			return PKT_MALFORMED;
		out->sport = rd_be16(h);
		out->dport = rd_be16(h + 2);
		out->payload = h + 8;
		out->payload_wire_len = claimed - 8;
		size_t cap = avail - 8;
		out->payload_len = cap < out->payload_wire_len ? (uint32_t)cap
							       : out->payload_wire_len;
		return PKT_OK;
	}
	return PKT_NOT_TCPUDP;
}

static enum packet_result decode_ipv4(struct cursor *c, struct packet *out)
{
	size_t avail = cur_left(c);
	const uint8_t *h = cur_ptr(c);

	if (avail < 20)
		return PKT_TRUNCATED;
	if ((h[0] >> 4) != 4)
		return PKT_MALFORMED;
	size_t ihl = (size_t)(h[0] & 0x0f) * 4;
	size_t total = rd_be16(h + 2);
	/* Segmentation offload on the capturing host can leave total length 0:
	 * trust what was captured then. */
	if (total == 0)
		total = avail;
	if (ihl < 20 || total < ihl)
		return PKT_MALFORMED;
	if (ihl > avail)
		return PKT_TRUNCATED;
	uint16_t frag = rd_be16(h + 6);
	out->family = 4;
	memcpy(out->src, h + 12, 4);
	memcpy(out->dst, h + 16, 4);
	if ((frag & 0x1fff) != 0 || (frag & 0x2000) != 0)
		return PKT_FRAGMENT;
	/* Ethernet padding beyond the IP total length is not payload. */
	struct cursor l4;
	size_t cap = total < avail ? total : avail;
	out->l3 = h;
	out->l3_len = (uint32_t)cap;
	cur_init(&l4, h + ihl, cap - ihl);
	return decode_l4(&l4, h[9], (uint32_t)(total - ihl), out);
}

static int ipv6_is_ext(uint8_t nh)
{
	return nh == 0 || nh == 43 || nh == 44 || nh == 51 || nh == 60 || nh == 135 || nh == 139 ||
	       nh == 140;
}

static enum packet_result decode_ipv6(struct cursor *c, struct packet *out)
{
	size_t avail = cur_left(c);
	const uint8_t *h = cur_ptr(c);

	if (avail < 40)
		return PKT_TRUNCATED;
	if ((h[0] >> 4) != 6)
		return PKT_MALFORMED;
	size_t plen = rd_be16(h + 4);
	if (plen == 0) /* jumbogram or offload: trust the capture */
		plen = avail - 40;
	out->family = 6;
	memcpy(out->src, h + 8, 16);
	memcpy(out->dst, h + 24, 16);

	size_t cap = avail - 40 < plen ? avail - 40 : plen;
	out->l3 = h;
	out->l3_len = (uint32_t)(cap + 40);
	struct cursor x;
	cur_init(&x, h + 40, cap);
	uint8_t nh = h[6];
	size_t walked = 0; /* bytes of extension headers, counted against plen */
	for (int i = 0; ipv6_is_ext(nh); i++) {
		if (i >= MAX_IPV6_EXT_HEADERS)
			return PKT_MALFORMED;
		if (!cur_has(&x, 8))
			return PKT_TRUNCATED;
		const uint8_t *e = cur_ptr(&x);
		size_t elen;
		if (nh == 44) {
			uint16_t offmf = rd_be16(e + 2);
			if ((offmf & 0xfff8) != 0 || (offmf & 1) != 0)
				return PKT_FRAGMENT;
			elen = 8; /* an atomic fragment carries the whole datagram */
		} else if (nh == 51) {
			elen = ((size_t)e[1] + 2) * 4;
		} else {
			elen = ((size_t)e[1] + 1) * 8;
		}
		if (walked + elen > plen)
			return PKT_MALFORMED;
		if (!cur_skip(&x, elen))
			return PKT_TRUNCATED;
		walked += elen;
		nh = e[0];
	}
	struct cursor l4;
	cur_init(&l4, cur_ptr(&x), cur_left(&x));
	return decode_l4(&l4, nh, (uint32_t)(plen - walked), out);
}

static enum packet_result decode_by_version(struct cursor *c, struct packet *out)
{
	if (!cur_has(c, 1))
		return PKT_TRUNCATED;
	switch (cur_ptr(c)[0] >> 4) {
	case 4: return decode_ipv4(c, out);
	case 6: return decode_ipv6(c, out);
	default: return PKT_NOT_IP;
	}
}

/* Walks VLAN tags, MPLS labels and PPPoE down to IP. */
static enum packet_result decode_ethertype(struct cursor *c, uint16_t type, struct packet *out)
{
	for (int tags = 0;; tags++) {
		switch (type) {
		case ETH_IPV4: return decode_ipv4(c, out);
		case ETH_IPV6: return decode_ipv6(c, out);
		case ETH_VLAN:
		case ETH_QINQ:
		case ETH_QINQ_OLD:
			if (tags >= MAX_VLAN_TAGS)
				return PKT_MALFORMED;
			if (!cur_skip(c, 2))
				return PKT_TRUNCATED;
			type = cur_be16(c);
			if (!c->ok)
				return PKT_TRUNCATED;
			out->vlan_depth++;
			continue;
		case ETH_MPLS:
		case ETH_MPLS_MC:
			for (int l = 0;; l++) {
				if (l >= MAX_MPLS_LABELS)
					return PKT_MALFORMED;
				uint32_t label = cur_be32(c);
				if (!c->ok)
					return PKT_TRUNCATED;
				if (label & 0x100) /* bottom of stack */
					break;
			}
			return decode_by_version(c, out);
		case ETH_PPPOE_SESSION: {
			if (!cur_skip(c, 6))
				return PKT_TRUNCATED;
			uint16_t ppp = cur_be16(c);
			if (!c->ok)
				return PKT_TRUNCATED;
			if (ppp == 0x0021)
				return decode_ipv4(c, out);
			if (ppp == 0x0057)
				return decode_ipv6(c, out);
			return PKT_NOT_IP;
		}
		default: return PKT_NOT_IP;
		}
	}
}

enum packet_result packet_decode(int linktype, const uint8_t *frame, size_t caplen,
				 struct packet *out)
{
	struct cursor c;
	uint64_t ts = out->ts_ns;

	memset(out, 0, sizeof(*out));
	out->ts_ns = ts;
	cur_init(&c, frame, caplen);

	switch (linktype) {
	case DLT_EN10MB: {
		if (!cur_skip(&c, 12))
			return PKT_TRUNCATED;
		uint16_t type = cur_be16(&c);
		if (!c.ok)
			return PKT_TRUNCATED;
		if (type <= 1500) /* 802.3 length field: LLC/SNAP, not IP for us */
			return PKT_NOT_IP;
		return decode_ethertype(&c, type, out);
	}
	case DLT_LINUX_SLL: {
		if (!cur_skip(&c, 14))
			return PKT_TRUNCATED;
		uint16_t type = cur_be16(&c);
		if (!c.ok)
			return PKT_TRUNCATED;
		return decode_ethertype(&c, type, out);
	}
	case DLT_LINUX_SLL2: {
		uint16_t type = cur_be16(&c);
		if (!cur_skip(&c, 18))
			return PKT_TRUNCATED;
		return decode_ethertype(&c, type, out);
	}
	case DLT_NULL:
	case DLT_LOOP: {
		if (!cur_has(&c, 4))
			return PKT_TRUNCATED;
		/* DLT_NULL holds the capturing host's AF_ value in its own byte
		 * order; AF_INET6 differs between BSDs (24, 28, 30) and Linux (10).
		 * Take whichever byte order gives a small number. */
		uint32_t fam = linktype == DLT_LOOP ? rd_be32(cur_ptr(&c)) : rd_le32(cur_ptr(&c));
		if (fam > 0xffff)
			fam = rd_be32(cur_ptr(&c));
		cur_skip(&c, 4);
		if (fam == 2)
			return decode_ipv4(&c, out);
		if (fam == 10 || fam == 24 || fam == 28 || fam == 30)
			return decode_ipv6(&c, out);
		return PKT_NOT_IP;
	}
	case DLT_RAW: return decode_by_version(&c, out);
	case DLT_IPV4: return decode_ipv4(&c, out);
	case DLT_IPV6: return decode_ipv6(&c, out);
	default: return PKT_BAD_LINKTYPE;
	}
}
