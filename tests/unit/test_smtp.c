/*
 * test_smtp.c - the SMTP state machine on byte buffers: each transcript is
 * fed whole, one byte at a time and split at every position, and must give
 * the same facts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decoder/smtp.h"

/* A transcript: alternating chunks, each tagged with its direction. */
struct step {
	int dir;
	const char *bytes;
	size_t len; /* 0: strlen(bytes) */
};

static size_t step_len(const struct step *s)
{
	return s->len ? s->len : strlen(s->bytes);
}

/* Feeds every step in pieces of `chunk` bytes (0: whole). Returns the
 * decoder; *tls_off[dir] gets the offset in the last step of each
 * direction where TLS began, or -1. */
static struct smtp *run(const struct step *steps, size_t n, size_t chunk)
{
	struct smtp *s = smtp_new();
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = (const uint8_t *)steps[i].bytes;
		size_t len = step_len(&steps[i]);
		size_t piece = chunk ? chunk : len;
		for (size_t off = 0; off < len; off += piece) {
			size_t m = len - off < piece ? len - off : piece;
			if (smtp_tls_started(s, steps[i].dir))
				break;
			smtp_feed(s, steps[i].dir, p + off, m);
		}
	}
	return s;
}

/* Where a copy of the facts keeps its names: cleared for a byte-wise
 * comparison of everything else. */
static void clear_names(struct smtp_facts *x)
{
	x->greeting_host = x->helo_name = x->ehlo_host = x->mail_from_domain = NULL;
	memset(x->rcpt_domains, 0, sizeof(x->rcpt_domains));
	x->names = NULL;
	x->names_len = x->names_cap = 0;
	x->anomalies = NULL;
}

/* Facts compared whole: every name as a string, every other byte as is. */
static void assert_same_facts(const struct smtp_facts *a, const struct smtp_facts *b)
{
	assert_string_equal(a->greeting_host, b->greeting_host);
	assert_string_equal(a->helo_name, b->helo_name);
	assert_string_equal(a->ehlo_host, b->ehlo_host);
	assert_string_equal(a->mail_from_domain, b->mail_from_domain);
	assert_int_equal(a->rcpt_domain_count, b->rcpt_domain_count);
	for (uint32_t i = 0; i < a->rcpt_domain_count; i++)
		assert_string_equal(a->rcpt_domains[i], b->rcpt_domains[i]);
	for (int k = 0; k < SMTP_AN_COUNT * 2; k++)
		assert_memory_equal(smtp_anomaly(a, k / 2, k % 2), smtp_anomaly(b, k / 2, k % 2),
				    sizeof(struct smtp_anomaly_rec));
	struct smtp_facts x = *a, y = *b;
	clear_names(&x);
	clear_names(&y);
	assert_memory_equal(&x, &y, sizeof(x));
}

/* Every split of the whole conversation gives identical facts. */
static void assert_split_invariant(const struct step *steps, size_t n)
{
	struct smtp *whole = run(steps, n, 0);
	for (size_t chunk = 1; chunk <= 7; chunk++) {
		struct smtp *s = run(steps, n, chunk);
		assert_same_facts(smtp_facts(whole), smtp_facts(s));
		smtp_free(s);
	}
	smtp_free(whole);
}

static const struct step plain_session[] = {
    {1, "220-mx.example.test ESMTP Postfix\r\n220 second greeting line\r\n"},
    {0, "ehlo client.example\r\n"},
    {1, "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n"
	"250-8BITMIME\r\n250 CHUNKING\r\n"},
    {0, "mail from:<Alice@Sender.Example> SIZE=100\r\n"},
    {1, "250 2.1.0 Ok\r\n"},
    {0, "RCPT TO:<bob@Example.TEST>\r\n"},
    {1, "250 2.1.5 Ok\r\n"},
    {0, "RCPT TO:<carol@other.test.>\r\n"},
    {1, "250 2.1.5 Ok\r\n"},
    {0, "RCPT TO:<dave@example.test>\r\n"},
    {1, "250 2.1.5 Ok\r\n"},
    {0, "DATA\r\n"},
    {1, "354 End data with <CR><LF>.<CR><LF>\r\n"},
    {0, "Subject: hi\r\n\r\nMAIL FROM:<inside@body.test>\r\nRCPT TO:<no@body.test>\r\n"
	"..leading dot\r\n.\r\n"},
    {1, "250 2.0.0 Ok: queued\r\n"},
    {0, "QUIT\r\n"},
    {1, "221 2.0.0 Bye\r\n"},
};

