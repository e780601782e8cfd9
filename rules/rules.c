/*
 * rules.c - the compliance checks. A session is first tied to its policy
 * domains (bindings, each with the evidence that tied it), then every check
 * runs against the facts and the cached policy of each binding.
 */
#include "rules/rules.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db/policy/mtasts.h"
#include "db/policy/observed.h"
#include "decoder/x509.h"
#include "rules/history.h"
#include "rules/verify.h"
#include "util/text.h"
#include "util/units.h"

#define MAX_BINDINGS     16
#define FAILED_TLS_SLOTS 4096

static const struct {
	const char *name;
	enum severity severity;
	const char *rfc8460;
} finding_info[F_COUNT] = {
    [F_STARTTLS_STRIPPED] = {"starttls-stripped", SEV_HIGH, "starttls-not-supported"},
    [F_STARTTLS_LOST] = {"starttls-lost", SEV_HIGH, "starttls-not-supported"},
    [F_STARTTLS_REFUSED] = {"starttls-refused", SEV_MEDIUM, "starttls-not-supported"},
    [F_STARTTLS_UNUSED] = {"starttls-unused", SEV_MEDIUM, "starttls-not-supported"},
    [F_PLAINTEXT_TO_POLICY_DOMAIN] = {"plaintext-to-policy-domain", SEV_HIGH,
				      "starttls-not-supported"},
    [F_TLS_FAILED_FALLBACK] = {"tls-failed-fallback", SEV_HIGH, "validation-failure"},
    [F_DANE_MISMATCH] = {"dane-mismatch", SEV_HIGH, "validation-failure"},
    [F_DANE_UNUSABLE] = {"dane-unusable", SEV_MEDIUM, "tlsa-invalid"},
    [F_MTASTS_MX_MISMATCH] = {"mtasts-mx-mismatch", SEV_HIGH, "validation-failure"},
    [F_MTASTS_CERT_INVALID] = {"mtasts-cert-invalid", SEV_HIGH, "certificate-not-trusted"},
    [F_STARTTLS_INJECTION] = {"starttls-injection", SEV_HIGH, "validation-failure"},
    [F_TLS_WEAK] = {"tls-weak", SEV_MEDIUM, NULL},
    [F_PLAINTEXT_AUTH] = {"plaintext-auth", SEV_HIGH, NULL},
    [F_POLICY_STALE] = {"policy-stale", SEV_LOW, NULL},
    [F_SMTP_NONSTANDARD] = {"smtp-nonstandard", SEV_LOW, NULL},
    /* Severity when it alerts (under DANE or MTA-STS); with no policy it is
     * an informational note: RFC 7435 opportunistic TLS. */
    [F_TLS_UNAUTHENTICATED] = {"tls-unauthenticated", SEV_HIGH, NULL},
    /* Alerts when a fetch failed (a resolver or policy host down, or an
     * attacker blocking the fetch); a domain never fetched is a note. */
    [F_POLICY_UNKNOWN] = {"policy-unknown", SEV_LOW, NULL},
    /* A "." line ended by a lone CR or LF inside DATA: a server that takes
     * it as the end reads the rest as a second, unchecked transaction. */
    [F_SMTP_SMUGGLING] = {"smtp-smuggling", SEV_HIGH, NULL},
    /* The server's handshake was too large to read, so its chain went
     * unchecked: alerts under a policy, since no real MX sends one this
     * size (an attacker can, to blind the check). */
    [F_TLS_HANDSHAKE_TOO_BIG] = {"tls-handshake-too-big", SEV_HIGH, NULL},
};

static const char *const severity_names[SEV_COUNT] = {"info", "low", "medium", "high", "critical"};

const char *finding_name(enum finding_id id)
{
	return (unsigned)id < F_COUNT ? finding_info[id].name : "unknown";
}

int finding_from_name(const char *name)
{
	for (int i = 0; i < F_COUNT; i++)
		if (!strcmp(finding_info[i].name, name))
			return i;
	return -1;
}

/* In enum verdict_kind order. */
static const char *const verdict_names[VERDICT_COUNT] = {
    "verified", "failed", "plaintext", "no-policy", "policy-unknown", "not-checkable"};

/* Index of `name` in a table of n names, or -1. */
static int name_index(const char *const *names, int n, const char *name, int fold)
{
	for (int i = 0; i < n; i++)
		if (fold ? !strcasecmp(names[i], name) : !strcmp(names[i], name))
			return i;
	return -1;
}

const char *verdict_name(enum verdict_kind v)
{
	return (unsigned)v < VERDICT_COUNT ? verdict_names[v] : "unknown";
}

int verdict_from_name(const char *name)
{
	return name_index(verdict_names, VERDICT_COUNT, name, 0);
}

