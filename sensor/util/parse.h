/*
 * parse.h - the parser contract every decoder follows (STYLE.md, point 2):
 * a parser takes its state and (const uint8_t *buf, size_t len), never
 * reads at or past len, and returns what it did as a parse_ret: the bytes
 * it consumed (>= 0), or a negative status from enum parse_status. A
 * streaming parser accepts input split at any byte. Leaf module.
 */
#ifndef MXW_PARSE_H
#define MXW_PARSE_H

#include <stddef.h>

typedef ptrdiff_t parse_ret;

enum parse_status {
	PARSE_NEED_MORE = -1,    /* nothing consumed: a unit is incomplete, call again with more */
	PARSE_MALFORMED = -2,    /* the bytes break the protocol's framing */
	PARSE_TOO_BIG = -3,      /* a unit larger than its cap */
	PARSE_NOT_PROTOCOL = -4, /* not this protocol at all */
	PARSE_STOPPED = -5,      /* the parser gave up on this stream earlier */
};

#endif
