/*
 * dns.h - passive DNS: resource records from DNS responses seen on the wire
 * (UDP datagrams, or TCP messages after their 2-byte length), so sessions
 * map to MX hosts and domains without active lookups. Records MX, A, AAAA,
 * TLSA and TXT from the answer and additional sections. Malformed messages
 * (compression loops, truncated names, counts beyond the packet) are
 * rejected and counted, never followed.
 */
#ifndef MXW_DNS_H
#define MXW_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "util/parse.h"

#define DNS_PORT           53
#define DNS_MAX_NAME       256
#define DNS_MAX_RDATA_TEXT 512

enum dns_result {
	DNS_OK = 0,
	DNS_NOT_RESPONSE, /* a query, or a response with an error code */
	DNS_TRUNCATED,    /* a field runs past the message */
	DNS_BAD_NAME,     /* label too long, name too long, bad label type */
	DNS_LOOP,         /* compression pointer not strictly backwards */
	DNS_RESULT_COUNT
};

const char *dns_result_name(enum dns_result r);

/* DNS over TCP framing (RFC 1035 4.2.2: 2-byte length, then the message):
 * the whole frame's size when complete in p, else PARSE_NEED_MORE. */
parse_ret dns_tcp_frame(const uint8_t *p, size_t n);

enum {
	DNS_A = 1,
	DNS_MX = 15,
	DNS_TXT = 16,
	DNS_AAAA = 28,
	DNS_TLSA = 52
};

struct dns_rr {
	uint16_t type;
	uint32_t ttl;
	char name[DNS_MAX_NAME]; /* owner, lower case, no trailing dot */
	/* by type */
	uint16_t preference;              /* MX */
	char host[DNS_MAX_NAME];          /* MX exchange */
	uint8_t addr[16];                 /* A (4 bytes) / AAAA */
	uint8_t usage, selector, mtype;   /* TLSA */
	uint8_t data[DNS_MAX_RDATA_TEXT]; /* TLSA association data, or TXT text */
	size_t data_len;
};

struct dns_response {
	uint16_t id;
	uint8_t ad; /* the resolver says it validated (AD bit) */
	uint8_t aa;
};

typedef void (*dns_rr_fn)(void *ctx, const struct dns_response *msg, const struct dns_rr *rr);

/* Parses one DNS message; calls fn for each record of a wanted type. */
enum dns_result dns_parse(const uint8_t *msg, size_t len, dns_rr_fn fn, void *ctx);

#endif