const char *severity_name(enum severity s)
{
	return (unsigned)s < SEV_COUNT ? severity_names[s] : "unknown";
}

int severity_from_name(const char *name)
{
	return name_index(severity_names, SEV_COUNT, name, 1);
}

void evidence_names(uint32_t ev, char *buf, size_t len)
{
	static const char *const names[] = {"rcpt",   "sni",     "mx-map", "protected",
					    "banner", "history", "policy", "dns-observed"};
	size_t o = 0;
	buf[0] = 0;
	for (int i = 0; i < 8 && o < len; i++) {
		if (!(ev & (1u << i)))
			continue;
		int n = snprintf(buf + o, len - o, "%s%s", o ? "," : "", names[i]);
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

void rules_config_defaults(struct rules_config *c)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < F_COUNT; i++)
		c->severity[i] = finding_info[i].severity;
	c->fallback_window_s = 600;
}

struct binding {
	char domain[256];
	char mx_host[256];     /* from SNI or the address map: used for judging */
	char banner_host[256]; /* from the server's own banner: shown, never trusted */
	uint32_t ev;
	const struct cached_domain *cd;
};

struct eval {
	struct rules *r;
	const struct session_record *rec;
	const struct smtp_facts *m;
	const struct tls_facts *t;
	const char *client, *server;
	uint64_t ts_ns;
	finding_fn emit;
	void *ctx;
	struct verdict *v;
	uint8_t failure;     /* a finding RFC 8460 reports as a failure was raised */
	uint8_t policy_seen; /* some binding had a policy that applies */
	uint8_t anonymous;   /* completed TLS <= 1.2 handshake with no Certificate */
	const char *unknown; /* why some binding's policy is unknown, or NULL */
	struct binding b[MAX_BINDINGS];
	int nb;
};

struct failed_tls {
	char server[64];
	uint64_t first_ns, last_ns; /* the failed session's first and last packet */
};

struct rules {
	struct rules_config cfg;
	const struct policy_cache *cache;
	struct observed *observed;
	struct history *hist;
	struct verifier *verifier;
	struct failed_tls failed[FAILED_TLS_SLOTS]; /* direct-mapped: bounded, lossy */
	struct eval eval;                           /* scratch of rules_evaluate() */
};

struct rules *rules_new(const struct rules_config *cfg, const struct policy_cache *cache,
			struct history *hist, char *err, size_t errlen)
{
	struct rules *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->cfg = *cfg;
	r->cache = cache;
	r->hist = hist;
	r->verifier = verifier_new(cfg->ca_bundle[0] ? cfg->ca_bundle : NULL, err, errlen);
	if (!r->verifier) {
		free(r);
		return NULL;
	}
	return r;
}

void rules_free(struct rules *r)
{
	if (!r)
		return;
	verifier_free(r->verifier);
	free(r);
}

void rules_set_observed(struct rules *r, struct observed *obs)
{
	r->observed = obs;
}

static struct binding *tie(struct eval *e, const char *domain, uint32_t ev, const char *mx)
{
	char d[256];
	hostname_lower_copy(d, sizeof(d), domain);
	/* Anything odd off the wire is not a name a policy can belong to. */
	if (!hostname_valid(d))
		return NULL;
	for (int i = 0; i < e->nb; i++) {
		if (!strcmp(e->b[i].domain, d)) {
			e->b[i].ev |= ev;
			if (mx && mx[0] && !e->b[i].mx_host[0])
				hostname_lower_copy(e->b[i].mx_host, sizeof(e->b[i].mx_host), mx);
			return &e->b[i];
		}
	}
	if (e->nb == MAX_BINDINGS)
		return NULL;
	struct binding *b = &e->b[e->nb++];
	memset(b, 0, sizeof(*b));
	memcpy(b->domain, d, sizeof(d));
	b->ev = ev;
	if (mx && mx[0])
		hostname_lower_copy(b->mx_host, sizeof(b->mx_host), mx);
	b->cd = policy_cache_domain(e->r->cache, b->domain);
	return b;
}