static void test_plain_session(void **state)
{
	(void)state;
	struct smtp *s = run(plain_session, sizeof(plain_session) / sizeof(plain_session[0]), 0);
	const struct smtp_facts *f = smtp_facts(s);
	assert_int_equal(f->greeting_code, 220);
	assert_string_equal(f->greeting_host, "mx.example.test");
	assert_int_equal(f->ehlo, 1);
	assert_string_equal(f->helo_name, "client.example");
	assert_string_equal(f->ehlo_host, "mx.example.test");
	assert_false(f->starttls_offered);
	assert_string_equal(f->mangled_token, "");
	assert_true(f->pipelining_offered);
	assert_true(f->chunking_offered);
	assert_true(f->auth_offered);
	assert_string_equal(f->mail_from_domain, "sender.example");
	assert_int_equal(f->rcpt_count, 3);
	assert_int_equal(f->rcpt_domain_count, 2);
	assert_string_equal(f->rcpt_domains[0], "example.test");
	assert_string_equal(f->rcpt_domains[1], "other.test");
	assert_int_equal(f->data_count, 1);
	assert_true(f->quit);
	assert_int_equal(f->commands, 7); /* body lines are not commands */
	assert_int_equal(smtp_anomaly(f, SMTP_AN_UNKNOWN_COMMAND, 0)->count, 0);
	assert_false(f->pipelined);
	smtp_free(s);
	assert_split_invariant(plain_session, sizeof(plain_session) / sizeof(plain_session[0]));
}

/* Early pipelining (Exim's PIPE_CONNECT, draft-harris-early-pipe): the
 * client sends EHLO before the server's greeting; the 220 greeting comes
 * first on the server side, then the EHLO reply. */
static const struct step early_pipe[] = {
    {0, "EHLO client.example\r\n"},
    {1, "220 mx.example.test ESMTP Exim 4.96\r\n"},
    {1, "250-mx.example.test Hello client.example\r\n250-SIZE 52428800\r\n250-PIPELINING\r\n"
	"250-PIPE_CONNECT\r\n250-STARTTLS\r\n250 HELP\r\n"},
    {0, "MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"},
    {1, "250 OK\r\n250 Accepted\r\n354 Enter message\r\n"},
    {0, "Subject: x\r\n\r\nbody\r\n.\r\n"},
    {1, "250 OK id=1\r\n"},
};

static void test_early_pipelining(void **state)
{
	(void)state;
	struct smtp *s = run(early_pipe, sizeof(early_pipe) / sizeof(early_pipe[0]), 0);
	const struct smtp_facts *f = smtp_facts(s);
	/* The greeting, then the EHLO reply with its STARTTLS, then the
	 * transaction's replies, each paired with its command. */
	assert_true(f->greeting_code == 220 && !strcmp(f->greeting_host, "mx.example.test") &&
		    f->ehlo_reply_seen && f->starttls_offered && f->has_mail_from &&
		    f->data_count == 1);
	assert_false(f->starttls_requested);
	smtp_free(s);
	assert_split_invariant(early_pipe, sizeof(early_pipe) / sizeof(early_pipe[0]));
}

static const struct step stripped[] = {
    {1, "220 mx ESMTP\r\n"},
    {0, "EHLO c\r\n"},
    {1, "250-mx\r\n250-PIPELINING\r\n250-XXXXXXXA\r\n250 8BITMIME\r\n"},
    {0, "MAIL FROM:<>\r\n"},
    {1, "250 ok\r\n"},
};

