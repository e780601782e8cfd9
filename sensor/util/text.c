/*
 * text.c - ASCII case folding and hex.
 */
#include "util/text.h"

void ascii_lower_inplace(char *s)
{
	for (; *s; s++)
		*s = ascii_lower(*s);
}

void hostname_lower_copy(char *dst, size_t cap, const char *src)
{
	size_t i = 0;
	if (!cap)
		return;
	for (; src[i] && i + 1 < cap; i++)
		dst[i] = ascii_lower(src[i]);
	dst[i] = 0;
	if (i > 1 && dst[i - 1] == '.')
		dst[i - 1] = 0;
}

void hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}
