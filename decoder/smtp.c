/*
 * smtp.c - SMTP session decoder (RFC 5321, 3207 STARTTLS, 2920 PIPELINING,
 * 3030 CHUNKING, 4954 AUTH).
 * Client commands go into a bounded queue; each final server reply answers
 * the oldest, which is how pipelined sessions stay in step. DATA bodies are
 * skipped with memmem() for the CRLF.CRLF terminator and BDAT chunks by
 * their length, so message content costs no per-line work.
 */
#include "decoder/smtp.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/stagetime.h"
#include "util/text.h"

enum smtp_mode {
	M_LINES = 0,     /* client: commands; server: replies */
	M_AUTH,          /* client: SASL responses after a 334 */
	M_DATA,          /* client: message body until CRLF.CRLF */
	M_BDAT,          /* client: BDAT chunk bytes */
	M_STARTTLS_WAIT, /* plaintext here is injection; a TLS record ends it */
	M_TLS,           /* handed over to the TLS decoder */
};

enum smtp_verb {
	V_UNKNOWN = 0,
	V_EHLO,
	V_HELO,
	V_STARTTLS,
	V_AUTH,
	V_MAIL,
	V_RCPT,
	V_DATA,
	V_BDAT,
	V_RSET,
	V_QUIT,
	V_NOOP,
	V_VRFY,
	V_EXPN,
	V_HELP,
	V_ETRN,
	V_DATA_END, /* pseudo-command: the reply after a message body */
};

static const struct {
	const char *name;
	enum smtp_verb verb;
} verb_table[] = {
    {"EHLO", V_EHLO}, {"HELO", V_HELO}, {"STARTTLS", V_STARTTLS}, {"AUTH", V_AUTH},
    {"MAIL", V_MAIL}, {"RCPT", V_RCPT}, {"DATA", V_DATA},         {"BDAT", V_BDAT},
    {"RSET", V_RSET}, {"QUIT", V_QUIT}, {"NOOP", V_NOOP},         {"VRFY", V_VRFY},
    {"EXPN", V_EXPN}, {"HELP", V_HELP}, {"ETRN", V_ETRN},
};

/* EHLO keywords of eight characters that are not a mangled STARTTLS. */
static const char *const known_8char_keywords[] = {
    "STARTTLS", "CHUNKING", "SMTPUTF8", "8BITMIME", "XFORWARD", "DELIVERY",
};

static const char *const anomaly_names[SMTP_AN_COUNT] = {
    [SMTP_AN_LINE_TOO_LONG] = "line-too-long",  [SMTP_AN_GAP_RESYNC] = "gap-resync",
    [SMTP_AN_INJECTION] = "starttls-injection", [SMTP_AN_PENDING_OVERFLOW] = "pipeline-overflow",
    [SMTP_AN_BAD_REPLY] = "bad-reply",          [SMTP_AN_UNKNOWN_COMMAND] = "unknown-command",
    [SMTP_AN_BDAT_BAD_SIZE] = "bdat-bad-size",
};

struct smtp {
	struct smtp_facts *f; /* separate: handed to the session record at the end */
	uint8_t mode[2];
	uint8_t discard[2];   /* drop bytes up to the next LF (overlong line, gap) */
	uint8_t after_gap[2]; /* first bytes after a gap: maybe a whole new line */
	uint8_t body_match;   /* bytes of "\r\n.\r\n" matched at the end of the last chunk */
	uint32_t body_tail;   /* the body's last three bytes so far, newest lowest */
	uint8_t body_watch;   /* bytes after a lone CR/LF still to look at closely */
	uint64_t fed[2];      /* stream bytes so far (gaps included) */
	uint8_t greeting_done;
	uint8_t midstream; /* the capture began inside the session */
	uint64_t bdat_left;
	uint32_t line_len[2];
	uint32_t reply_lines; /* lines so far in the current multi-line reply */
	uint8_t server_gap;   /* replies may have been lost: re-pair at the next one */
	uint8_t pending[SMTP_MAX_PENDING];
	uint32_t pending_head, pending_count;
	uint8_t *line[2]; /* allocated when a line first spans two segments */
};