static void test_mangled_starttls(void **state)
{
	(void)state;
	struct smtp *s = run(stripped, 5, 0);
	const struct smtp_facts *f = smtp_facts(s);
	assert_false(f->starttls_offered);
	assert_string_equal(f->mangled_token, "XXXXXXXA");
	assert_true(f->has_mail_from);
	assert_string_equal(f->mail_from_domain, ""); /* null sender */
	smtp_free(s);
	assert_split_invariant(stripped, 5);
}

static void test_mangled_variants(void **state)
{
	(void)state;
	static const char *const mangled[] = {"XXXXXXXX", "STARTTLZ", "xxxxxxxA", "S\x01\x02RTTLS"};
	static const char *const genuine[] = {"STARTTLS", "CHUNKING", "SMTPUTF8", "8BITMIME",
					      "XFORWARD", "DSN",      "XCLIENT"};
	for (size_t i = 0; i < 4; i++) {
		struct smtp *s = smtp_new();
		char line[64];
		smtp_feed(s, 1, (const uint8_t *)"220 x\r\n", 7);
		smtp_feed(s, 0, (const uint8_t *)"EHLO a\r\n", 8);
		int n = snprintf(line, sizeof(line), "250-x\r\n250 %s\r\n", mangled[i]);
		smtp_feed(s, 1, (const uint8_t *)line, (size_t)n);
		assert_memory_equal(smtp_facts(s)->mangled_token, mangled[i], 8);
		smtp_free(s);
	}
	for (size_t i = 0; i < 7; i++) {
		struct smtp *s = smtp_new();
		char line[64];
		smtp_feed(s, 1, (const uint8_t *)"220 x\r\n", 7);
		smtp_feed(s, 0, (const uint8_t *)"EHLO a\r\n", 8);
		int n = snprintf(line, sizeof(line), "250-x\r\n250 %s\r\n", genuine[i]);
		smtp_feed(s, 1, (const uint8_t *)line, (size_t)n);
		assert_string_equal(smtp_facts(s)->mangled_token, "");
		smtp_free(s);
	}
}

static void test_starttls_switch_and_injection(void **state)
{
	(void)state;
	struct smtp *s = smtp_new();
	static const char hello[] = "\x16\x03\x01\x00\x05hello";
	smtp_feed(s, 1, (const uint8_t *)"220 mx\r\n", 8);
	smtp_feed(s, 0, (const uint8_t *)"EHLO c\r\n", 8);
	smtp_feed(s, 1, (const uint8_t *)"250-mx\r\n250 STARTTLS\r\n", 22);
	/* STARTTLS and a pipelined command in one segment: injection. */
	static const char cmd[] = "STARTTLS\r\nMAIL FROM:<a@evil.test>\r\n";
	assert_int_equal(smtp_feed(s, 0, (const uint8_t *)cmd, sizeof(cmd) - 1), sizeof(cmd) - 1);
	assert_int_equal(smtp_anomaly(smtp_facts(s), SMTP_AN_INJECTION, 0)->bytes, 25);
	assert_false(smtp_facts(s)->has_mail_from); /* injected, not a command */
	smtp_feed(s, 1, (const uint8_t *)"220 go ahead\r\n", 14);
	assert_int_equal(smtp_facts(s)->starttls_reply, 220);
	assert_true(smtp_facts(s)->starttls_offered);
	assert_true(smtp_facts(s)->starttls_requested);
	/* The ClientHello begins TLS: the decoder returns where it starts. */
	assert_int_equal(smtp_feed(s, 0, (const uint8_t *)hello, sizeof(hello) - 1), 0);
	assert_true(smtp_tls_started(s, 0));
	/* Server: plaintext after its 220 and before the ServerHello. */
	static const char srv[] = "250 extra\r\n\x16\x03\x03\x00\x01x";
	assert_int_equal(smtp_feed(s, 1, (const uint8_t *)srv, sizeof(srv) - 1), 11);
	assert_int_equal(smtp_anomaly(smtp_facts(s), SMTP_AN_INJECTION, 1)->bytes, 11);
	assert_true(smtp_tls_started(s, 1));
	smtp_free(s);
}

