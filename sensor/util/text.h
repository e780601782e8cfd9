/*
 * text.h - small text helpers every stage needs: ASCII case folding (DNS
 * names and SMTP keywords are case-insensitive ASCII, whatever the locale)
 * lowercase hex, and printable escaping for messages that quote input.
 * Leaf module: includes nothing of ours.
 */
#ifndef MXW_TEXT_H
#define MXW_TEXT_H

#include <stddef.h>
#include <stdint.h>

static inline char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Lower-cases s in place. */
void ascii_lower_inplace(char *s);

/* A host or domain name in the form policies are keyed by: lower case,
 * without a trailing dot; cut to fit `cap`. */
void hostname_lower_copy(char *dst, size_t cap, const char *src);

/* Writes 2n lowercase hex digits and a NUL to out. */
void hex_encode(const uint8_t *p, size_t n, char *out);

/* Copies the n bytes at src to dst for a message or a terminal: printable
 * ASCII as it is, a backslash as \\, any other byte (control, DEL, NUL,
 * 8-bit) as \xHH. Cut to fit `cap` (never inside an escape); always
 * terminated. Returns dst, so it can be an argument of printf. */
char *text_escape(char *dst, size_t cap, const char *src, size_t n);
/* The same for a C string. */
char *text_escape_str(char *dst, size_t cap, const char *src);

/* Length of the valid UTF-8 sequence of 2..4 bytes at s (n bytes left),
 * its code point in *cp; 0 when the bytes are not one (overlong forms and
 * surrogates included). */
size_t utf8_sequence(const unsigned char *s, size_t n, uint32_t *cp);
/* 1 when the n bytes are valid UTF-8. */
int utf8_valid(const char *s, size_t n);

/* Code points that are valid text yet make a terminal or log viewer act:
 * C1 controls (0x9b is CSI), bidirectional overrides and isolates, the
 * Unicode line separators. */
int codepoint_acts_on_display(uint32_t cp);
/* 1 when the n bytes are UTF-8 without controls (C0, DEL, C1) or any code
 * point that acts on a display: safe to store and show as a name. */
int text_is_clean(const char *s, size_t n);

/* A sensor's name (--sensor): 1-63 of [A-Za-z0-9._-], so it needs no
 * quoting in syslog, file names or JSON. */
int sensor_name_valid(const char *name);
int sensor_name_char(unsigned char c);

#endif
