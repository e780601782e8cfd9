/*
 * test_rules.c - every finding, judged by rules_evaluate() alone on
 * hand-built session records: no capture, no flow table. Each case states
 * what the wire showed and the policy in force, and the expected findings
 * and verdict follow from the RFC text quoted beside it, not from the
 * program's output. Certificates are the corpus PEM files; times are
 * derived from their own validity with OpenSSL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "db/policy/cache.h"
#include "db/policy/policyfile.h"
#include "db/sql/db.h"
#include "decoder/record.h"
#include "rules/history.h"
#include "rules/rules.h"
#include "util/text.h"
#include "util/units.h"

#define CA_PEM        "pcaps/certs/ca.example.test.pem"
#define CA2_PEM       "pcaps/certs/ca2.example.test.pem"
#define LEAF_PEM      "pcaps/certs/mx.example.test.pem"         /* mx. and mail.example.test */
#define EXPIRED_PEM   "pcaps/certs/mx-expired.example.test.pem" /* 2020-2021, from CA2 */
#define WRONGNAME_PEM "pcaps/certs/wrongname.example.org.pem"   /* from CA2 */

#define SERVER "192.0.2.25"
#define CLIENT "198.51.100.7"

/* ---------------------------------------------------------------- world */

static X509 *load_pem(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

struct world {
	char dbpath[64], bundle[64];
	struct db *db;
	struct policy_cache *cache;
	struct history *hist;
	struct rules *rules;
	struct finding got[64];
	int n;
	struct verdict v;
};

static uint64_t cert_time(const char *pem, int after, int64_t shift_s)
{
	X509 *x = load_pem(pem);
	struct tm tm;
	assert_true(ASN1_TIME_to_tm(after ? X509_get0_notAfter(x) : X509_get0_notBefore(x), &tm));
	X509_free(x);
	return (uint64_t)(timegm(&tm) + shift_s) * NS_PER_S;
}

/* A capture time inside the validity of every corpus certificate but the
 * expired one: a day after the leaf's start. */
static uint64_t capture_time(void)
{
	return cert_time(LEAF_PEM, 0, 86400);
}

static void append_file(FILE *out, const char *path)
{
	FILE *in = fopen(path, "r");
	assert_non_null(in);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
}

/* A database holding `policy` (the import format), its cache, and rules
 * trusting both corpus CAs. */
static struct world *world_new(const char *policy, void (*tune)(struct rules_config *))
{
	struct world *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	snprintf(w->dbpath, sizeof(w->dbpath), "/tmp/mxwatch-rules-XXXXXX");
	int fd = mkstemp(w->dbpath);
	assert_true(fd >= 0);
	close(fd);
	unlink(w->dbpath);
	snprintf(w->bundle, sizeof(w->bundle), "/tmp/mxwatch-ca-XXXXXX");
	fd = mkstemp(w->bundle);
	assert_true(fd >= 0);
	FILE *b = fdopen(fd, "w");
	append_file(b, CA_PEM);
	append_file(b, CA2_PEM);
	fclose(b);

	char err[512];
	w->db = db_open(w->dbpath, err, sizeof(err));
	assert_non_null(w->db);
	FILE *f = fmemopen((void *)policy, strlen(policy), "r");
	assert_non_null(f);
	int records = 0;
	assert_int_equal(policyfile_import(w->db, f, "test.policy", err, sizeof(err), &records), 0);
	fclose(f);
	w->cache = policy_cache_load(w->db, err, sizeof(err));
	assert_non_null(w->cache);
	w->hist = history_new();
	assert_non_null(w->hist);
	struct rules_config cfg;
	rules_config_defaults(&cfg);
	snprintf(cfg.ca_bundle, sizeof(cfg.ca_bundle), "%s", w->bundle);
	if (tune)
		tune(&cfg);
	w->rules = rules_new(&cfg, w->cache, w->hist, err, sizeof(err));
	assert_non_null(w->rules);
	return w;
}

static void world_free(struct world *w)
{
	char p[96];
	rules_free(w->rules);
	history_free(w->hist);
	policy_cache_free(w->cache);
	db_close(w->db);
	unlink(w->dbpath);
	snprintf(p, sizeof(p), "%s-wal", w->dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", w->dbpath);
	unlink(p);
	unlink(w->bundle);
	free(w);
}

static void collect(void *ctx, const struct finding *f)
{
	struct world *w = ctx;
	assert_true(w->n < 64);
	w->got[w->n++] = *f;
}

static void judge(struct world *w, const struct session_record *r)
{
	w->n = 0;
	rules_evaluate(w->rules, r, collect, w, &w->v);
}

/* The finding `id` raised for `domain` ("" for none), or NULL. */
static const struct finding *found(const struct world *w, enum finding_id id, const char *domain)
{
	for (int i = 0; i < w->n; i++)
		if (w->got[i].id == id && !strcmp(w->got[i].domain, domain))
			return &w->got[i];
	return NULL;
}

/* Exactly these findings (ids, any domain), in any order. */
static void expect_ids(const struct world *w, int n, ...)
{
	va_list ap;
	va_start(ap, n);
	int want[F_COUNT] = {0};
	for (int i = 0; i < n; i++)
		want[va_arg(ap, int)]++;
	va_end(ap);
	int have[F_COUNT] = {0};
	for (int i = 0; i < w->n; i++)
		have[w->got[i].id]++;
	for (int i = 0; i < F_COUNT; i++) {
		if (want[i] != have[i]) {
			for (int k = 0; k < w->n; k++)
				print_message("  got %s@%s: %s\n", finding_name(w->got[k].id),
					      w->got[k].domain, w->got[k].message);
		}
		if (want[i] != have[i])
			fail_msg("%s: expected %d, got %d", finding_name((enum finding_id)i),
				 want[i], have[i]);
	}
}

/* --------------------------------------------------------------- records */

static struct session_record *rec_new(uint64_t ts)
{
	struct session_record *r = record_new();
	assert_non_null(r);
	snprintf(r->id, sizeof(r->id), "00000000000000%02d", 1);
	r->ts_first = ts;
	r->ts_last = ts + 2 * NS_PER_S;
	r->family = 4;
	snprintf(r->ip[0], sizeof(r->ip[0]), CLIENT);
	snprintf(r->ip[1], sizeof(r->ip[1]), SERVER);
	r->port[0] = 40000;
	r->port[1] = 25;
	r->end = "fin";
	r->kind = SESSION_SMTP;
	r->reason = SESSION_BY_PORT;
	return r;
}

static int set_name(struct smtp_facts *m, const char **field, const char *v)
{
	return smtp_facts_set_name(m, field, v, strlen(v));
}

/* The SMTP facts of a session to `rcpt_domain`: greeting and EHLO reply
 * seen, STARTTLS offered or not. */
static struct smtp_facts *smtp_new_facts(const char *rcpt_domain, int starttls_offered)
{
	struct smtp_facts *m = smtp_facts_new();
	assert_non_null(m);
	m->greeting_code = 220;
	assert_int_equal(set_name(m, &m->greeting_host, "mx.example.test"), 0);
	assert_int_equal(set_name(m, &m->helo_name, "client.example.net"), 0);
	m->ehlo = 1;
	m->ehlo_reply_seen = 1;
	m->starttls_offered = (uint8_t)starttls_offered;
	if (rcpt_domain) {
		assert_int_equal(set_name(m, &m->rcpt_domains[0], rcpt_domain), 0);
		m->rcpt_domain_count = 1;
		m->rcpt_count = 1;
	}
	return m;
}

/* A plaintext mail transaction to `rcpt_domain`. */
static struct session_record *plaintext(uint64_t ts, const char *rcpt_domain, int offered)
{
	struct session_record *r = rec_new(ts);
	struct smtp_facts *m = smtp_new_facts(rcpt_domain, offered);
	m->has_mail_from = 1;
	assert_int_equal(set_name(m, &m->mail_from_domain, "example.net"), 0);
	m->data_count = 1;
	record_take_smtp(r, m);
	return r;
}

static void add_cert(struct tls_facts *t, const char *pem)
{
	X509 *x = load_pem(pem);
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);
	assert_true(len > 0);
	assert_int_equal(tls_facts_add_cert(t, der, (size_t)len), 0);
	OPENSSL_free(der);
	X509_free(x);
}

/* A STARTTLS session (SMTP facts before the switch, then TLS), with the
 * chain `leaf, ca` (NULLs: no Certificate message), no SNI. */
static struct session_record *tls_session(uint64_t ts, uint16_t version, uint16_t cipher,
					  const char *leaf, const char *ca)
{
	struct session_record *r = rec_new(ts);
	struct smtp_facts *m = smtp_new_facts(NULL, 1);
	m->starttls_requested = 1;
	m->starttls_reply = 220;
	m->tls_started[0] = m->tls_started[1] = 1;
	record_take_smtp(r, m);
	struct tls_facts *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->client_hello = t->server_hello = 1;
	t->version = version;
	t->cipher = cipher;
	t->handshake_complete = 1;
	t->encrypted[0] = t->encrypted[1] = 1;
	if (leaf && version < TLS_V13) {
		t->certificate_seen = 1;
		add_cert(t, leaf);
		if (ca)
			add_cert(t, ca);
	}
	r->tls_used = 1;
	record_take_tls(r, t);
	return r;
}

/* TLSA association data of a certificate's key: SHA-256 of the DER
 * SubjectPublicKeyInfo (selector 1, matching type 1), as hex. */
static void spki_sha256_hex(const char *pem, char out[65])
{
	X509 *x = load_pem(pem);
	unsigned char *der = NULL;
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	unsigned char md[32];
	unsigned int mdlen = 0;
	assert_true(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL));
	hex_encode(md, 32, out);
	OPENSSL_free(der);
	X509_free(x);
}

