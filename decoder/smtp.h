/*
 * smtp.h - SMTP state machine over both directions of one session.
 * The session layer feeds in-order bytes per direction (smtp_feed) and gaps
 * (smtp_gap); the decoder records facts in struct smtp_facts and never judges.
 * When the server accepts STARTTLS (or a TLS record shows up where STARTTLS
 * was expected) smtp_tls_started() turns true for that direction and the
 * caller hands the remaining bytes, from the offset smtp_feed returns, to the
 * TLS decoder.
 */
#ifndef MXW_SMTP_H
#define MXW_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "util/parse.h"

/* Mail ports (RFC 5321, RFC 6409, RFC 8314). */
#define SMTP_PORT       25
#define SUBMISSION_PORT 587
#define SMTPS_PORT      465

/* Bounded strings from the wire: longer values are cut and flagged. */
#define SMTP_MAX_LINE         4096 /* RFC 5321 allows 512/1000; be lenient, not unbounded */
#define SMTP_MAX_NAME         256  /* host and domain names */
#define SMTP_MAX_RCPT_DOMAINS 16   /* distinct recipient domains kept */
#define SMTP_MAX_PENDING      64   /* pipelined commands awaiting a reply */
#define SMTP_MAX_CAPS         32   /* capability keywords kept */

enum smtp_anomaly {
	SMTP_AN_LINE_TOO_LONG = 0, /* its first SMTP_MAX_LINE bytes read as the line */
	SMTP_AN_GAP_RESYNC,       /* bytes lost; resynchronised at the next line */
	SMTP_AN_INJECTION,        /* plaintext between STARTTLS and the TLS handshake */
	SMTP_AN_PENDING_OVERFLOW, /* more pipelined commands than we track */
	SMTP_AN_BAD_REPLY,        /* server line that is not "NNN[ -]text" */
	SMTP_AN_UNKNOWN_COMMAND,
	SMTP_AN_BDAT_BAD_SIZE,
	SMTP_AN_COUNT
};

const char *smtp_anomaly_name(enum smtp_anomaly a);

struct smtp_anomaly_rec {
	uint32_t count;
	uint64_t bytes;
};

struct smtp_facts {
	int greeting_code; /* 0 when not seen */
	/* Names are never NULL ("" when not seen) and live in `names` (set
	 * them with smtp_facts_set_name()): a session costs what its names
	 * take, not SMTP_MAX_NAME bytes each. */
	const char *greeting_host;
	const char *helo_name;
	int8_t ehlo;           /* 1 EHLO, 0 HELO, -1 neither seen */
	const char *ehlo_host; /* the name in the server's EHLO reply */
	uint8_t ehlo_reply_seen;
	uint8_t ehlo_reply_partial; /* lines of it were lost (gap, no memory): a missing
				       STARTTLS may be among them */
	uint8_t starttls_offered;
	char mangled_token[16]; /* raw capability word standing where STARTTLS belongs */
	uint8_t pipelining_offered;
	uint8_t chunking_offered;
	uint8_t auth_offered;
	uint8_t starttls_requested;
	int starttls_reply; /* reply code to STARTTLS, 0 if none */
	uint8_t auth_before_tls;
	char auth_mechanism[32];
	uint8_t has_mail_from;
	const char *mail_from_domain; /* empty for the null sender */
	uint32_t rcpt_count;
	uint32_t rcpt_domain_count;
	uint8_t rcpt_domains_truncated;
	uint32_t data_count; /* DATA bodies */
	uint32_t bdat_count; /* BDAT chunks */
	uint64_t body_bytes;
	/* RFC 5321 2.3.8: CR and LF come only as CRLF. In a DATA body, a lone
	 * one is odd; a "." line bounded by them is the end-of-data sequence
	 * other servers may honour (SMTP smuggling). Offsets are in the
	 * client's stream (the lone byte; the dot), first occurrence; counts
	 * are of all. */
	uint32_t bare_line_ends;
	uint64_t bare_line_end_offset;
	uint32_t smuggled_ends;
	uint64_t smuggled_end_offset;
	uint32_t commands;
	uint32_t replies;
	uint32_t rset_count;
	uint8_t quit;
	uint8_t pipelined;      /* client sent a command before the previous reply */
	uint8_t tls_started[2]; /* per direction: switched to TLS */
	/* [kind][dir], made at the first (most sessions have none): read
	 * through smtp_anomaly() */
	struct smtp_anomaly_rec (*anomalies)[2];
	const char *rcpt_domains[SMTP_MAX_RCPT_DOMAINS]; /* rcpt_domain_count of them */
	char *names; /* the names' bytes: one block, compacted as it grows */
	size_t names_len, names_cap;
};

/* The count and bytes of one kind of anomaly in one direction (zeros when
 * none was seen). */
const struct smtp_anomaly_rec *smtp_anomaly(const struct smtp_facts *f, enum smtp_anomaly k,
					    int dir);

/* Empty facts (every name ""); NULL when out of memory. */
struct smtp_facts *smtp_facts_new(void);
void smtp_facts_free(struct smtp_facts *f);
/* Sets `field`, one of f's names, to n bytes of s (cut to SMTP_MAX_NAME - 1);
 * -1 when out of memory, the old value kept. */
int smtp_facts_set_name(struct smtp_facts *f, const char **field, const char *s, size_t n);

struct smtp;

struct smtp *smtp_new(void);
void smtp_free(struct smtp *s);

/* Feeds bytes of one direction (0 client->server, 1 server->client).
 * Returns how many were consumed as SMTP (never negative: odd lines are
 * anomalies, not errors); fewer than n means the rest (from that offset)
 * belongs to TLS. */
parse_ret smtp_feed(struct smtp *s, int dir, const uint8_t *p, size_t n);

/* n bytes of this direction were lost in capture. */
void smtp_gap(struct smtp *s, int dir, uint32_t n);

/* True once this direction switched to TLS. */
int smtp_tls_started(const struct smtp *s, int dir);

const struct smtp_facts *smtp_facts(const struct smtp *s);

/* The capture began inside the session (no SYN seen): the first server
 * reply may answer a command rather than be the greeting. */
void smtp_began_midstream(struct smtp *s);

/* Hands the facts over (free() them); the decoder must not be fed again. */
struct smtp_facts *smtp_take_facts(struct smtp *s);

/* True when the bytes look like the start of an SMTP server greeting or
 * client command: used to tell SMTP from other traffic on port 25. */
int smtp_looks_like(int dir, const uint8_t *p, size_t n);

/* The server plainly did not offer STARTTLS: an accepted EHLO reply, read
 * whole, without it. Anything less is unknown, never "not offered". */
static inline int smtp_starttls_not_offered(const struct smtp_facts *m)
{
	return m->ehlo_reply_seen && !m->ehlo_reply_partial && !m->starttls_offered;
}

/* Whether STARTTLS was offered is on the wire (smtp_facts.starttls_offered
 * may be read as a yes or a no). */
static inline int smtp_starttls_offer_known(const struct smtp_facts *m)
{
	return m->ehlo_reply_seen && (m->starttls_offered || !m->ehlo_reply_partial);
}

#endif
