/*
 * jsonw.h - a small streaming JSON writer for the JSON-lines sink.
 * Strings are escaped so that no peer-controlled byte reaches the output raw:
 * quotes, backslashes and control bytes are escaped, and bytes that are not
 * valid UTF-8 are written as \u00XX.
 */
#ifndef MXW_JSONW_H
#define MXW_JSONW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSONW_MAX_DEPTH 16

struct jsonw {
	char *buf;
	size_t len, cap;
	int depth;
	uint8_t first[JSONW_MAX_DEPTH]; /* no member written yet at this depth */
	int failed;                     /* out of memory: output dropped */
	/* jw_time(): the last second written, formatted */
	int time_valid;
	uint64_t time_secs;
	size_t time_len;
	char time_text[32];
};

void jw_init(struct jsonw *w);
void jw_free(struct jsonw *w);
void jw_reset(struct jsonw *w);

void jw_obj_begin(struct jsonw *w);
void jw_obj_end(struct jsonw *w);
void jw_arr_begin(struct jsonw *w);
void jw_arr_end(struct jsonw *w);
/* Writes a member name, a name from the code (never from the wire: it is
 * written as it is); the next value call is its value. A literal's length
 * is known at compile time. */
void jw_key_n(struct jsonw *w, const char *k, size_t n);
#define jw_key(w, k) jw_key_n((w), (k), __builtin_strlen(k))
void jw_str(struct jsonw *w, const char *s);
void jw_strn(struct jsonw *w, const char *s, size_t n);
void jw_u64(struct jsonw *w, uint64_t v);
void jw_bool(struct jsonw *w, int v);
void jw_null(struct jsonw *w);
/* Writes a string, or null when s is NULL. */
void jw_str_or_null(struct jsonw *w, const char *s);
/* Members: the key, then the value. jw_kv_opt writes null for NULL or "":
 * an absent fact, never an empty string. Inline, so that the key's length
 * folds at each call. */
static inline void jw_kv_str(struct jsonw *w, const char *k, const char *s)
{
	jw_key(w, k);
	jw_str(w, s);
}
static inline void jw_kv_opt(struct jsonw *w, const char *k, const char *s)
{
	jw_key(w, k);
	jw_str_or_null(w, s && *s ? s : NULL);
}
static inline void jw_kv_u64(struct jsonw *w, const char *k, uint64_t v)
{
	jw_key(w, k);
	jw_u64(w, v);
}
static inline void jw_kv_bool(struct jsonw *w, const char *k, int v)
{
	jw_key(w, k);
	jw_bool(w, v);
}
/* The value when `known`, else null (a fact not seen, never a default). */
static inline void jw_kv_u64_if(struct jsonw *w, const char *k, int known, uint64_t v)
{
	jw_key(w, k);
	if (known)
		jw_u64(w, v);
	else
		jw_null(w);
}
static inline void jw_kv_bool_if(struct jsonw *w, const char *k, int known, int v)
{
	jw_key(w, k);
	if (known)
		jw_bool(w, v);
	else
		jw_null(w);
}
/* RFC 3339 UTC time with microseconds. */
void jw_time(struct jsonw *w, uint64_t ts_ns);

/* The text so far as a C string (not counted in len), or NULL when output
 * was dropped for want of memory. */
const char *jw_cstr(struct jsonw *w);

/* Appends a newline, writes the line to `out` and resets the writer. */
int jw_emit_line(struct jsonw *w, FILE *out);

/* The writer as a plain output buffer: appends n bytes as they are. */
void jw_raw(struct jsonw *w, const char *s, size_t n);
/* Writes everything in w to `out` with one fwrite and resets w; -1 when
 * the write failed or output was dropped for want of memory. */
int jw_write(struct jsonw *w, FILE *out);

/* Escapes n bytes of s as JSON string content (no quotes) into w. */
void jw_escape(struct jsonw *w, const char *s, size_t n);

#endif