static void bind_session(struct eval *e)
{
	const struct policy_cache *c = e->r->cache;
	if (e->m)
		for (uint32_t i = 0; i < e->m->rcpt_domain_count; i++)
			tie(e, e->m->rcpt_domains[i], EV_RCPT, NULL);
	if (e->t && e->t->sni[0]) {
		char sni[256];
		hostname_lower_copy(sni, sizeof(sni), e->t->sni);
		const struct cached_host *h = policy_cache_host(c, sni);
		for (int i = 0; h && i < h->n_domains; i++)
			tie(e, h->domains[i], EV_SNI, sni);
		if (policy_cache_domain(c, sni))
			tie(e, sni, EV_SNI, NULL);
	}
	const struct cached_host *hosts[8];
	int nh = policy_cache_hosts_at(c, e->server, hosts, 8);
	for (int k = 0; k < nh; k++)
		for (int i = 0; i < hosts[k]->n_domains; i++)
			tie(e, hosts[k]->domains[i], EV_MX_MAP, hosts[k]->name);
	/* Passive DNS only where the validated cache has no answer. */
	if (nh == 0 && e->r->observed) {
		const char *oh[8], *od[8];
		int64_t now = (int64_t)(e->ts_ns / NS_PER_S);
		int n = observed_hosts_at(e->r->observed, e->server, now, oh, 8);
		for (int k = 0; k < n; k++) {
			int m = observed_domains_of(e->r->observed, oh[k], now, od, 8);
			for (int i = 0; i < m; i++)
				tie(e, od[i], EV_DNS, oh[k]);
		}
	}
	for (int p = 0; p < e->r->cfg.n_protected; p++) {
		const struct protected_domain *pd = &e->r->cfg.protected[p];
		for (int a = 0; a < pd->n_addrs; a++)
			if (!strcmp(pd->addrs[a], e->server))
				tie(e, pd->domain, EV_PROTECTED, NULL);
	}
	/* The server's own name is only a hint: it may name the MX host of a
	 * domain already tied by better evidence, never tie one itself. */
	if (e->m && (e->m->greeting_host[0] || e->m->ehlo_host[0])) {
		char banner[256];
		hostname_lower_copy(banner, sizeof(banner),
				    e->m->ehlo_host[0] ? e->m->ehlo_host : e->m->greeting_host);
		for (int i = 0; i < e->nb; i++) {
			const struct cached_domain *cd = e->b[i].cd;
			for (int k = 0; cd && k < cd->n_mx; k++) {
				if (!strcmp(cd->mx[k].host, banner)) {
					e->b[i].ev |= EV_BANNER;
					memcpy(e->b[i].banner_host, banner, sizeof(banner));
				}
			}
		}
	}
}

static void emit(struct eval *e, enum finding_id id, const struct binding *b, uint32_t extra_ev,
		 int alert, const char *rfc8460, const char *fmt, const char *arg)
{
	if (e->r->cfg.disabled[id])
		return;
	struct finding f;
	memset(&f, 0, sizeof(f));
	f.id = id;
	f.severity = alert ? e->r->cfg.severity[id] : SEV_INFO;
	f.alert = (uint8_t)alert;
	f.session = e->rec->id;
	f.ts_ns = e->rec->ts_first;
	if (b) {
		memcpy(f.domain, b->domain, sizeof(f.domain));
		memcpy(f.mx_host, b->mx_host[0] ? b->mx_host : b->banner_host, sizeof(f.mx_host));
		f.evidence = b->ev | extra_ev;
	} else {
		f.evidence = extra_ev;
	}
	f.rfc8460 = rfc8460 ? rfc8460 : finding_info[id].rfc8460;
	/* The session failed a check when RFC 8460 would count the finding
	 * as a failure; an unused STARTTLS is the client's plaintext choice,
	 * judged as such only under a policy (plaintext-to-policy-domain). */
	if (f.rfc8460 && id != F_STARTTLS_UNUSED)
		e->failure = 1;
	snprintf(f.client_ip, sizeof(f.client_ip), "%s", e->client);
	f.client_port = e->rec->port[0];
	f.server_port = e->rec->port[1];
	memcpy(f.community_id, e->rec->community_id, sizeof(f.community_id));
	f.pcap = e->rec->pcap;
	if (e->m && e->m->ehlo >= 0)
		snprintf(f.helo, sizeof(f.helo), "%s", e->m->helo_name);
	snprintf(f.server_ip, sizeof(f.server_ip), "%s", e->server);
	snprintf(f.message, sizeof(f.message), fmt, arg ? arg : "");
	e->v->findings++;
	e->emit(e->ctx, &f);
}

/* Session-level finding: once per tied domain, or once without one. */
static void emit_all(struct eval *e, enum finding_id id, uint32_t ev, const char *fmt,
		     const char *arg)
{
	if (e->nb == 0) {
		emit(e, id, NULL, ev, 1, NULL, fmt, arg);
		return;
	}
	for (int i = 0; i < e->nb; i++)
		emit(e, id, &e->b[i], ev, 1, NULL, fmt, arg);
}

static int allowlisted(const struct eval *e)
{
	for (int i = 0; i < e->r->cfg.n_allow; i++)
		if (!strcmp(e->r->cfg.allow_plaintext[i], e->client) ||
		    !strcmp(e->r->cfg.allow_plaintext[i], e->server))
			return 1;
	return 0;
}

