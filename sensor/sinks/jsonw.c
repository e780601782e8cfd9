/*
 * jsonw.c - JSON writer with strict escaping of peer-controlled strings.
 */
#include "sinks/jsonw.h"

#include "util/text.h"
#include "util/units.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void jw_init(struct jsonw *w)
{
	memset(w, 0, sizeof(*w));
	w->first[0] = 1;
}

void jw_free(struct jsonw *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void jw_reset(struct jsonw *w)
{
	w->len = 0;
	w->depth = 0;
	w->first[0] = 1;
	w->failed = 0;
}

/* Grows the buffer; the inline check in room() keeps this off the
 * common path. */
static int grow(struct jsonw *w, size_t n)
{
	if (w->failed)
		return 0;
	size_t cap = w->cap ? w->cap : 2048;
	while (cap < w->len + n)
		cap *= 2;
	char *b = realloc(w->buf, cap);
	if (!b) {
		w->failed = 1;
		return 0;
	}
	w->buf = b;
	w->cap = cap;
	return 1;
}

/* Where n more bytes go, or NULL once output is dropped. */
static inline char *room(struct jsonw *w, size_t n)
{
	if (w->len + n > w->cap && !grow(w, n))
		return NULL;
	return w->failed ? NULL : w->buf + w->len;
}

static inline void put(struct jsonw *w, const char *s, size_t n)
{
	char *d = room(w, n);
	if (d) {
		memcpy(d, s, n);
		w->len += n;
	}
}

static inline void putc_(struct jsonw *w, char c)
{
	char *d = room(w, 1);
	if (d) {
		*d = c;
		w->len++;
	}
}

/* Separator before a value: a comma unless first in its container, and
 * nothing after a key (the key wrote its colon). */
static inline void sep(struct jsonw *w)
{
	if (w->depth < 0 || w->depth >= JSONW_MAX_DEPTH)
		return;
	uint8_t f = w->first[w->depth];
	w->first[w->depth] = 0;
	if (!f)
		putc_(w, ',');
}

static void open_(struct jsonw *w, char c)
{
	sep(w);
	putc_(w, c);
	if (w->depth + 1 < JSONW_MAX_DEPTH)
		w->depth++;
	w->first[w->depth] = 1;
}

static void close_(struct jsonw *w, char c)
{
	putc_(w, c);
	if (w->depth > 0)
		w->depth--;
}

void jw_obj_begin(struct jsonw *w)
{
	open_(w, '{');
}
void jw_obj_end(struct jsonw *w)
{
	close_(w, '}');
}
void jw_arr_begin(struct jsonw *w)
{
	open_(w, '[');
}
void jw_arr_end(struct jsonw *w)
{
	close_(w, ']');
}

void jw_key_n(struct jsonw *w, const char *k, size_t n)
{
	int comma = w->depth >= 0 && w->depth < JSONW_MAX_DEPTH && !w->first[w->depth];
	char *d = room(w, n + 4);
	if (!d)
		return;
	if (comma)
		*d++ = ',';
	*d++ = '"';
	memcpy(d, k, n);
	d[n] = '"';
	d[n + 1] = ':';
	w->len = (size_t)(d + n + 2 - w->buf);
	/* The value after it needs no separator. */
	if (w->depth >= 0 && w->depth < JSONW_MAX_DEPTH)
		w->first[w->depth] = 1;
}


/* Bytes that end a plain run: controls, '"', '\\', DEL and every byte
 * from 0x80 (checked as UTF-8). */
static const uint8_t stops[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

void jw_escape(struct jsonw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	/* Worst case: every byte becomes \u00XX. Reserved once, so the loop
	 * writes without checks. */
	if (n > (SIZE_MAX - w->len) / 6 - 1) {
		w->failed = 1;
		return;
	}
	char *d = room(w, n * 6);
	if (!d)
		return;
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && !stops[u[run]])
			run++;
		memcpy(d, s + i, run - i);
		d += run - i;
		i = run;
		if (i >= n)
			break;
		unsigned char c = u[i];
		if (c == '"' || c == '\\') {
			*d++ = '\\';
			*d++ = (char)c;
			i++;
			continue;
		}
		if (c >= 0x80) {
			uint32_t cp = 0;
			size_t l = utf8_sequence(u + i, n - i, &cp);
			if (l && !codepoint_acts_on_display(cp)) {
				memcpy(d, s + i, l);
				d += l;
				i += l;
				continue;
			}
			if (l) {
				d[0] = '\\';
				d[1] = 'u';
				d[2] = hex[cp >> 12];
				d[3] = hex[(cp >> 8) & 15];
				d[4] = hex[(cp >> 4) & 15];
				d[5] = hex[cp & 15];
				d += 6;
				i += l;
				continue;
			}
		}
		d[0] = '\\';
		d[1] = 'u';
		d[2] = '0';
		d[3] = '0';
		d[4] = hex[c >> 4];
		d[5] = hex[c & 15];
		d += 6;
		i++;
	}
	w->len = (size_t)(d - w->buf);
}