const char *smtp_anomaly_name(enum smtp_anomaly a)
{
	return (unsigned)a < SMTP_AN_COUNT ? anomaly_names[a] : "unknown";
}

static const char no_name[1] = "";

/* Every name field of f, for compaction. */
#define N_NAME_FIELDS (4 + SMTP_MAX_RCPT_DOMAINS)
static void name_fields(struct smtp_facts *f, const char **out[N_NAME_FIELDS])
{
	out[0] = &f->greeting_host;
	out[1] = &f->helo_name;
	out[2] = &f->ehlo_host;
	out[3] = &f->mail_from_domain;
	for (int i = 0; i < SMTP_MAX_RCPT_DOMAINS; i++)
		out[4 + i] = &f->rcpt_domains[i];
}

struct smtp_facts *smtp_facts_new(void)
{
	struct smtp_facts *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	const char **fields[N_NAME_FIELDS];
	name_fields(f, fields);
	for (int i = 0; i < N_NAME_FIELDS; i++)
		*fields[i] = no_name;
	return f;
}

void smtp_facts_free(struct smtp_facts *f)
{
	if (f) {
		free(f->names);
		free(f->anomalies);
	}
	free(f);
}

const struct smtp_anomaly_rec *smtp_anomaly(const struct smtp_facts *f, enum smtp_anomaly k,
					    int dir)
{
	static const struct smtp_anomaly_rec none;
	return f->anomalies && (unsigned)k < SMTP_AN_COUNT ? &f->anomalies[k][dir & 1] : &none;
}

int smtp_facts_set_name(struct smtp_facts *f, const char **field, const char *s, size_t n)
{
	if (n >= SMTP_MAX_NAME)
		n = SMTP_MAX_NAME - 1;
	if (n == 0) {
		*field = no_name;
		return 0;
	}
	if (f->names_len + n + 1 > f->names_cap) {
		/* A new block with the names in use (the one replaced is not):
		 * a client repeating EHLO or MAIL cannot grow it without bound. */
		const char **fields[N_NAME_FIELDS];
		name_fields(f, fields);
		size_t live = n + 1;
		for (int i = 0; i < N_NAME_FIELDS; i++)
			if (fields[i] != field && *fields[i] != no_name)
				live += strlen(*fields[i]) + 1;
		size_t cap = live < 64 ? 128 : live * 2;
		char *b = malloc(cap), *at = b;
		if (!b)
			return -1;
		for (int i = 0; i < N_NAME_FIELDS; i++) {
			if (fields[i] == field || *fields[i] == no_name)
				continue;
			size_t l = strlen(*fields[i]) + 1;
			memcpy(at, *fields[i], l);
			*fields[i] = at;
			at += l;
		}
		free(f->names);
		f->names = b;
		f->names_cap = cap;
		f->names_len = (size_t)(at - b);
	}
	char *d = f->names + f->names_len;
	memcpy(d, s, n);
	d[n] = 0;
	f->names_len += n + 1;
	*field = d;
	return 0;
}

/* Sets a name from a C string. */
static void set_name(struct smtp *s, const char **field, const char *v)
{
	smtp_facts_set_name(s->f, field, v, strlen(v));
}

struct smtp *smtp_new(void)
{
	struct smtp *s = calloc(1, sizeof(*s));
	struct smtp_facts *f = smtp_facts_new();
	if (!s || !f) {
		free(s);
		smtp_facts_free(f);
		return NULL;
	}
	f->ehlo = -1;
	s->f = f;
	return s;
}

void smtp_free(struct smtp *s)
{
	if (!s)
		return;
	free(s->line[0]);
	free(s->line[1]);
	smtp_facts_free(s->f);
	free(s);
}

void smtp_began_midstream(struct smtp *s)
{
	s->midstream = 1;
}

struct smtp_facts *smtp_take_facts(struct smtp *s)
{
	struct smtp_facts *f = s->f;
	/* A greeting's host is taken from its first line; a session that
	 * ended before the greeting's last line has no greeting. */
	if (f && !s->greeting_done)
		smtp_facts_set_name(f, &f->greeting_host, "", 0);
	s->f = NULL;
	return f;
}

const struct smtp_facts *smtp_facts(const struct smtp *s)
{
	return s->f;
}