static const struct step refused[] = {
    {1, "220 mx\r\n"},
    {0, "EHLO c\r\n"},
    {1, "250-mx\r\n250 STARTTLS\r\n"},
    {0, "STARTTLS\r\n"},
    {1, "454 4.7.0 TLS not available due to local problem\r\n"},
    {0, "MAIL FROM:<a@b.test>\r\n"},
    {1, "250 ok\r\n"},
};

static void test_starttls_refused(void **state)
{
	(void)state;
	struct smtp *s = run(refused, 7, 0);
	const struct smtp_facts *f = smtp_facts(s);
	assert_int_equal(f->starttls_reply, 454);
	assert_false(smtp_tls_started(s, 0));
	assert_false(smtp_tls_started(s, 1));
	assert_string_equal(f->mail_from_domain, "b.test");
	assert_int_equal(smtp_anomaly(f, SMTP_AN_INJECTION, 0)->count, 0);
	smtp_free(s);
	assert_split_invariant(refused, 7);
}

static const struct step bdat[] = {
    {1, "220 mx\r\n"},
    {0, "EHLO c\r\n"},
    {1, "250-mx\r\n250 CHUNKING\r\n"},
    {0, "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n"},
    {1, "250 ok\r\n250 ok\r\n"},
    {0, "BDAT 20\r\nRCPT TO:<z@q.test>\r\n.\r\nBDAT 5 LAST\r\n\r\n.\r\n"},
    {1, "250 ok\r\n250 ok\r\n"},
    {0, "QUIT\r\n"},
};

static void test_bdat_skipped_by_length(void **state)
{
	(void)state;
	struct smtp *s = run(bdat, 8, 0);
	const struct smtp_facts *f = smtp_facts(s);
	assert_int_equal(f->bdat_count, 2);
	assert_int_equal(f->body_bytes, 25);
	assert_int_equal(f->rcpt_count, 1); /* the RCPT inside the chunk is data */
	assert_true(f->quit);
	assert_true(f->pipelined);
	smtp_free(s);
	assert_split_invariant(bdat, 8);
}

static const struct step auth_login[] = {
    {1, "220 mx\r\n"},
    {0, "EHLO c\r\n"},
    {1, "250-mx\r\n250 AUTH LOGIN PLAIN\r\n"},
    {0, "AUTH LOGIN\r\n"},
    {1, "334 VXNlcm5hbWU6\r\n"},
    {0, "dXNlcg==\r\n"},
    {1, "334 UGFzc3dvcmQ6\r\n"},
    {0, "cGFzcw==\r\n"},
    {1, "235 2.7.0 Authentication successful\r\n"},
    {0, "MAIL FROM:<u@b.test>\r\n"},
    {1, "250 ok\r\n"},
};

static void test_auth_before_tls(void **state)
{
	(void)state;
	struct smtp *s = run(auth_login, 11, 0);
	const struct smtp_facts *f = smtp_facts(s);
	assert_true(f->auth_before_tls);
	assert_string_equal(f->auth_mechanism, "LOGIN");
	assert_int_equal(f->commands, 3); /* EHLO, AUTH, MAIL: credentials are not commands */
	assert_int_equal(smtp_anomaly(f, SMTP_AN_UNKNOWN_COMMAND, 0)->count, 0);
	assert_string_equal(f->mail_from_domain, "b.test");
	smtp_free(s);
	assert_split_invariant(auth_login, 11);
}

static const struct step helo_only[] = {
    {1, "220 mx\r\n"},
    {0, "HELO old.client\r\n"},
    {1, "250 mx\r\n"},
    {0, "QUIT\r\n"},
};

static void test_helo(void **state)
{
	(void)state;
	struct smtp *s = run(helo_only, 4, 0);
	assert_int_equal(smtp_facts(s)->ehlo, 0);
	assert_string_equal(smtp_facts(s)->helo_name, "old.client");
	smtp_free(s);
}