void jw_strn(struct jsonw *w, const char *s, size_t n)
{
	sep(w);
	putc_(w, '"');
	jw_escape(w, s, n);
	putc_(w, '"');
}

void jw_str(struct jsonw *w, const char *s)
{
	jw_strn(w, s, strlen(s));
}

void jw_str_or_null(struct jsonw *w, const char *s)
{
	if (s)
		jw_str(w, s);
	else
		jw_null(w);
}

void jw_u64(struct jsonw *w, uint64_t v)
{
	char b[24];
	char *e = b + sizeof(b), *p = e;
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sep(w);
	put(w, p, (size_t)(e - p));
}

void jw_bool(struct jsonw *w, int v)
{
	sep(w);
	if (v)
		put(w, "true", 4);
	else
		put(w, "false", 5);
}

void jw_null(struct jsonw *w)
{
	sep(w);
	put(w, "null", 4);
}

void jw_time(struct jsonw *w, uint64_t ts_ns)
{
	uint64_t secs = ts_ns / NS_PER_S;
	/* Records come in time order: the date part is mostly the last one's. */
	if (!w->time_valid || secs != w->time_secs) {
		time_t t = (time_t)secs;
		struct tm tm;
		if (!gmtime_r(&t, &tm) ||
		    strftime(w->time_text, sizeof(w->time_text), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
			jw_null(w);
			return;
		}
		w->time_secs = secs;
		w->time_len = strlen(w->time_text);
		w->time_valid = 1;
	}
	unsigned us = (unsigned)(ts_ns % NS_PER_S / NS_PER_US);
	char *d;
	sep(w);
	if (!(d = room(w, w->time_len + 10)))
		return;
	*d++ = '"';
	memcpy(d, w->time_text, w->time_len);
	d += w->time_len;
	*d++ = '.';
	for (int i = 5; i >= 0; i--, us /= 10)
		d[i] = (char)('0' + us % 10);
	d[6] = 'Z';
	d[7] = '"';
	w->len = (size_t)(d + 8 - w->buf);
}

const char *jw_cstr(struct jsonw *w)
{
	if (!room(w, 1))
		return NULL;
	w->buf[w->len] = 0;
	return w->buf;
}

void jw_raw(struct jsonw *w, const char *s, size_t n)
{
	put(w, s, n);
}

int jw_write(struct jsonw *w, FILE *out)
{
	int rc = 0;
	if (w->failed || (w->len && fwrite(w->buf, 1, w->len, out) != w->len))
		rc = -1;
	jw_reset(w);
	return rc;
}

int jw_emit_line(struct jsonw *w, FILE *out)
{
	int rc = 0;
	putc_(w, '\n');
	if (w->failed || fwrite(w->buf, 1, w->len, out) != w->len)
		rc = -1;
	jw_reset(w);
	return rc;
}