static int tls_used(const struct eval *e)
{
	return e->rec->tls && e->rec->tls_used;
}

static int plaintext_transaction(const struct eval *e)
{
	return e->m && e->m->has_mail_from;
}

/* A valid (not expired) MTA-STS policy of the binding, else NULL. */
static const struct cached_sts *live_sts(const struct eval *e, const struct binding *b)
{
	const struct cached_sts *sts = b->cd ? b->cd->sts : NULL;
	if (!sts || !strcmp(sts->mode, "none"))
		return NULL;
	if ((uint64_t)(sts->fetched_at + sts->max_age) * NS_PER_S < e->ts_ns)
		return NULL;
	return sts;
}

static int sts_mx_covered(const struct cached_sts *sts, const char *host)
{
	for (int i = 0; i < sts->n_mx_patterns; i++)
		if (sts_mx_match(sts->mx_patterns[i], host))
			return 1;
	return 0;
}

static int mx_secure(const struct binding *b, const char *host)
{
	for (int i = 0; b->cd && i < b->cd->n_mx; i++)
		if (!strcmp(b->cd->mx[i].host, host))
			return b->cd->mx[i].secure;
	return 0;
}

/* The binding's DNSSEC-secure TLSA records for port 25 of its MX host
 * (RFC 7672: only when the MX answer was secure too). */
static int secure_tlsa(const struct eval *e, const struct binding *b, struct tlsa_rr *out, int max)
{
	if (!b->mx_host[0] || !mx_secure(b, b->mx_host))
		return 0;
	const struct cached_host *h = policy_cache_host(e->r->cache, b->mx_host);
	int n = 0;
	for (int i = 0; h && i < h->n_tlsa && n < max; i++) {
		const struct cached_tlsa *t = &h->tlsa[i];
		if (t->port != SMTP_PORT || !t->secure)
			continue;
		out[n].usage = (uint8_t)t->usage;
		out[n].selector = (uint8_t)t->selector;
		out[n].mtype = (uint8_t)t->mtype;
		out[n].data = t->data;
		out[n].len = t->len;
		n++;
	}
	return n;
}

static int weak_cipher(const char *name)
{
	/* Anonymous suites are judged apart (tls-unauthenticated): without
	 * a policy they are RFC 7435 opportunistic TLS, not a weakness. */
	static const char *const bad[] = {"_NULL_", "RC4", "EXPORT", "_DES40", "_DES_CBC_"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strstr(name, bad[i]))
			return 1;
	return !strncmp(name, "TLS_NULL", 8);
}

static void check_session_level(struct eval *e)
{
	const struct smtp_facts *m = e->m;
	uint16_t port = e->rec->port[1];
	if (e->rec->kind == SESSION_SMTP && port != SMTP_PORT && port != SUBMISSION_PORT &&
	    port != SMTPS_PORT) {
		char port_s[8];
		snprintf(port_s, sizeof(port_s), "%u", port);
		emit_all(e, F_SMTP_NONSTANDARD, 0, "SMTP on a non-standard port (%s)", port_s);
	}
	if ((port == SMTP_PORT || port == SUBMISSION_PORT) && e->rec->content_not_smtp)
		emit_all(e, F_SMTP_NONSTANDARD, 0, "non-SMTP traffic on a mail port (%s)",
			 e->rec->ndpi.done ? e->rec->ndpi.name : "unclassified");
	if (!m)
		return;
	if (m->mangled_token[0] && !m->starttls_offered)
		emit_all(e, F_STARTTLS_STRIPPED, 0,
			 "EHLO reply carries '%s' where STARTTLS belongs: stripped in transit",
			 m->mangled_token);
	if (m->starttls_requested && m->starttls_reply && m->starttls_reply != 220) {
		char code[16];
		snprintf(code, sizeof(code), "%d", m->starttls_reply);
		emit_all(e, F_STARTTLS_REFUSED, 0, "server answered STARTTLS with %s", code);
	}
	const struct smtp_anomaly_rec *inj_c = smtp_anomaly(m, SMTP_AN_INJECTION, 0),
				      *inj_s = smtp_anomaly(m, SMTP_AN_INJECTION, 1);
	if (inj_c->count || inj_s->count) {
		char what[96];
		snprintf(what, sizeof(what), "%llu client / %llu server plaintext bytes",
			 (unsigned long long)inj_c->bytes, (unsigned long long)inj_s->bytes);
		emit_all(e, F_STARTTLS_INJECTION, 0, "%s between STARTTLS and the TLS handshake",
			 what);
	}
	if (m->smuggled_ends) {
		char what[96];
		snprintf(what, sizeof(what), "%u at client stream offset %llu, %u lone CR/LF",
			 m->smuggled_ends, (unsigned long long)m->smuggled_end_offset,
			 m->bare_line_ends);
		emit_all(e, F_SMTP_SMUGGLING, 0,
			 "DATA holds end-of-data sequences not made of CRLF (%s)", what);
	}
	if (m->auth_before_tls)
		emit_all(e, F_PLAINTEXT_AUTH, 0, "AUTH %s sent before TLS", m->auth_mechanism);
	if (m->starttls_offered && !m->starttls_requested && plaintext_transaction(e) &&
	    !allowlisted(e))
		emit_all(e, F_STARTTLS_UNUSED, 0,
			 "server offered STARTTLS, client sent mail in plaintext%s", NULL);
}