int smtp_tls_started(const struct smtp *s, int dir)
{
	return s->mode[dir] == M_TLS;
}

static void anomaly(struct smtp *s, enum smtp_anomaly k, int dir, uint64_t bytes)
{
	if (!s->f->anomalies && !(s->f->anomalies = calloc(SMTP_AN_COUNT, sizeof(*s->f->anomalies))))
		return; /* out of memory: uncounted */
	s->f->anomalies[k][dir].count++;
	s->f->anomalies[k][dir].bytes += bytes;
}

static void pending_push(struct smtp *s, enum smtp_verb v)
{
	if (s->pending_count == SMTP_MAX_PENDING) {
		anomaly(s, SMTP_AN_PENDING_OVERFLOW, 0, 0);
		s->pending_head = (s->pending_head + 1) % SMTP_MAX_PENDING;
		s->pending_count--;
	}
	s->pending[(s->pending_head + s->pending_count) % SMTP_MAX_PENDING] = (uint8_t)v;
	s->pending_count++;
}

static void pending_push_front(struct smtp *s, enum smtp_verb v)
{
	if (s->pending_count == SMTP_MAX_PENDING)
		s->pending_count--; /* drop the newest: the answer in hand matters more */
	s->pending_head = (s->pending_head + SMTP_MAX_PENDING - 1) % SMTP_MAX_PENDING;
	s->pending[s->pending_head] = (uint8_t)v;
	s->pending_count++;
}

static enum smtp_verb pending_peek(const struct smtp *s)
{
	return s->pending_count ? (enum smtp_verb)s->pending[s->pending_head] : V_UNKNOWN;
}

static enum smtp_verb pending_pop(struct smtp *s)
{
	if (!s->pending_count)
		return V_UNKNOWN;
	enum smtp_verb v = (enum smtp_verb)s->pending[s->pending_head];
	s->pending_head = (s->pending_head + 1) % SMTP_MAX_PENDING;
	s->pending_count--;
	return v;
}

/* Copies a token into a bounded C string (NUL bytes become '?'). */
static void copy_token(char *dst, size_t cap, const uint8_t *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	for (size_t i = 0; i < n; i++)
		dst[i] = p[i] ? (char)p[i] : '?';
	dst[n] = 0;
}

