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

size_t utf8_sequence(const unsigned char *s, size_t n, uint32_t *out)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	*out = cp;
	return len;
}

int utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		size_t l = utf8_sequence(u + i, n - i, &cp);
		if (!l)
			return 0;
		i += l;
	}
	return 1;
}

int sensor_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

int sensor_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!sensor_name_char((unsigned char)name[i]))
			return 0;
	return 1;
}

/* Valid JSON, yet a terminal or log viewer acts on them: C1 controls (0x9b
 * is CSI), bidirectional overrides and isolates that reorder the text
 * around them, and the Unicode line separators. Written as \uXXXX. */
int codepoint_acts_on_display(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

int text_is_clean(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		if (u[i] < 0x80) {
			if (u[i] < 0x20 || u[i] == 0x7f)
				return 0;
			i++;
			continue;
		}
		uint32_t cp;
		size_t l = utf8_sequence(u + i, n - i, &cp);
		if (!l || codepoint_acts_on_display(cp))
			return 0;
		i += l;
	}
	return 1;
}