/* Policy text: example.test's MX host mx.example.test at SERVER, plus
 * `extra` lines. */
static char *policy(const char *extra)
{
	static char buf[4096];
	snprintf(buf, sizeof(buf),
		 "mx example.test 10 mx.example.test\n"
		 "address mx.example.test " SERVER "\n%s",
		 extra);
	return buf;
}

static char *tlsa_policy(const char *usage_sel_mt, const char *pem, const char *more)
{
	static char buf[1024];
	char hex[65];
	spki_sha256_hex(pem, hex);
	snprintf(buf, sizeof(buf), "tlsa mx.example.test 25 %s %s\n%s", usage_sel_mt, hex, more);
	return policy(buf);
}

#define STS_ENFORCE "mta-sts example.test mode=enforce max_age=86400 mx=mx.example.test\n"
#define STS_TESTING "mta-sts example.test mode=testing max_age=86400 mx=mx.example.test\n"

/* ---------------------------------------------------------------- tests */

/* RFC 3207 4: the STARTTLS keyword in the EHLO reply; an 8-character
 * garble in its place is a middlebox rewrite (design brief). RFC 8460
 * 4.3.2.1 files it as starttls-not-supported. Needs no policy. */
static void test_stripped(void **state)
{
	(void)state;
	struct world *w = world_new("", NULL);
	struct session_record *r = plaintext(capture_time(), "example.org", 0);
	snprintf(r->smtp->mangled_token, sizeof(r->smtp->mangled_token), "XXXXXXXA");
	judge(w, r);
	expect_ids(w, 2, F_STARTTLS_STRIPPED, F_POLICY_UNKNOWN);
	const struct finding *f = found(w, F_STARTTLS_STRIPPED, "example.org");
	assert_non_null(f);
	assert_true(f->alert);
	assert_string_equal(f->rfc8460, "starttls-not-supported");
	assert_true(f->evidence & EV_RCPT);
	record_free(r);
	world_free(w);
}