static void test_overlong_line_and_resync(void **state)
{
	(void)state;
	struct smtp *s = smtp_new();
	size_t n = 3 * SMTP_MAX_LINE;
	uint8_t *junk = malloc(n);
	memset(junk, 'A', n);
	smtp_feed(s, 0, (const uint8_t *)"EHLO ", 5);
	smtp_feed(s, 0, junk, n / 2);
	smtp_feed(s, 0, junk, n / 2);
	smtp_feed(s, 0, (const uint8_t *)"\r\nMAIL FROM:<a@ok.test>\r\n", 25);
	assert_int_equal(smtp_anomaly(smtp_facts(s), SMTP_AN_LINE_TOO_LONG, 0)->count, 1);
	assert_string_equal(smtp_facts(s)->mail_from_domain, "ok.test");
	/* A gap mid-line: the rest of that line is skipped, the next one parsed. */
	smtp_feed(s, 0, (const uint8_t *)"RCPT TO:<a@", 11);
	smtp_gap(s, 0, 100);
	smtp_feed(s, 0, (const uint8_t *)"lost.test>\r\nRCPT TO:<b@found.test>\r\n", 36);
	assert_int_equal(smtp_facts(s)->rcpt_count, 1);
	assert_string_equal(smtp_facts(s)->rcpt_domains[0], "found.test");
	assert_int_equal(smtp_anomaly(smtp_facts(s), SMTP_AN_GAP_RESYNC, 0)->count, 1);
	free(junk);
	smtp_free(s);
}

/* An EHLO reply whose first line is far over SMTP_MAX_LINE and spans
 * segments: it is still one line, so STARTTLS on the next is still an
 * extension (not the reply's host name), however the bytes are split. */
static void test_overlong_reply_line_keeps_structure(void **state)
{
	(void)state;
	size_t n = SMTP_MAX_LINE + 1000;
	char *line = malloc(n + 32);
	memcpy(line, "250-mx.example.test ", 20);
	memset(line + 20, 'A', n - 20);
	memcpy(line + n, "\r\n", 3);
	struct step steps[] = {
	    {1, "220 mx ESMTP\r\n", 0},
	    {0, "EHLO c\r\n", 0},
	    {1, line, 0},
	    {1, "250 STARTTLS\r\n", 0},
	    {0, "STARTTLS\r\n", 0},
	    {1, "220 go ahead\r\n", 0},
	};
	struct smtp *s = run(steps, 6, 0);
	const struct smtp_facts *f = smtp_facts(s);
	assert_string_equal(f->ehlo_host, "mx.example.test");
	assert_true(f->starttls_offered);
	assert_true(smtp_starttls_offer_known(f));
	assert_int_equal(f->starttls_reply, 220);
	assert_int_equal(smtp_anomaly(f, SMTP_AN_LINE_TOO_LONG, 1)->count, 1);
	smtp_free(s);
	assert_split_invariant(steps, 6);
	free(line);
}

/* Lines of the EHLO reply lost to a gap: STARTTLS may have been among
 * them, so its absence is unknown, never "not offered". */
static void test_ehlo_reply_gap_is_unknown(void **state)
{
	(void)state;
	struct smtp *s = smtp_new();
	smtp_feed(s, 1, (const uint8_t *)"220 mx\r\n", 8);
	smtp_feed(s, 0, (const uint8_t *)"EHLO c\r\n", 8);
	smtp_feed(s, 1, (const uint8_t *)"250-mx\r\n250-PIPEL", 18);
	smtp_gap(s, 1, 14);
	smtp_feed(s, 1, (const uint8_t *)"250 8BITMIME\r\n", 14);
	const struct smtp_facts *f = smtp_facts(s);
	assert_true(f->ehlo_reply_seen && f->ehlo_reply_partial);
	assert_false(smtp_starttls_not_offered(f));
	assert_false(smtp_starttls_offer_known(f));
	smtp_free(s);
	/* The same reply whole: plainly not offered. */
	s = smtp_new();
	smtp_feed(s, 1, (const uint8_t *)"220 mx\r\n", 8);
	smtp_feed(s, 0, (const uint8_t *)"EHLO c\r\n", 8);
	smtp_feed(s, 1, (const uint8_t *)"250-mx\r\n250 8BITMIME\r\n", 22);
	assert_true(smtp_starttls_not_offered(smtp_facts(s)));
	smtp_free(s);
}