/* A chain too large to read went unchecked: an alert where a policy
 * wanted it checked, a note otherwise (b NULL: no domain). */
static void check_handshake_size(struct eval *e, const struct binding *b, int alert)
{
	if (e->t->version >= TLS_V13 || !tls_server_flight_unread(e->t))
		return;
	char cap[32];
	snprintf(cap, sizeof(cap), "%u KiB", TLS_MAX_HANDSHAKE / 1024);
	emit(e, F_TLS_HANDSHAKE_TOO_BIG, b, b ? EV_POLICY : 0, alert, NULL,
	     "the server's handshake was too large to read (a message over %s): its "
	     "certificate went unchecked",
	     cap);
}

static void check_tls_hygiene(struct eval *e)
{
	const struct tls_facts *t = e->t;
	if (!t || !t->server_hello)
		return;
	if (e->nb == 0)
		check_handshake_size(e, NULL, 0);
	char cipher[96];
	tls_cipher_name(t->cipher, cipher, sizeof(cipher));
	if (t->version < TLS_V12) {
		const char *v = tls_version_name(t->version);
		emit_all(e, F_TLS_WEAK, 0, "negotiated %s (below TLS 1.2)",
			 v ? v : "an unknown version");
	} else if (weak_cipher(cipher)) {
		emit_all(e, F_TLS_WEAK, 0, "negotiated weak cipher suite %s", cipher);
	}
}

/* Remembers failed handshakes; finds a plaintext retry soon after one. */
static void check_fallback(struct eval *e)
{
	struct rules *r = e->r;
	size_t slot = 0;
	for (const char *p = e->server; *p; p++)
		slot = slot * 131 + (uint8_t)*p;
	struct failed_tls *ft = &r->failed[slot % FAILED_TLS_SLOTS];
	const struct tls_facts *t = e->t;
	if (t && t->client_hello && !t->handshake_complete && tls_used(e)) {
		snprintf(ft->server, sizeof(ft->server), "%s", e->server);
		ft->first_ns = e->rec->ts_first;
		ft->last_ns = e->rec->ts_last;
		return;
	}
	/* The retry may open before the failed connection's last packet: a
	 * client that gives up on TLS opens the plaintext one at once, while
	 * the failed one is still closing (OpenSMTPD's "opportunistic TLS
	 * failed, downgrading to plain"). So: started after the failed one
	 * started, and within the window of its end. */
	if (!tls_used(e) && plaintext_transaction(e) && !strcmp(ft->server, e->server) &&
	    e->ts_ns >= ft->first_ns &&
	    e->ts_ns <= ft->last_ns + (uint64_t)r->cfg.fallback_window_s * NS_PER_S &&
	    !allowlisted(e)) {
		char secs[32];
		uint64_t after = e->ts_ns > ft->last_ns ? e->ts_ns - ft->last_ns : 0;
		snprintf(secs, sizeof(secs), "%llu", (unsigned long long)(after / NS_PER_S));
		emit_all(e, F_TLS_FAILED_FALLBACK, 0,
			 "plaintext session %s s after a failed TLS handshake with this server",
			 secs);
	}
}

static void check_history(struct eval *e)
{
	const struct smtp_facts *m = e->m;
	if (!m || !smtp_starttls_not_offered(m) || m->mangled_token[0] || allowlisted(e))
		return;
	const struct history_entry *h = history_get(e->r->hist, e->server);
	if (h && h->starttls_offered)
		emit_all(e, F_STARTTLS_LOST, EV_HISTORY,
			 "server offered STARTTLS before (learned history) and not now%s", NULL);
}

/* The policy that applies to one binding at the time of the session. */
struct applied_policy {
	const struct cached_sts *sts; /* live MTA-STS policy (not "none", within max_age) */
	int enforce;                  /* ... in enforce mode */
	struct tlsa_rr tlsa[16];      /* DNSSEC-secure TLSA records of the MX host */
	int n_tlsa;
	int dane_usable; /* one of them is usable for SMTP (usage 2 or 3) */
};

