/*
 * text.c - ASCII case folding, hex and printable escaping.
 */
#include "util/text.h"

#include <string.h>

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

char *text_escape(char *dst, size_t cap, const char *src, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t o = 0;
	if (!cap)
		return dst;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= cap)
				break;
			dst[o++] = (char)c;
		} else if (c == '\\') {
			if (o + 2 >= cap)
				break;
			dst[o++] = '\\';
			dst[o++] = '\\';
		} else {
			if (o + 4 >= cap)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = digits[c >> 4];
			dst[o++] = digits[c & 15];
		}
	}
	dst[o] = 0;
	return dst;
}

char *text_escape_str(char *dst, size_t cap, const char *src)
{
	return text_escape(dst, cap, src ? src : "", src ? strlen(src) : 0);
}