/* A server that offered STARTTLS before and no longer does: the earlier
 * session is learnt, the later one is starttls-lost from history. The
 * session cannot vouch for itself: the first one raises nothing. */
static void test_lost_from_history(void **state)
{
	(void)state;
	struct world *w = world_new("", NULL);
	struct session_record *first = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM,
						   CA_PEM);
	judge(w, first);
	expect_ids(w, 0);
	struct session_record *second = plaintext(capture_time() + 60 * NS_PER_S, NULL, 0);
	judge(w, second);
	expect_ids(w, 1, F_STARTTLS_LOST);
	assert_true(w->got[0].evidence & EV_HISTORY);
	record_free(first);
	record_free(second);
	world_free(w);
}

/* RFC 8461 5: an enforce policy means a sender MUST NOT deliver without
 * validated TLS; STARTTLS missing is starttls-lost and the mail sent in
 * plaintext is plaintext-to-policy-domain, both alerting; RFC 8460
 * 4.3.2.1: starttls-not-supported. */
static void test_sts_enforce_plaintext(void **state)
{
	(void)state;
	struct world *w = world_new(policy(STS_ENFORCE), NULL);
	struct session_record *r = plaintext(capture_time(), "example.test", 0);
	judge(w, r);
	expect_ids(w, 2, F_STARTTLS_LOST, F_PLAINTEXT_TO_POLICY_DOMAIN);
	const struct finding *f = found(w, F_PLAINTEXT_TO_POLICY_DOMAIN, "example.test");
	assert_non_null(f);
	assert_true(f->alert);
	assert_string_equal(f->rfc8460, "starttls-not-supported");
	assert_string_equal(f->mx_host, "mx.example.test");
	assert_true(f->evidence & EV_RCPT);
	assert_true(f->evidence & EV_MX_MAP);
	record_free(r);
	world_free(w);
}

/* RFC 8461 5: in testing mode a sender reports but delivers anyway: the
 * finding is kept for the report, with no alert. STARTTLS is not lost
 * (testing does not require it). */