static void apply_policy(const struct eval *e, const struct binding *b, struct applied_policy *ap)
{
	ap->sts = live_sts(e, b);
	ap->enforce = ap->sts && !strcmp(ap->sts->mode, "enforce");
	ap->n_tlsa = secure_tlsa(e, b, ap->tlsa, 16);
	ap->dane_usable = 0;
	for (int i = 0; i < ap->n_tlsa; i++)
		ap->dane_usable |= tlsa_usable_for_smtp(&ap->tlsa[i]);
}

/* Findings about the cached policy itself. */
static void check_policy_state(struct eval *e, struct binding *b, const struct applied_policy *ap)
{
	/* Cached policy past its lifetime at the time of the session. */
	const struct cached_sts *any = b->cd ? b->cd->sts : NULL;
	if (any && strcmp(any->mode, "none") &&
	    (uint64_t)(any->fetched_at + any->max_age) * NS_PER_S < e->ts_ns)
		emit(e, F_POLICY_STALE, b, EV_POLICY, 1, NULL,
		     "cached MTA-STS policy expired (max_age) before this session%s", NULL);
	if (ap->n_tlsa && !ap->dane_usable)
		emit(e, F_DANE_UNUSABLE, b, EV_POLICY, 1, NULL,
		     "every TLSA record of %s is unusable for SMTP (DANE requires usage 2 or 3)",
		     b->mx_host);
}

/* A session that stayed in plaintext against the domain's policy. */
static void check_plaintext(struct eval *e, struct binding *b, const struct applied_policy *ap)
{
	const struct smtp_facts *m = e->m;
	if (!m || tls_used(e) || allowlisted(e))
		return;
	if (smtp_starttls_not_offered(m) && !m->mangled_token[0] && (ap->enforce || ap->n_tlsa))
		emit(e, F_STARTTLS_LOST, b, EV_POLICY, 1, NULL,
		     "the domain's policy requires TLS and the server did not offer STARTTLS%s",
		     NULL);
	if (!plaintext_transaction(e) || !(ap->n_tlsa || ap->sts))
		return;
	/* RFC 8460's dane-required means "no validated TLSA records";
	 * plaintext is starttls-not-supported. */
	emit(e, F_PLAINTEXT_TO_POLICY_DOMAIN, b, EV_POLICY, ap->n_tlsa || ap->enforce,
	     "starttls-not-supported",
	     ap->n_tlsa    ? "mail sent in plaintext to a domain with DANE TLSA records%s"
	     : ap->enforce ? "mail sent in plaintext to a domain with MTA-STS enforce%s"
			   : "mail sent in plaintext to a domain with MTA-STS testing%s",
	     NULL);
}

/* Up to TLS 1.2 the server's flight is in the clear: a completed handshake
 * without a Certificate message is an anonymous suite, which neither DANE
 * (RFC 7672 2.2: the server must present a chain that matches) nor MTA-STS
 * (RFC 8461 4.2: the certificate must be PKIX-valid) can accept. */
static void check_anonymous(struct eval *e, struct binding *b, const struct applied_policy *ap)
{
	e->v->verified = 0;
	emit(e, F_TLS_UNAUTHENTICATED, b, EV_POLICY, ap->dane_usable || ap->enforce,
	     "validation-failure",
	     ap->dane_usable
		 ? "server presented no certificate (anonymous cipher suite) under DANE%s"
		 : "server presented no certificate (anonymous cipher suite) under "
		   "MTA-STS%s",
	     NULL);
}

/* The presented chain against the usable TLSA records (RFC 7672 3). */
static void check_dane(struct eval *e, struct binding *b, const struct applied_policy *ap,
		       const struct der_cert *chain, int n_chain)
{
	char detail[256];
	time_t when = (time_t)(e->ts_ns / NS_PER_S);
	enum dane_outcome o = verify_dane(e->r->verifier, chain, n_chain, ap->tlsa, ap->n_tlsa,
					  b->mx_host, when, detail, sizeof(detail));
	if (o == DANE_MATCH) {
		e->v->verified = 1;
		e->v->method = "dane";
	} else if (o == DANE_MISMATCH) {
		e->v->verified = 0;
		emit(e, F_DANE_MISMATCH, b, EV_POLICY, 1, NULL,
		     "certificate chain matches no TLSA record: %s", detail);
	}
}

/* The presented chain under MTA-STS: PKIX-valid for the MX host
 * (RFC 8461 4.2). */