static int is_space(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Next whitespace-separated word at *pos in [p, p+n). */
static size_t next_word(const uint8_t *p, size_t n, size_t *pos)
{
	size_t i = *pos;
	while (i < n && is_space(p[i]))
		i++;
	size_t start = i;
	while (i < n && !is_space(p[i]))
		i++;
	*pos = start;
	return i - start;
}

/* Domain of the path in "FROM:<user@domain> ..." or "TO:<...>"; returns 0
 * for the null path or a path without '@'. */
static int path_domain(const uint8_t *p, size_t n, char *out, size_t cap)
{
	const uint8_t *colon = memchr(p, ':', n);
	if (!colon)
		return 0;
	size_t i = (size_t)(colon - p) + 1;
	while (i < n && is_space(p[i]))
		i++;
	size_t start = i, end;
	if (i < n && p[i] == '<') {
		start = ++i;
		const uint8_t *gt = memchr(p + i, '>', n - i);
		end = gt ? (size_t)(gt - p) : n;
	} else {
		while (i < n && !is_space(p[i]))
			i++;
		end = i;
	}
	size_t at = end;
	for (size_t k = start; k < end; k++)
		if (p[k] == '@')
			at = k;
	if (at == end || at + 1 >= end)
		return 0;
	copy_token(out, cap, p + at + 1, end - at - 1);
	ascii_lower_inplace(out);
	size_t l = strlen(out);
	if (l && out[l - 1] == '.')
		out[l - 1] = 0;
	return 1;
}

/* Case-insensitive verb lookup: one 32-bit compare per table entry for
 * the four-letter verbs, STARTTLS by length. */
static enum smtp_verb lookup_verb(const uint8_t *p, size_t n)
{
	if (n == 8)
		return strncasecmp((const char *)p, "STARTTLS", 8) == 0 ? V_STARTTLS : V_UNKNOWN;
	if (n != 4)
		return V_UNKNOWN;
	uint32_t key = 0;
	for (int i = 0; i < 4; i++) {
		uint8_t c = p[i];
		if (c >= 'a' && c <= 'z')
			c = (uint8_t)(c - 'a' + 'A');
		key = key << 8 | c;
	}
	for (size_t i = 0; i < sizeof(verb_table) / sizeof(verb_table[0]); i++) {
		const char *v = verb_table[i].name;
		if (v[4] == 0 &&
		    key == ((uint32_t)(uint8_t)v[0] << 24 | (uint32_t)(uint8_t)v[1] << 16 |
			    (uint32_t)(uint8_t)v[2] << 8 | (uint8_t)v[3]))
			return verb_table[i].verb;
	}
	return V_UNKNOWN;
}

static void add_rcpt_domain(struct smtp *s, const char *d)
{
	for (uint32_t i = 0; i < s->f->rcpt_domain_count; i++)
		if (strcmp(s->f->rcpt_domains[i], d) == 0)
			return;
	uint32_t n = s->f->rcpt_domain_count;
	if (n == SMTP_MAX_RCPT_DOMAINS) {
		s->f->rcpt_domains_truncated = 1;
		return;
	}
	if (smtp_facts_set_name(s->f, &s->f->rcpt_domains[n], d, strlen(d))) {
		s->f->rcpt_domains_truncated = 1;
		return;
	}
	s->f->rcpt_domain_count++;
}

static void client_command(struct smtp *s, const uint8_t *line, size_t n)
{
	size_t pos = 0;
	size_t vl = next_word(line, n, &pos);
	const uint8_t *verb = line + pos;
	size_t args = pos + vl;
	enum smtp_verb v = lookup_verb(verb, vl);

	s->f->commands++;
	if (s->pending_count && v != V_UNKNOWN)
		s->f->pipelined = 1;
	switch (v) {
	case V_EHLO:
	case V_HELO: {
		s->f->ehlo = v == V_EHLO;
		size_t wl = next_word(line, n, &args);
		char name[SMTP_MAX_NAME];
		copy_token(name, sizeof(name), line + args, wl);
		set_name(s, &s->f->helo_name, name);
		break;
	}
	case V_STARTTLS:
		s->f->starttls_requested = 1;
		s->mode[0] = M_STARTTLS_WAIT;
		break;
	case V_AUTH: {
		s->f->auth_before_tls = 1;
		size_t wl = next_word(line, n, &args);
		copy_token(s->f->auth_mechanism, sizeof(s->f->auth_mechanism), line + args, wl);
		break;
	}
	case V_MAIL:
	{
		char d[SMTP_MAX_NAME] = "";
		s->f->has_mail_from = 1;
		path_domain(line + args, n - args, d, sizeof(d));
		set_name(s, &s->f->mail_from_domain, d);
		break;
	}
	case V_RCPT: {
		char d[SMTP_MAX_NAME];
		s->f->rcpt_count++;
		if (path_domain(line + args, n - args, d, sizeof(d)))
			add_rcpt_domain(s, d);
		break;
	}
	case V_DATA:
		/* Clients wait for 354 before the body, so bytes after DATA are
		 * body unless a refusal arrives first. */
		s->mode[0] = M_DATA;
		s->body_match = 2; /* the command's own CRLF may start the terminator */
		s->body_tail = ('\r' << 8) | '\n';
		s->body_watch = 0;
		break;
	case V_BDAT: {
		size_t wl = next_word(line, n, &args);
		uint64_t size = 0;
		int ok = wl > 0 && wl <= 19;
		for (size_t i = 0; ok && i < wl; i++) {
			if (line[args + i] < '0' || line[args + i] > '9')
				ok = 0;
			else
				size = size * 10 + (uint64_t)(line[args + i] - '0');
		}
		if (!ok) {
			anomaly(s, SMTP_AN_BDAT_BAD_SIZE, 0, 0);
			break;
		}
		s->f->bdat_count++;
		s->f->body_bytes += size;
		s->bdat_left = size;
		if (size)
			s->mode[0] = M_BDAT;
		break;
	}
	case V_RSET: s->f->rset_count++; break;
	case V_QUIT: s->f->quit = 1; break;
	case V_UNKNOWN: anomaly(s, SMTP_AN_UNKNOWN_COMMAND, 0, n); break;
	default: break;
	}
	pending_push(s, v);
}

static int is_mangled_starttls(const uint8_t *w, size_t n)
{
	if (n != 8)
		return 0;
	for (size_t i = 0; i < sizeof(known_8char_keywords) / sizeof(known_8char_keywords[0]); i++)
		if (strncasecmp((const char *)w, known_8char_keywords[i], 8) == 0)
			return 0;
	int xs = 0, odd = 0, diff = 0;
	static const char starttls[] = "STARTTLS";
	for (size_t i = 0; i < 8; i++) {
		uint8_t c = w[i];
		if (c == 'X' || c == 'x')
			xs++;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			odd++;
		if ((c & 0xdf) != (uint8_t)starttls[i])
			diff++;
	}
	/* Middleboxes overwrite the word with X's (Cisco: "XXXXXXXA"), with
	 * other filler bytes, or alter a few letters. */
	return xs >= 6 || odd > 0 || diff <= 2;
}

static void ehlo_capability(struct smtp *s, const uint8_t *text, size_t n)
{
	size_t pos = 0;
	size_t wl = next_word(text, n, &pos);
	const uint8_t *w = text + pos;
	if (wl == 8 && strncasecmp((const char *)w, "STARTTLS", 8) == 0)
		s->f->starttls_offered = 1;
	else if (wl == 10 && strncasecmp((const char *)w, "PIPELINING", 10) == 0)
		s->f->pipelining_offered = 1;
	else if (wl == 8 && strncasecmp((const char *)w, "CHUNKING", 8) == 0)
		s->f->chunking_offered = 1;
	else if (wl >= 4 && strncasecmp((const char *)w, "AUTH", 4) == 0 &&
		 (wl == 4 || w[4] == '='))
		s->f->auth_offered = 1;
	else if (is_mangled_starttls(w, wl) && !s->f->mangled_token[0])
		copy_token(s->f->mangled_token, sizeof(s->f->mangled_token), w, wl);
}

static void server_final_reply(struct smtp *s, int code, const uint8_t *text, size_t n)
{
	s->f->replies++;
	(void)text;
	(void)n;
	/* The greeting is the server's first reply (RFC 5321 3.1), even when
	 * the client spoke first: with early pipelining (Exim's PIPE_CONNECT)
	 * EHLO, and STARTTLS or a whole transaction, precede the 220 and are
	 * answered after it. Only when the capture began inside the session,
	 * or lost server bytes, may the first reply seen answer a command. */
	if (!s->greeting_done &&
	    (!s->pending_count || (!s->midstream && !s->server_gap && s->f->replies == 1))) {
		s->greeting_done = 1;
		s->f->greeting_code = code; /* its host came with its first line */
		return;
	}
	if (!s->greeting_done)
		set_name(s, &s->f->greeting_host, ""); /* not the greeting after all */
	s->greeting_done = 1;
	if (s->server_gap) {
		/* Replies were lost with the gap: the one in hand most likely
		 * answers the newest command, not the oldest. */
		s->server_gap = 0;
		while (s->pending_count > 1)
			pending_pop(s);
	}
	if (code == 220) {
		/* 220 answers only STARTTLS after the greeting: catch up to it. */
		for (uint32_t i = 0; i < s->pending_count; i++) {
			if (s->pending[(s->pending_head + i) % SMTP_MAX_PENDING] == V_STARTTLS) {
				while (pending_peek(s) != V_STARTTLS)
					pending_pop(s);
				break;
			}
		}
	}
	switch (pending_pop(s)) {
	case V_EHLO:
		/* Only an accepted EHLO lists extensions; after a refusal or a
		 * HELO, whether STARTTLS is offered is not on the wire. */
		if (code / 100 == 2)
			s->f->ehlo_reply_seen = 1;
		break;
	case V_STARTTLS:
		s->f->starttls_reply = code;
		if (code == 220) {
			s->mode[1] = M_STARTTLS_WAIT;
		} else if (s->mode[0] == M_STARTTLS_WAIT) {
			s->mode[0] = M_LINES;
		}
		break;
	case V_DATA:
		if (code == 354) {
			s->f->data_count++;
			pending_push_front(s, V_DATA_END);
		} else if (s->mode[0] == M_DATA) {
			s->mode[0] = M_LINES;
		}
		break;
	case V_DATA_END:
		/* The server answered the body: if we missed the terminator
		 * (capture loss), the body is over anyway. */
		if (s->mode[0] == M_DATA)
			s->mode[0] = M_LINES;
		break;
	case V_AUTH:
		if (code == 334) {
			s->mode[0] = M_AUTH;
			pending_push_front(s, V_AUTH);
		} else if (s->mode[0] == M_AUTH) {
			s->mode[0] = M_LINES;
		}
		break;
	default: break;
	}
}

static void server_line(struct smtp *s, const uint8_t *line, size_t n)
{
	if (n < 3 || line[0] < '0' || line[0] > '9' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9' || (n > 3 && line[3] != ' ' && line[3] != '-')) {
		anomaly(s, SMTP_AN_BAD_REPLY, 1, n);
		return;
	}
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	int more = n > 3 && line[3] == '-';
	const uint8_t *text = line + (n > 3 ? 4 : 3);
	size_t tn = n > 3 ? n - 4 : 0;
	enum smtp_verb v = pending_peek(s);

	if (s->reply_lines == 0) {
		/* The first word names the server in a greeting (taken back at
		 * the reply's end if it is none) and in the EHLO reply. */
		char word[SMTP_MAX_NAME];
		size_t pos = 0, wl = next_word(text, tn, &pos);
		copy_token(word, sizeof(word), text + pos, wl);
		if (!s->greeting_done)
			set_name(s, &s->f->greeting_host, word);
		if (v == V_EHLO && code == 250)
			set_name(s, &s->f->ehlo_host, word);
	} else if (v == V_EHLO && code == 250) {
		ehlo_capability(s, text, tn);
	}
	if (more) {
		s->reply_lines++;
		return;
	}
	s->reply_lines = 0;
	server_final_reply(s, code, text, tn);
}

static void handle_line(struct smtp *s, int dir, const uint8_t *line, size_t n)
{
	/* Strip CRLF (or a bare LF). */
	if (n && line[n - 1] == '\n')
		n--;
	if (n && line[n - 1] == '\r')
		n--;
	if (dir == 1)
		server_line(s, line, n);
	else if (s->mode[0] == M_AUTH)
		return; /* SASL response: credentials, not a command */
	else
		client_command(s, line, n);
}

/* A server line went unread: if it belonged to an EHLO reply, what the
 * reply offered is no longer known in full. */
static void line_lost(struct smtp *s, int dir)
{
	if (dir == 1 && pending_peek(s) == V_EHLO)
		s->f->ehlo_reply_partial = 1;
}

/* Consumes one line (or what there is of it); returns bytes used. */
static size_t take_line(struct smtp *s, int dir, const uint8_t *p, size_t n)
{
	const uint8_t *nl = memchr(p, '\n', n);
	size_t len = nl ? (size_t)(nl - p) + 1 : n;

	if (s->after_gap[dir]) {
		/* A gap often ends at a segment, and segments usually start
		 * lines: keep what plainly begins a reply or command. */
		s->after_gap[dir] = 0;
		size_t pos = 0, wl = next_word(p, len, &pos);
		if (dir == 1 ? smtp_looks_like(1, p, len)
			     : (pos == 0 && lookup_verb(p, wl) != V_UNKNOWN))
			s->discard[dir] = 0;
	}
	if (s->discard[dir]) {
		if (nl)
			s->discard[dir] = 0;
		return len;
	}
	uint32_t *ll = &s->line_len[dir];
	if (!nl && !s->line[dir]) {
		s->line[dir] = malloc(SMTP_MAX_LINE);
		if (!s->line[dir]) { /* cannot buffer: resynchronise at the next line */
			line_lost(s, dir);
			s->discard[dir] = 1;
			return len;
		}
	}
	if (!nl) {
		size_t room = SMTP_MAX_LINE - *ll;
		if (len > room) {
			/* An overlong line still counts as a line, cut short: the
			 * reply's structure (code, continuation, keyword) is in
			 * its head, and dropping it would shift every line after. */
			anomaly(s, SMTP_AN_LINE_TOO_LONG, dir, SMTP_MAX_LINE);
			memcpy(s->line[dir] + *ll, p, room);
			*ll = 0;
			handle_line(s, dir, s->line[dir], SMTP_MAX_LINE);
			s->discard[dir] = 1;
			return len;
		}
		memcpy(s->line[dir] + *ll, p, len);
		*ll += (uint32_t)len;
		return len;
	}
	if (*ll == 0) {
		if (len > SMTP_MAX_LINE) {
			anomaly(s, SMTP_AN_LINE_TOO_LONG, dir, SMTP_MAX_LINE);
			handle_line(s, dir, p, SMTP_MAX_LINE);
		} else {
			handle_line(s, dir, p, len);
		}
		return len;
	}
	size_t room = SMTP_MAX_LINE - *ll;
	size_t copy = len < room ? len : room;
	memcpy(s->line[dir] + *ll, p, copy);
	if (copy < len)
		anomaly(s, SMTP_AN_LINE_TOO_LONG, dir, SMTP_MAX_LINE);
	size_t total = *ll + copy;
	*ll = 0;
	handle_line(s, dir, s->line[dir], total);
	return len;
}

static uint8_t body_step(uint8_t st, uint8_t c)
{
	static const char term[] = "\r\n.\r\n";
	if (c == (uint8_t)term[st])
		return (uint8_t)(st + 1);
	return c == '\r' ? 1 : 0;
}

static int is_line_end(uint8_t c)
{
	return c == '\r' || c == '\n';
}

/* A lone CR or LF in p[0..n) given the byte before it: counted with one
 * pass the compiler vectorises, since bodies are most of the bytes. */
static size_t count_bare(uint8_t prev, const uint8_t *p, size_t n)
{
	size_t bad = (size_t)((p[0] == '\n') ^ (prev == '\r'));
	for (size_t i = 1; i < n; i++)
		bad += (size_t)((p[i] == '\n') ^ (p[i - 1] == '\r'));
	return bad;
}

/* Only for a chunk holding a lone CR or LF, or just after one: where, and
 * whether a "." line is bounded by them (what a lenient server ends DATA
 * at). */
static void find_smuggling(struct smtp *s, const uint8_t *p, size_t n, uint64_t at)
{
	uint32_t tail = s->body_tail;
	for (size_t i = 0; i < n; i++) {
		uint8_t b3 = (uint8_t)(tail >> 16), b2 = (uint8_t)(tail >> 8), b1 = (uint8_t)tail;
		uint8_t c = p[i];
		int bare = (c == '\n') != (b1 == '\r');
		if (bare && !s->f->bare_line_end_offset)
			s->f->bare_line_end_offset = at + i - (c != '\n'); /* a lone CR is the byte before */
		if (bare)
			s->body_watch = 3;
		else if (s->body_watch)
			s->body_watch--;
		/* "\r\n.\r" may yet be the real end: its LF decides, and a
		 * lone CR after it is counted as such. */
		if (b1 == '.' && is_line_end(b2) && is_line_end(c) &&
		    !(b3 == '\r' && b2 == '\n' && c == '\r')) {
			if (!s->f->smuggled_ends++)
				s->f->smuggled_end_offset = at + i - 1; /* the dot */
		}
		tail = (tail << 8 | c) & 0xffffff;
	}
	s->body_tail = tail;
}

static void scan_body(struct smtp *s, const uint8_t *p, size_t n, uint64_t at)
{
	if (!n)
		return;
	size_t bad = count_bare((uint8_t)s->body_tail, p, n);
	if (bad || s->body_watch) {
		s->f->bare_line_ends += (uint32_t)bad;
		find_smuggling(s, p, n, at);
	} else if (n >= 3) {
		s->body_tail = (uint32_t)p[n - 3] << 16 | (uint32_t)p[n - 2] << 8 | p[n - 1];
	} else {
		for (size_t i = 0; i < n; i++)
			s->body_tail = (s->body_tail << 8 | p[i]) & 0xffffff;
	}
}

/* Skips message body bytes; returns bytes consumed, ending the body mode
 * when the terminator was found. `at`: the stream offset of p[0]. */
static size_t body_skip(struct smtp *s, const uint8_t *p, size_t n, uint64_t at)
{
	uint8_t st = s->body_match;
	size_t head = n < 4 ? n : 4;
	size_t used = n;
	int found = 0;

	for (size_t i = 0; i < head; i++) {
		st = body_step(st, p[i]);
		if (st == 5) {
			used = i + 1;
			found = 1;
			break;
		}
	}
	if (!found && n > 4) {
		const uint8_t *m = memmem(p, n, "\r\n.\r\n", 5);
		if (m) {
			used = (size_t)(m - p) + 5;
			found = 1;
		} else {
			st = 0;
			for (size_t i = n - 4; i < n; i++)
				st = body_step(st, p[i]);
		}
	}
	scan_body(s, p, used, at);
	if (found) {
		s->body_match = 0;
		s->mode[0] = M_LINES;
	} else {
		s->body_match = st;
	}
	s->f->body_bytes += used;
	return used;
}

/* Index of the first byte that can start a TLS record (a handshake, or an
 * alert refusing one), or n. A record header is type 20..24 then version
 * 3.x; at the end of the buffer a plausible prefix is enough. */
static size_t find_tls_start(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 20 || p[i] > 24)
			continue;
		if (i + 1 >= n || (p[i + 1] == 3 && (i + 2 >= n || p[i + 2] <= 4)))
			return i;
	}
	return n;
}