static void test_sts_testing_reports_only(void **state)
{
	(void)state;
	struct world *w = world_new(policy(STS_TESTING), NULL);
	struct session_record *r = plaintext(capture_time(), "example.test", 0);
	judge(w, r);
	expect_ids(w, 1, F_PLAINTEXT_TO_POLICY_DOMAIN);
	assert_false(w->got[0].alert);
	assert_int_equal(w->got[0].severity, SEV_INFO);
	record_free(r);
	world_free(w);
}

/* RFC 3207 4: 454 "TLS not available" answers STARTTLS; RFC 8460 4.3.2.1
 * starttls-not-supported. */
static void test_refused(void **state)
{
	(void)state;
	struct world *w = world_new("", NULL);
	struct session_record *r = plaintext(capture_time(), "example.org", 1);
	r->smtp->starttls_requested = 1;
	r->smtp->starttls_reply = 454;
	judge(w, r);
	expect_ids(w, 2, F_STARTTLS_REFUSED, F_POLICY_UNKNOWN);
	assert_string_equal(w->got[0].rfc8460, "starttls-not-supported");
	record_free(r);
	world_free(w);
}

/* Offered, not used, mail in plaintext: starttls-unused; a peer on the
 * plaintext allow-list is exempt. */
static void allow_client(struct rules_config *c)
{
	snprintf(c->allow_plaintext[c->n_allow++], sizeof(c->allow_plaintext[0]), CLIENT);
}

static void test_unused_and_allowlist(void **state)
{
	(void)state;
	struct world *w = world_new("", NULL);
	struct session_record *r = plaintext(capture_time(), "example.org", 1);
	judge(w, r);
	expect_ids(w, 2, F_STARTTLS_UNUSED, F_POLICY_UNKNOWN);
	world_free(w);
	w = world_new("", allow_client);
	judge(w, r);
	expect_ids(w, 1, F_POLICY_UNKNOWN);
	record_free(r);
	world_free(w);
}

/* RFC 4954 4 / RFC 3207 6: AUTH before TLS exposes the credentials. */
static void test_plaintext_auth(void **state)
{
	(void)state;
	struct world *w = world_new("", NULL);
	struct session_record *r = plaintext(capture_time(), NULL, 0);
	r->smtp->auth_before_tls = 1;
	snprintf(r->smtp->auth_mechanism, sizeof(r->smtp->auth_mechanism), "PLAIN");
	judge(w, r);
	expect_ids(w, 1, F_PLAINTEXT_AUTH);
	record_free(r);
	world_free(w);
}

/* Plaintext bytes between the 220 to STARTTLS and the handshake (the
 * "NO STARTTLS" class, CVE-2011-0411): RFC 3207 4.2 says the client MUST
 * discard knowledge from before TLS; RFC 8460 validation-failure. */