static void check_sts_certificate(struct eval *e, struct binding *b,
				  const struct applied_policy *ap, const char *host,
				  const struct der_cert *chain, int n_chain)
{
	char detail[256];
	time_t when = (time_t)(e->ts_ns / NS_PER_S);
	enum pkix_outcome p = verify_pkix(e->r->verifier, chain, n_chain, host, when, detail,
					  sizeof(detail));
	if (p == PKIX_VALID) {
		if (e->v->verified != 0) {
			e->v->verified = 1;
			if (!e->v->method)
				e->v->method = "pkix";
		}
	} else if (p != PKIX_ERROR && p != PKIX_NO_CHAIN) {
		if (!ap->dane_usable)
			e->v->verified = 0;
		const char *type = p == PKIX_EXPIRED         ? "certificate-expired"
				   : p == PKIX_HOST_MISMATCH ? "certificate-host-mismatch"
							     : "certificate-not-trusted";
		emit(e, F_MTASTS_CERT_INVALID, b, EV_POLICY, ap->enforce, type,
		     "certificate not valid for the MX host under MTA-STS: %s", detail);
	}
}

/* Whether the cache can say what this binding's policy is: the domain is
 * cached, its MTA-STS policy has not outlived max_age, and its last fetch
 * did not fail. */
enum policy_doubt { POLICY_KNOWN, POLICY_NOT_CACHED, POLICY_EXPIRED, POLICY_FETCH_FAILED };
static const char *const policy_doubt_names[] = {NULL, "not-cached", "expired", "fetch-failed"};

static enum policy_doubt policy_doubt(const struct eval *e, const struct binding *b)
{
	const struct cached_domain *cd = b->cd;
	if (!cd)
		return POLICY_NOT_CACHED;
	if (cd->sts && strcmp(cd->sts->mode, "none") &&
	    (uint64_t)(cd->sts->fetched_at + cd->sts->max_age) * NS_PER_S < e->ts_ns)
		return POLICY_EXPIRED;
	if (cd->sts_result && cd->sts_result[0] && strcmp(cd->sts_result, "ok"))
		return POLICY_FETCH_FAILED;
	return POLICY_KNOWN;
}

static void check_binding(struct eval *e, struct binding *b)
{
	const struct tls_facts *t = e->t;
	struct applied_policy ap;
	apply_policy(e, b, &ap);
	enum policy_doubt doubt = policy_doubt(e, b);
	if (doubt != POLICY_KNOWN && !e->unknown)
		e->unknown = policy_doubt_names[doubt];
	/* An expired policy is reported by check_policy_state() as
	 * policy-stale. */
	if (doubt == POLICY_FETCH_FAILED)
		emit(e, F_POLICY_UNKNOWN, b, EV_POLICY, 1, NULL,
		     "policy unknown: the last policy fetch for this domain failed (%s)",
		     b->cd->sts_result);
	else if (doubt == POLICY_NOT_CACHED)
		emit(e, F_POLICY_UNKNOWN, b, 0, 0, NULL,
		     "policy unknown: the domain is not in the policy cache%s", NULL);
	if (ap.dane_usable || ap.sts)
		e->policy_seen = 1;
	check_policy_state(e, b, &ap);
	check_plaintext(e, b, &ap);
	if (!t || !t->server_hello)
		return;
	check_handshake_size(e, b, ap.dane_usable || ap.sts);
	/* TLS 1.3 hides the chain unless the key log opened it. */
	int observable =
	    (t->version < TLS_V13 || t->certs_source) && t->certificate_seen && t->n_certs > 0;
	if (e->anonymous) {
		if (ap.dane_usable || ap.sts)
			check_anonymous(e, b, &ap);
		return;
	}
	struct der_cert chain[TLS_MAX_CERTS];
	for (int i = 0; i < t->n_certs; i++) {
		chain[i].der = t->certs[i].der;
		chain[i].len = t->certs[i].len;
	}
	if (ap.dane_usable && observable)
		check_dane(e, b, &ap, chain, t->n_certs);
	if (!ap.sts)
		return;
	const char *host = b->mx_host[0] ? b->mx_host : NULL;
	if (host && !sts_mx_covered(ap.sts, host))
		emit(e, F_MTASTS_MX_MISMATCH, b, EV_POLICY, ap.enforce, NULL,
		     "MX host %s is not covered by the MTA-STS policy's mx patterns", host);
	if (!observable)
		return; /* TLS 1.3 hides the chain: never guess */
	char sni[256];
	hostname_lower_copy(sni, sizeof(sni), t->sni);
	if (!host)
		host = sni[0] ? sni : NULL;
	if (host)
		check_sts_certificate(e, b, &ap, host, chain, t->n_certs);
}

/* The session's one verdict, from what the checks found (DESIGN.md,
 * "Verdicts"). A failure outranks everything; then a policy the cache
 * cannot vouch for; then plaintext; then whether a policy applied and
 * its checks could run. */