/* SMTP smuggling: "." lines ended by lone CR or LF inside DATA, each
 * variant at every split, with the client-stream offset of the line end
 * before the dot. A dot-stuffed line and a lone LF elsewhere are not. */
static void test_smuggling_sequences(void **state)
{
	(void)state;
	static const char *const variants[] = {"\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n", "\r.\n"};
	static const char head[] = "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n";
	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		char body[256];
		int at = snprintf(body, sizeof(body), "%sSubject: x\r\n\r\nhello", head);
		snprintf(body + at, sizeof(body) - (size_t)at,
			 "%sMAIL FROM:<x@evil.test>\r\n..stuffed\r\n.\r\nQUIT\r\n", variants[v]);
		const struct step steps[] = {{0, body, 0}};
		struct smtp *s = run(steps, 1, 0);
		const struct smtp_facts *f = smtp_facts(s);
		assert_int_equal(f->smuggled_ends, 1);
		uint64_t dot = (uint64_t)at + (uint64_t)(strchr(variants[v], '.') - variants[v]);
		assert_int_equal(f->smuggled_end_offset, dot);
		assert_true(f->bare_line_ends >= 1);
		assert_true(f->quit); /* the real end of data is still where it is */
		smtp_free(s);
		assert_split_invariant(steps, 1);
	}
	/* A lone LF in a line and a dot-stuffed line: odd, not smuggling. */
	const struct step odd[] = {{0, "DATA\r\nSubject: x\nbody\r\n..\r\n.\r\n", 0}};
	struct smtp *s = run(odd, 1, 0);
	assert_int_equal(smtp_facts(s)->smuggled_ends, 0);
	assert_int_equal(smtp_facts(s)->bare_line_ends, 1);
	assert_int_equal(smtp_facts(s)->bare_line_end_offset, 16);
	smtp_free(s);
	assert_split_invariant(odd, 1);
	/* Clean bodies count nothing. */
	s = run(plain_session, sizeof(plain_session) / sizeof(plain_session[0]), 0);
	assert_int_equal(smtp_facts(s)->bare_line_ends + smtp_facts(s)->smuggled_ends, 0);
	smtp_free(s);
}

/* The body terminator split at every position across two feeds. */
static void test_data_terminator_every_split(void **state)
{
	(void)state;
	static const char body[] = "line one\r\n.dot\r\n\r\nlast\r\n.\r\nQUIT\r\n";
	size_t n = sizeof(body) - 1;
	for (size_t cut = 0; cut <= n; cut++) {
		struct smtp *s = smtp_new();
		smtp_feed(s, 0, (const uint8_t *)"DATA\r\n", 6);
		smtp_feed(s, 1, (const uint8_t *)"354 go\r\n", 8);
		smtp_feed(s, 0, (const uint8_t *)body, cut);
		smtp_feed(s, 0, (const uint8_t *)body + cut, n - cut);
		assert_true(smtp_facts(s)->quit);
		assert_int_equal(smtp_facts(s)->body_bytes, n - 6);
		smtp_free(s);
	}
	/* An empty body: the terminator right after DATA's own CRLF. */
	struct smtp *s = smtp_new();
	smtp_feed(s, 0, (const uint8_t *)"DATA\r\n.\r\nQUIT\r\n", 15);
	assert_true(smtp_facts(s)->quit);
	smtp_free(s);
}

static void test_data_refused_returns_to_commands(void **state)
{
	(void)state;
	/* An excerpt from inside a session: the greeting is not in it. */
	struct smtp *s = smtp_new();
	smtp_began_midstream(s);
	smtp_feed(s, 0, (const uint8_t *)"DATA\r\n", 6);
	smtp_feed(s, 1, (const uint8_t *)"554 no valid recipients\r\n", 25);
	smtp_feed(s, 0, (const uint8_t *)"QUIT\r\n", 6);
	assert_true(smtp_facts(s)->quit);
	assert_int_equal(smtp_facts(s)->data_count, 0);
	smtp_free(s);
}

