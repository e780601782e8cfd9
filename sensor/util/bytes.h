/*
 * bytes.h - bounds-checked big/little-endian readers over (pointer, length).
 * Every packet field is read through these so a short buffer is a clean
 * failure, never a read past the end.
 */
#ifndef MXW_BYTES_H
#define MXW_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* A read cursor: callers test cur_has() before reading, or use the get
 * helpers, which fail (return 0 and set ok=0) instead of overrunning. */
struct cursor {
	const uint8_t *p;
	size_t len;
	size_t off;
	int ok;
};

static inline void cur_init(struct cursor *c, const uint8_t *p, size_t len)
{
	c->p = p;
	c->len = len;
	c->off = 0;
	c->ok = 1;
}

static inline int cur_has(const struct cursor *c, size_t n)
{
	return c->ok && n <= c->len - c->off;
}

static inline size_t cur_left(const struct cursor *c)
{
	return c->ok ? c->len - c->off : 0;
}

static inline const uint8_t *cur_ptr(const struct cursor *c)
{
	return c->p + c->off;
}

static inline int cur_skip(struct cursor *c, size_t n)
{
	if (!cur_has(c, n))
		return c->ok = 0;
	c->off += n;
	return 1;
}

static inline uint8_t cur_u8(struct cursor *c)
{
	if (!cur_has(c, 1)) {
		c->ok = 0;
		return 0;
	}
	return c->p[c->off++];
}

static inline uint16_t cur_be16(struct cursor *c)
{
	if (!cur_has(c, 2)) {
		c->ok = 0;
		return 0;
	}
	uint16_t v = (uint16_t)((uint16_t)c->p[c->off] << 8 | c->p[c->off + 1]);
	c->off += 2;
	return v;
}

static inline uint32_t cur_be24(struct cursor *c)
{
	if (!cur_has(c, 3)) {
		c->ok = 0;
		return 0;
	}
	uint32_t v = (uint32_t)c->p[c->off] << 16 | (uint32_t)c->p[c->off + 1] << 8 |
		     c->p[c->off + 2];
	c->off += 3;
	return v;
}

static inline uint32_t cur_be32(struct cursor *c)
{
	if (!cur_has(c, 4)) {
		c->ok = 0;
		return 0;
	}
	const uint8_t *b = c->p + c->off;
	c->off += 4;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline uint16_t rd_be16(const uint8_t *b)
{
	return (uint16_t)((uint16_t)b[0] << 8 | b[1]);
}

static inline uint32_t rd_be24(const uint8_t *b)
{
	return (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];
}

static inline uint32_t rd_be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline uint32_t rd_le32(const uint8_t *b)
{
	return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}

#endif
