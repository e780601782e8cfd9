/*
 * jsonw.c - JSON writer with strict escaping of peer-controlled strings.
 */
#include "sinks/jsonw.h"

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

static int reserve(struct jsonw *w, size_t n)
{
	if (w->failed)
		return 0;
	if (w->len + n <= w->cap)
		return 1;
	size_t cap = w->cap ? w->cap : 512;
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

static void put(struct jsonw *w, const char *s, size_t n)
{
	if (!reserve(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void putc_(struct jsonw *w, char c)
{
	put(w, &c, 1);
}

/* Separator before a value: a comma unless first in its container, and
 * nothing after a key (the key wrote its colon). */
static void sep(struct jsonw *w)
{
	if (w->depth < 0 || w->depth >= JSONW_MAX_DEPTH)
		return;
	if (w->first[w->depth] == 2) { /* after a key */
		w->first[w->depth] = 0;
		return;
	}
	if (!w->first[w->depth])
		putc_(w, ',');
	w->first[w->depth] = 0;
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

void jw_key(struct jsonw *w, const char *k)
{
	sep(w);
	putc_(w, '"');
	jw_escape(w, k, strlen(k));
	put(w, "\":", 2);
	w->first[w->depth] = 2;
}

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if invalid; *out
 * gets its code point. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *out)
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

/* Valid JSON, yet a terminal or log viewer acts on them: C1 controls (0x9b
 * is CSI), bidirectional overrides and isolates that reorder the text
 * around them, and the Unicode line separators. Written as \uXXXX. */
static int acts_on_display(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

void jw_escape(struct jsonw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' &&
		       u[run] != '\\')
			run++;
		put(w, s + i, run - i);
		i = run;
		if (i >= n)
			break;
		unsigned char c = u[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			put(w, e, 2);
			i++;
			continue;
		}
		if (c >= 0x80) {
			uint32_t cp = 0;
			size_t l = utf8_len(u + i, n - i, &cp);
			if (l && !acts_on_display(cp)) {
				put(w, s + i, l);
				i += l;
				continue;
			}
			if (l) {
				char e[6] = {'\\', 'u', hex[cp >> 12], hex[(cp >> 8) & 15],
					     hex[(cp >> 4) & 15], hex[cp & 15]};
				put(w, e, 6);
				i += l;
				continue;
			}
		}
		char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
		put(w, e, 6);
		i++;
	}
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
	int n = snprintf(b, sizeof(b), "%" PRIu64, v);
	sep(w);
	put(w, b, (size_t)n);
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
	time_t secs = (time_t)(ts_ns / NS_PER_S);
	struct tm tm;
	char b[48];
	if (!gmtime_r(&secs, &tm)) {
		jw_null(w);
		return;
	}
	size_t n = strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(b + n, sizeof(b) - n, ".%06uZ", (unsigned)(ts_ns % NS_PER_S / NS_PER_US));
	jw_str(w, b);
}

void jw_kv_str(struct jsonw *w, const char *k, const char *s)
{
	jw_key(w, k);
	jw_str(w, s);
}

void jw_kv_opt(struct jsonw *w, const char *k, const char *s)
{
	jw_key(w, k);
	jw_str_or_null(w, s && *s ? s : NULL);
}

void jw_kv_u64(struct jsonw *w, const char *k, uint64_t v)
{
	jw_key(w, k);
	jw_u64(w, v);
}

void jw_kv_bool(struct jsonw *w, const char *k, int v)
{
	jw_key(w, k);
	jw_bool(w, v);
}

/* The key, then null unless the value is known; returns `known`. */
static int key_if(struct jsonw *w, const char *k, int known)
{
	jw_key(w, k);
	if (!known)
		jw_null(w);
	return known;
}

void jw_kv_u64_if(struct jsonw *w, const char *k, int known, uint64_t v)
{
	if (key_if(w, k, known))
		jw_u64(w, v);
}

void jw_kv_bool_if(struct jsonw *w, const char *k, int known, int v)
{
	if (key_if(w, k, known))
		jw_bool(w, v);
}

const char *jw_cstr(struct jsonw *w)
{
	if (!reserve(w, 1))
		return NULL;
	w->buf[w->len] = 0;
	return w->buf;
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