static void test_injection(void **state)
{
	(void)state;
	struct world *w = world_new("", NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	r->smtp->anomalies = calloc(SMTP_AN_COUNT, sizeof(*r->smtp->anomalies));
	assert_non_null(r->smtp->anomalies);
	r->smtp->anomalies[SMTP_AN_INJECTION][1].count = 1;
	r->smtp->anomalies[SMTP_AN_INJECTION][1].bytes = 32;
	judge(w, r);
	expect_ids(w, 1, F_STARTTLS_INJECTION);
	assert_string_equal(w->got[0].rfc8460, "validation-failure");
	record_free(r);
	world_free(w);
}

/* RFC 8996: TLS 1.0 and 1.1 are deprecated; RFC 7465: RC4 prohibited,
 * even where the TLS library in use no longer knows the suite's name. */
static void test_tls_weak(void **state)
{
	(void)state;
	struct world *w = world_new("", NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V10, 0x002f, LEAF_PEM, CA_PEM);
	judge(w, r);
	expect_ids(w, 1, F_TLS_WEAK);
	record_free(r);
	r = tls_session(capture_time(), TLS_V12, 0x0005 /* TLS_RSA_WITH_RC4_128_SHA */, LEAF_PEM,
			CA_PEM);
	judge(w, r);
	expect_ids(w, 1, F_TLS_WEAK);
	record_free(r);
	world_free(w);
}

/* SMTP on a port that is not 25/587/465 (RFC 5321 4.5.4.2, RFC 6409,
 * RFC 8314): informational, low. */
static void test_nonstandard_port(void **state)
{
	(void)state;
	struct world *w = world_new("", NULL);
	struct session_record *r = plaintext(capture_time(), NULL, 0);
	r->port[1] = 2525;
	judge(w, r);
	expect_ids(w, 1, F_SMTP_NONSTANDARD);
	assert_int_equal(w->got[0].severity, SEV_LOW);
	record_free(r);
	world_free(w);
}

/* A TLS handshake that failed, then a plaintext session to the same server
 * within the window: tls-failed-fallback, validation-failure. */
static void test_failed_fallback(void **state)
{
	(void)state;
	struct world *w = world_new("", NULL);
	uint64_t t0 = capture_time();
	struct session_record *a = tls_session(t0, TLS_V12, 0xc02f, NULL, NULL);
	a->tls->handshake_complete = 0;
	a->tls->server_hello = 0;
	judge(w, a);
	expect_ids(w, 0);
	struct session_record *b = plaintext(t0 + 30 * NS_PER_S, "example.org", 1);
	judge(w, b);
	expect_ids(w, 3, F_TLS_FAILED_FALLBACK, F_STARTTLS_UNUSED, F_POLICY_UNKNOWN);
	assert_string_equal(found(w, F_TLS_FAILED_FALLBACK, "example.org")->rfc8460,
			    "validation-failure");
	record_free(a);
	record_free(b);
	/* A client that gives up on TLS opens the plaintext retry at once,
	 * while the failed connection is still closing (OpenSMTPD): the retry
	 * starts before the failed session's last packet. Still a fallback. */
	a = tls_session(t0 + 100 * NS_PER_S, TLS_V13, 0x1302, NULL, NULL);
	snprintf(a->ip[1], sizeof(a->ip[1]), "192.0.2.99");
	a->tls->handshake_complete = 0;
	a->ts_last = a->ts_first + 2 * NS_PER_S;
	judge(w, a);
	b = plaintext(t0 + 100 * NS_PER_S + NS_PER_MS, "example.org", 1);
	snprintf(b->ip[1], sizeof(b->ip[1]), "192.0.2.99");
	judge(w, b);
	assert_non_null(found(w, F_TLS_FAILED_FALLBACK, "example.org"));
	record_free(a);
	record_free(b);
	world_free(w);
}

/* RFC 7672 3.1.1: DANE-EE(3) matches the server's key and ignores names
 * and validity dates. Here the chain matches 3 1 1 of the leaf: verified
 * by DANE, no finding. */
static void test_dane_ee_match(void **state)
{
	(void)state;
	struct world *w = world_new(tlsa_policy("3 1 1", LEAF_PEM, ""), NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	r->smtp->rcpt_domain_count = 0;
	judge(w, r);
	expect_ids(w, 0);
	assert_int_equal(w->v.verified, 1);
	assert_string_equal(w->v.method, "dane");
	assert_string_equal(w->v.domain, "example.test");
	assert_int_equal(w->v.verdict, VERDICT_VERIFIED);
	record_free(r);
	world_free(w);
}

/* RFC 7672 3.1.1 again: DANE-EE still matches a certificate that PKIX
 * rejects as expired and misnamed (the expired CA2 chain here). */
static void test_dane_ee_ignores_dates(void **state)
{
	(void)state;
	struct world *w = world_new(tlsa_policy("3 1 1", EXPIRED_PEM, ""), NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, EXPIRED_PEM,
					       CA2_PEM);
	judge(w, r);
	expect_ids(w, 0);
	assert_int_equal(w->v.verified, 1);
	record_free(r);
	world_free(w);
}

/* RFC 7672 2.2 / 3.1.2: DANE-TA(2) names a trust anchor, and then the
 * leaf must carry the MX host's name (RFC 7672 3.2.2). A leaf issued by
 * the matched CA2 anchor but named wrong.example.org does not match. */
static void test_dane_ta(void **state)
{
	(void)state;
	struct world *w = world_new(tlsa_policy("2 1 1", CA_PEM, ""), NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	judge(w, r);
	expect_ids(w, 0);
	assert_int_equal(w->v.verified, 1);
	record_free(r);
	world_free(w);
	w = world_new(tlsa_policy("2 1 1", CA2_PEM, ""), NULL);
	r = tls_session(capture_time(), TLS_V12, 0xc02f, WRONGNAME_PEM, CA2_PEM);
	judge(w, r);
	expect_ids(w, 1, F_DANE_MISMATCH);
	assert_int_equal(w->v.verified, 0);
	record_free(r);
	world_free(w);
}

/* RFC 7672 2.2: a chain that matches no usable TLSA record must not be
 * accepted: dane-mismatch, alerting, validation-failure (RFC 8460
 * 4.3.2.2). */
static void test_dane_mismatch(void **state)
{
	(void)state;
	struct world *w = world_new(tlsa_policy("3 1 1", WRONGNAME_PEM, ""), NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	judge(w, r);
	expect_ids(w, 1, F_DANE_MISMATCH);
	assert_true(w->got[0].alert);
	assert_string_equal(w->got[0].rfc8460, "validation-failure");
	assert_int_equal(w->v.verified, 0);
	assert_int_equal(w->v.verdict, VERDICT_FAILED);
	record_free(r);
	world_free(w);
}

/* RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are not usable for SMTP; a
 * host with only such records has no usable TLSA: dane-unusable
 * (tlsa-invalid, RFC 8460 4.3.2.2), and no DANE verdict. */
static void test_dane_unusable(void **state)
{
	(void)state;
	struct world *w = world_new(tlsa_policy("1 1 1", LEAF_PEM, ""), NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	judge(w, r);
	expect_ids(w, 1, F_DANE_UNUSABLE);
	assert_string_equal(w->got[0].rfc8460, "tlsa-invalid");
	assert_int_not_equal(w->v.verified, 1);
	record_free(r);
	world_free(w);
}

/* RFC 8461 4.1: "*.example.test" matches exactly one left-most label:
 * mx.example.test is covered, a.mx.example.test is not. An uncovered MX
 * is mtasts-mx-mismatch. */
static void test_sts_wildcard_mx(void **state)
{
	(void)state;
	const char *lines = "mta-sts example.test mode=enforce max_age=86400 mx=*.example.test\n"
			    "mx example.test 20 a.mx.example.test\n"
			    "address a.mx.example.test 192.0.2.26\n";
	struct world *w = world_new(policy(lines), NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	judge(w, r);
	expect_ids(w, 0);
	assert_int_equal(w->v.verified, 1);
	assert_string_equal(w->v.method, "pkix");
	record_free(r);
	r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	snprintf(r->ip[1], sizeof(r->ip[1]), "192.0.2.26");
	judge(w, r);
	assert_non_null(found(w, F_MTASTS_MX_MISMATCH, "example.test"));
	record_free(r);
	world_free(w);
}

/* RFC 8461 4.2: the certificate must be PKIX-valid for the MX host:
 * expired is certificate-expired, another name certificate-host-mismatch
 * (RFC 8460 4.3.2.3). */
static void test_sts_certificate(void **state)
{
	(void)state;
	struct world *w = world_new(policy(STS_ENFORCE), NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, EXPIRED_PEM,
					       CA2_PEM);
	judge(w, r);
	expect_ids(w, 1, F_MTASTS_CERT_INVALID);
	assert_string_equal(w->got[0].rfc8460, "certificate-expired");
	assert_int_equal(w->v.verified, 0);
	record_free(r);
	r = tls_session(capture_time(), TLS_V12, 0xc02f, WRONGNAME_PEM, CA2_PEM);
	judge(w, r);
	expect_ids(w, 1, F_MTASTS_CERT_INVALID);
	assert_string_equal(w->got[0].rfc8460, "certificate-host-mismatch");
	record_free(r);
	/* The same expired certificate, judged at a time inside its validity:
	 * valid. */
	r = tls_session(cert_time(EXPIRED_PEM, 0, 86400), TLS_V12, 0xc02f, EXPIRED_PEM, CA2_PEM);
	judge(w, r);
	expect_ids(w, 0);
	assert_int_equal(w->v.verified, 1);
	record_free(r);
	world_free(w);
}

/* RFC 8461 5.1 and 3.2: a policy is valid for max_age seconds after it was
 * fetched; a session after that is judged without it and reported as
 * policy-stale. */
static void test_policy_stale(void **state)
{
	(void)state;
	struct world *w = world_new(policy(STS_ENFORCE), NULL);
	uint64_t later = ((uint64_t)time(NULL) + 2 * 86400) * NS_PER_S;
	struct session_record *r = plaintext(later, "example.test", 0);
	judge(w, r);
	expect_ids(w, 1, F_POLICY_STALE);
	record_free(r);
	world_free(w);
}

/* RFC 8446 4.4.2: in TLS 1.3 the Certificate message is encrypted. No
 * chain to check: no certificate finding, and the verdict stays unknown. */
static void test_tls13_not_observable(void **state)
{
	(void)state;
	struct world *w = world_new(tlsa_policy("3 1 1", WRONGNAME_PEM, STS_ENFORCE), NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V13, 0x1301, LEAF_PEM, CA_PEM);
	judge(w, r);
	expect_ids(w, 0);
	assert_int_equal(w->v.verified, -1);
	assert_string_equal(record_certs_unobservable(r), "tls1.3-encrypted");
	record_free(r);
	world_free(w);
}

/* An anonymous suite (no Certificate message in a completed TLS 1.2
 * handshake) can satisfy neither DANE (RFC 7672 2.2: the server must
 * present a matching chain) nor MTA-STS (RFC 8461 4.2): one
 * tls-unauthenticated, a validation-failure (RFC 8460 4.3.2.4), and the
 * session fails. Without a policy it is RFC 7435 opportunistic TLS
 * (Postfix's default between two instances): a note that never alerts. */
static void test_anonymous(void **state)
{
	(void)state;
	struct world *w = world_new(tlsa_policy("3 1 1", LEAF_PEM, STS_ENFORCE), NULL);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0x00a7, NULL, NULL);
	judge(w, r);
	expect_ids(w, 1, F_TLS_UNAUTHENTICATED);
	assert_true(w->got[0].alert);
	assert_string_equal(w->got[0].rfc8460, "validation-failure");
	assert_int_equal(w->v.verdict, VERDICT_FAILED);
	assert_int_equal(w->v.verified, 0);
	world_free(w);
	w = world_new(policy(""), NULL);
	judge(w, r);
	expect_ids(w, 1, F_TLS_UNAUTHENTICATED);
	assert_false(w->got[0].alert);
	assert_int_equal(w->got[0].severity, SEV_INFO);
	assert_null(w->got[0].rfc8460);
	assert_int_equal(w->v.verdict, VERDICT_NO_POLICY);
	record_free(r);
	world_free(w);
}

/* RFC 8461 4.1: an MX host that matches no "mx" pattern is not a valid
 * candidate, whatever its certificate: the session fails the policy even
 * though the chain is PKIX-valid for the host (the certificate names
 * mail.example.test too). */
static void test_mx_outside_policy_fails(void **state)
{
	(void)state;
	const char *lines = "mta-sts example.test mode=enforce max_age=86400 mx=mx.example.test\n"
			    "mx example.test 20 mail.example.test\n"
			    "address mail.example.test 192.0.2.26\n";
	struct world *w = world_new(policy(lines), NULL);
	/* The chain is PKIX-valid for mail.example.test, the MX it reached. */
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	snprintf(r->ip[1], sizeof(r->ip[1]), "192.0.2.26");
	judge(w, r);
	expect_ids(w, 1, F_MTASTS_MX_MISMATCH);
	assert_int_equal(w->v.verdict, VERDICT_FAILED);
	assert_int_not_equal(w->v.verified, 1);
	record_free(r);
	world_free(w);
}

/* The verdict list (DESIGN.md): each session gets exactly one. */
static void test_verdicts(void **state)
{
	(void)state;
	/* A domain the cache knows, with neither MTA-STS nor TLSA: TLS is
	 * no-policy, plaintext is plaintext. */
	struct world *w = world_new(policy(""), NULL);
	struct session_record *r = plaintext(capture_time(), "example.test", 0);
	judge(w, r);
	expect_ids(w, 0);
	assert_int_equal(w->v.verdict, VERDICT_PLAINTEXT);
	record_free(r);
	/* A recipient domain the cache has never seen: its policy is
	 * unknown, which is not an all-clear. */
	r = plaintext(capture_time(), "unknown.example", 0);
	judge(w, r);
	expect_ids(w, 1, F_POLICY_UNKNOWN);
	assert_int_equal(w->v.verdict, VERDICT_POLICY_UNKNOWN);
	assert_string_equal(w->v.reason, "not-cached");
	record_free(r);
	/* (Judged after the plaintext ones: a server that offered STARTTLS
	 * once and then not is starttls-lost, a failure.) */
	r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	judge(w, r);
	assert_int_equal(w->v.verdict, VERDICT_NO_POLICY);
	assert_null(w->v.reason);
	record_free(r);
	/* TLS to no domain at all (nothing tied the server to one). */
	r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	snprintf(r->ip[1], sizeof(r->ip[1]), "203.0.113.9");
	judge(w, r);
	assert_int_equal(w->v.verdict, VERDICT_NOT_CHECKABLE);
	assert_string_equal(w->v.reason, "no-domain");
	record_free(r);
	world_free(w);

	/* Under DANE: TLS 1.3 hides the chain (RFC 8446 4.4.2), never
	 * verified without keys; a TLS 1.2 session that ended before the
	 * server's Certificate has no chain to check. */
	w = world_new(tlsa_policy("3 1 1", LEAF_PEM, ""), NULL);
	r = tls_session(capture_time(), TLS_V13, 0x1302, LEAF_PEM, CA_PEM);
	judge(w, r);
	assert_int_equal(w->v.verdict, VERDICT_NOT_CHECKABLE);
	assert_string_equal(w->v.reason, "tls13-no-keys");
	record_free(r);
	r = tls_session(capture_time(), TLS_V12, 0xc02f, NULL, NULL);
	r->tls->handshake_complete = 0;
	judge(w, r);
	assert_int_equal(w->v.verdict, VERDICT_NOT_CHECKABLE);
	assert_string_equal(w->v.reason, "no-certificate-seen");
	record_free(r);
	world_free(w);

	/* RFC 8461 5.1: past max_age the cached policy no longer applies, and
	 * what the domain wants now is unknown. */
	w = world_new(policy(STS_ENFORCE), NULL);
	r = plaintext(((uint64_t)time(NULL) + 2 * 86400) * NS_PER_S, "example.test", 0);
	judge(w, r);
	assert_int_equal(w->v.verdict, VERDICT_POLICY_UNKNOWN);
	assert_string_equal(w->v.reason, "expired");
	record_free(r);
	world_free(w);
}

/* DESIGN.md verdicts, RFC 8461 5.1: when the last fetch of a domain's
 * policy failed (a resolver or policy host down, or an attacker blocking
 * the fetch), what the domain wants now is unknown: an alerting
 * policy-unknown and that verdict, even for a session that looks clean.
 * A domain never fetched is only a note. */
static void test_policy_fetch_failed(void **state)
{
	(void)state;
	struct world *w = world_new(policy(STS_ENFORCE), NULL);
	struct db_sts sts;
	assert_int_equal(db_sts_get(w->db, "example.test", &sts), 1);
	snprintf(sts.result, sizeof(sts.result), "sts-policy-fetch-error");
	assert_int_equal(db_sts_put(w->db, &sts), 0);
	free(sts.policy_text);
	char err[256];
	rules_free(w->rules);
	policy_cache_free(w->cache);
	w->cache = policy_cache_load(w->db, err, sizeof(err));
	assert_non_null(w->cache);
	struct rules_config cfg;
	rules_config_defaults(&cfg);
	snprintf(cfg.ca_bundle, sizeof(cfg.ca_bundle), "%s", w->bundle);
	w->rules = rules_new(&cfg, w->cache, w->hist, err, sizeof(err));
	assert_non_null(w->rules);
	struct session_record *r = tls_session(capture_time(), TLS_V12, 0xc02f, LEAF_PEM, CA_PEM);
	judge(w, r);
	expect_ids(w, 1, F_POLICY_UNKNOWN);
	assert_true(w->got[0].alert);
	assert_int_equal(w->got[0].severity, SEV_LOW);
	assert_null(w->got[0].rfc8460);
	assert_int_equal(w->v.verdict, VERDICT_POLICY_UNKNOWN);
	assert_string_equal(w->v.reason, "fetch-failed");
	record_free(r);
	world_free(w);

	w = world_new(policy(""), NULL);
	r = plaintext(capture_time(), "elsewhere.example", 0);
	judge(w, r);
	expect_ids(w, 1, F_POLICY_UNKNOWN);
	assert_false(w->got[0].alert);
	assert_int_equal(w->got[0].severity, SEV_INFO);
	assert_int_equal(w->v.verdict, VERDICT_POLICY_UNKNOWN);
	assert_string_equal(w->v.reason, "not-cached");
	record_free(r);
	world_free(w);
}

/* Only the record is needed: a session with no SMTP facts at all (implicit
 * TLS on 465) is judged without touching anything else. */
static void test_smtps_record_alone(void **state)
{
	(void)state;
	struct world *w = world_new(policy(STS_ENFORCE), NULL);
	struct session_record *r = rec_new(capture_time());
	r->port[1] = 465;
	r->kind = SESSION_SMTPS;
	judge(w, r);
	expect_ids(w, 0);
	assert_string_equal(w->v.domain, "example.test");
	record_free(r);
	world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stripped),
	    cmocka_unit_test(test_lost_from_history),
	    cmocka_unit_test(test_sts_enforce_plaintext),
	    cmocka_unit_test(test_sts_testing_reports_only),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_unused_and_allowlist),
	    cmocka_unit_test(test_plaintext_auth),
	    cmocka_unit_test(test_injection),
	    cmocka_unit_test(test_tls_weak),
	    cmocka_unit_test(test_nonstandard_port),
	    cmocka_unit_test(test_failed_fallback),
	    cmocka_unit_test(test_dane_ee_match),
	    cmocka_unit_test(test_dane_ee_ignores_dates),
	    cmocka_unit_test(test_dane_ta),
	    cmocka_unit_test(test_dane_mismatch),
	    cmocka_unit_test(test_dane_unusable),
	    cmocka_unit_test(test_sts_wildcard_mx),
	    cmocka_unit_test(test_sts_certificate),
	    cmocka_unit_test(test_policy_stale),
	    cmocka_unit_test(test_tls13_not_observable),
	    cmocka_unit_test(test_anonymous),
	    cmocka_unit_test(test_mx_outside_policy_fails),
	    cmocka_unit_test(test_verdicts),
	    cmocka_unit_test(test_smtps_record_alone),
	    cmocka_unit_test(test_policy_fetch_failed),
	};
	return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