static void judge_session(struct eval *e)
{
	struct verdict *v = e->v;
	const struct tls_facts *t = e->t;
	int tls = tls_used(e);
	const char *unread =
	    t && t->server_hello && t->version < TLS_V13 ? tls_server_flight_unread(t) : NULL;
	v->reason = NULL;
	if (e->failure) {
		v->verdict = VERDICT_FAILED;
	} else if (e->nb == 0) {
		v->verdict = tls ? VERDICT_NOT_CHECKABLE : VERDICT_PLAINTEXT;
		v->reason = !tls ? NULL : unread ? unread : "no-domain";
	} else if (e->unknown) {
		v->verdict = VERDICT_POLICY_UNKNOWN;
		v->reason = e->unknown;
	} else if (!tls) {
		v->verdict = VERDICT_PLAINTEXT;
	} else if (!e->policy_seen) {
		v->verdict = VERDICT_NO_POLICY;
	} else if (v->verified == 1) {
		v->verdict = VERDICT_VERIFIED;
	} else {
		v->verdict = VERDICT_NOT_CHECKABLE;
		if (unread)
			v->reason = unread;
		else if (t && t->server_hello && t->version >= TLS_V13 && !t->certs_source)
			v->reason = t->keylog_problem ? t->keylog_problem : "tls13-no-keys";
		else if (e->anonymous)
			v->reason = "anonymous";
		else if (e->rec->midstream && !(t && t->client_hello))
			v->reason = "midstream";
		else if (t && t->certificate_seen && t->n_certs)
			v->reason = "no-domain"; /* a chain, but no MX host name to check it for */
		else
			v->reason = "no-certificate-seen";
	}
	/* A certificate that checked out does not make a failed session
	 * verified (an MX outside the MTA-STS mx list, RFC 8461 4.1). */
	if (v->verdict == VERDICT_FAILED && v->verified == 1)
		v->verified = 0;
}

void rules_evaluate(struct rules *r, const struct session_record *rec, finding_fn emit_fn,
		    void *ctx, struct verdict *out)
{
	/* One evaluation buffer per rules object, reused: clearing ~14 KB of
	 * bindings per session showed in profiles. Only the header is reset;
	 * bindings are written before they are read. */
	struct eval *e = &r->eval;
	memset(e, 0, offsetof(struct eval, b));
	e->nb = 0; /* after the bindings in the struct: not covered above */
	out->domain[0] = out->mx_host[0] = 0;
	out->evidence = 0;
	out->verified = -1;
	out->method = NULL;
	out->findings = 0;
	out->n_domains = 0;
	e->r = r;
	e->rec = rec;
	e->m = rec->smtp;
	e->t = rec->tls;
	e->client = rec->ip[0];
	e->server = rec->ip[1];
	e->ts_ns = rec->ts_first;
	e->emit = emit_fn;
	e->ctx = ctx;
	e->v = out;
	/* No Certificate message in a whole clear handshake; one too big to
	 * read is not its absence. */
	e->anonymous = e->t && e->t->server_hello && e->t->version < TLS_V13 &&
		       e->t->handshake_complete && !e->t->certificate_seen &&
		       !tls_server_flight_unread(e->t);

	bind_session(e);
	check_session_level(e);
	check_tls_hygiene(e);
	check_fallback(e);
	check_history(e);
	for (int i = 0; i < e->nb; i++)
		check_binding(e, &e->b[i]);
	/* Without a policy an anonymous suite is RFC 7435 opportunistic TLS
	 * (Postfix's default between two instances): a note, not an alert. */
	if (e->anonymous && !e->policy_seen) {
		for (int i = 0; i < (e->nb ? e->nb : 1); i++)
			emit(e, F_TLS_UNAUTHENTICATED, e->nb ? &e->b[i] : NULL, 0, 0, NULL,
			     "anonymous cipher suite: encrypted, server not authenticated%s", NULL);
	}
	judge_session(e);

	if (e->nb) {
		memcpy(out->domain, e->b[0].domain, sizeof(out->domain));
		memcpy(out->mx_host, e->b[0].mx_host, sizeof(out->mx_host));
		out->evidence = e->b[0].ev;
	}
	for (int i = 0; i < e->nb && i < VERDICT_MAX_DOMAINS; i++) {
		memcpy(out->domains[i], e->b[i].domain, sizeof(out->domains[i]));
		memcpy(out->mx_hosts[i], e->b[i].mx_host, sizeof(out->mx_hosts[i]));
		out->n_domains = i + 1;
	}
	/* Learn after judging, so this session cannot vouch for itself. */
	if (e->m && smtp_starttls_offer_known(e->m))
		history_note(r->hist, e->server, (int64_t)(rec->ts_first / NS_PER_S),
			     e->m->starttls_offered,
			     e->t && e->t->server_hello ? e->t->version : 0);
}