/* A lost EHLO reply must not shift the pairing of later replies: the 220
 * after STARTTLS still switches the session to TLS. */
static void test_lost_reply_resync(void **state)
{
	(void)state;
	struct smtp *s = smtp_new();
	smtp_feed(s, 1, (const uint8_t *)"220 mx\r\n", 8);
	smtp_feed(s, 0, (const uint8_t *)"EHLO c\r\n", 8);
	smtp_gap(s, 1, 120); /* the EHLO reply was never captured */
	smtp_feed(s, 0, (const uint8_t *)"STARTTLS\r\n", 10);
	smtp_feed(s, 1, (const uint8_t *)"220 2.0.0 Ready\r\n", 17);
	assert_int_equal(smtp_facts(s)->starttls_reply, 220);
	static const char hello[] = "\x16\x03\x03\x00\x01x";
	assert_int_equal(smtp_feed(s, 1, (const uint8_t *)hello, sizeof(hello) - 1), 0);
	assert_true(smtp_tls_started(s, 1));
	smtp_free(s);
}

/* A client repeating EHLO and MAIL with ever new names: the names' block
 * is compacted as it grows, so it stays the size of the names in use. */
static void test_names_block_bounded(void **state)
{
	(void)state;
	struct smtp_facts *f = smtp_facts_new();
	assert_non_null(f);
	assert_string_equal(f->helo_name, "");
	assert_int_equal(smtp_facts_set_name(f, &f->rcpt_domains[0], "kept.test", 9), 0);
	char name[64];
	for (int i = 0; i < 100000; i++) {
		int n = snprintf(name, sizeof(name), "client%d.example", i);
		assert_int_equal(smtp_facts_set_name(f, &f->helo_name, name, (size_t)n), 0);
		n = snprintf(name, sizeof(name), "sender%d.example", i);
		assert_int_equal(smtp_facts_set_name(f, &f->mail_from_domain, name, (size_t)n), 0);
		assert_true(f->names_cap <= 256);
	}
	assert_string_equal(f->helo_name, "client99999.example");
	assert_string_equal(f->mail_from_domain, "sender99999.example");
	assert_string_equal(f->rcpt_domains[0], "kept.test");
	/* Cut to the longest name kept. */
	char longname[400];
	memset(longname, 'a', sizeof(longname));
	assert_int_equal(smtp_facts_set_name(f, &f->ehlo_host, longname, sizeof(longname)), 0);
	assert_int_equal(strlen(f->ehlo_host), SMTP_MAX_NAME - 1);
	assert_int_equal(smtp_facts_set_name(f, &f->ehlo_host, "", 0), 0);
	assert_string_equal(f->ehlo_host, "");
	smtp_facts_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_block_bounded),
	    cmocka_unit_test(test_plain_session),
	    cmocka_unit_test(test_overlong_reply_line_keeps_structure),
	    cmocka_unit_test(test_ehlo_reply_gap_is_unknown),
	    cmocka_unit_test(test_smuggling_sequences),
	    cmocka_unit_test(test_mangled_starttls),
	    cmocka_unit_test(test_mangled_variants),
	    cmocka_unit_test(test_starttls_switch_and_injection),
	    cmocka_unit_test(test_starttls_refused),
	    cmocka_unit_test(test_bdat_skipped_by_length),
	    cmocka_unit_test(test_auth_before_tls),
	    cmocka_unit_test(test_helo),
	    cmocka_unit_test(test_overlong_line_and_resync),
	    cmocka_unit_test(test_data_terminator_every_split),
	    cmocka_unit_test(test_data_refused_returns_to_commands),
	    cmocka_unit_test(test_lost_reply_resync),
	    cmocka_unit_test(test_early_pipelining),
	};
	return cmocka_run_group_tests_name("smtp", tests, NULL, NULL);
}