parse_ret smtp_feed(struct smtp *s, int dir, const uint8_t *p, size_t n)
{
	size_t off = 0;
	uint64_t base = s->fed[dir];
	s->fed[dir] += n;
	while (off < n) {
		switch (s->mode[dir]) {
		case M_TLS: return (parse_ret)off;
		case M_DATA: {
			STAGE_BEGIN(t0);
			size_t used = body_skip(s, p + off, n - off, base + off);
			off += used;
			STAGE_END(STAGE_BODY, t0, used);
			break;
		}
		case M_BDAT: {
			STAGE_BEGIN(t0);
			uint64_t take = s->bdat_left < n - off ? s->bdat_left : n - off;
			off += (size_t)take;
			s->bdat_left -= take;
			if (!s->bdat_left)
				s->mode[0] = M_LINES;
			STAGE_END(STAGE_BODY, t0, take);
			break;
		}
		case M_STARTTLS_WAIT: {
			size_t i = find_tls_start(p + off, n - off);
			if (i)
				anomaly(s, SMTP_AN_INJECTION, dir, i);
			off += i;
			if (off < n) {
				s->mode[dir] = M_TLS;
				s->f->tls_started[dir] = 1;
				return (parse_ret)off;
			}
			break;
		}
		default: off += take_line(s, dir, p + off, n - off); break;
		}
	}
	return (parse_ret)n;
}

void smtp_gap(struct smtp *s, int dir, uint32_t n)
{
	s->fed[dir] += n;
	switch (s->mode[dir]) {
	case M_TLS: return;
	case M_DATA:
		s->body_match = 0;
		s->body_tail = 0; /* nothing known before the next byte */
		s->body_watch = 0;
		s->f->body_bytes += n;
		return;
	case M_BDAT:
		if (n <= s->bdat_left) {
			s->bdat_left -= n;
			if (!s->bdat_left)
				s->mode[0] = M_LINES;
			return;
		}
		s->mode[0] = M_LINES;
		break;
	default: break;
	}
	anomaly(s, SMTP_AN_GAP_RESYNC, dir, n);
	line_lost(s, dir);
	s->line_len[dir] = 0;
	s->discard[dir] = 1;
	s->after_gap[dir] = 1;
	if (dir == 1) {
		s->reply_lines = 0;
		s->server_gap = 1;
	}
}

int smtp_looks_like(int dir, const uint8_t *p, size_t n)
{
	if (dir == 1)
		return n >= 4 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
		       p[2] >= '0' && p[2] <= '9' && (p[3] == ' ' || p[3] == '-');
	return n >= 5 && (strncasecmp((const char *)p, "EHLO ", 5) == 0 ||
			  strncasecmp((const char *)p, "HELO ", 5) == 0);
}
