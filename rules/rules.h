/*
 * rules.h - judging sessions: ties each finished SMTP session to its policy
 * domain(s), then runs the compliance checks of the design brief (downgrade,
 * MTA-STS, DANE, TLS hygiene) and emits findings. Reads session facts and
 * the in-memory policy cache; never parses bytes, never touches SQLite.
 */
#ifndef MXW_RULES_H
#define MXW_RULES_H

#include <stdint.h>

#include "db/policy/cache.h"
#include "decoder/record.h"

enum finding_id {
	F_STARTTLS_STRIPPED = 0,
	F_STARTTLS_LOST,
	F_STARTTLS_REFUSED,
	F_STARTTLS_UNUSED,
	F_PLAINTEXT_TO_POLICY_DOMAIN,
	F_TLS_FAILED_FALLBACK,
	F_DANE_MISMATCH,
	F_DANE_UNUSABLE,
	F_MTASTS_MX_MISMATCH,
	F_MTASTS_CERT_INVALID,
	F_STARTTLS_INJECTION,
	F_TLS_WEAK,
	F_PLAINTEXT_AUTH,
	F_POLICY_STALE,
	F_SMTP_NONSTANDARD,
	F_TLS_UNAUTHENTICATED,
	F_POLICY_UNKNOWN,
	F_SMTP_SMUGGLING,
	F_TLS_HANDSHAKE_TOO_BIG,
	F_COUNT
};

enum severity {
	SEV_INFO = 0,
	SEV_LOW,
	SEV_MEDIUM,
	SEV_HIGH,
	SEV_CRITICAL,
	SEV_COUNT
};

/* How a session was tied to a domain (a bitmask: every piece that agreed). */
enum evidence {
	EV_RCPT = 1 << 0,      /* RCPT TO domain, seen in plaintext */
	EV_SNI = 1 << 1,       /* TLS SNI names the domain's MX host */
	EV_MX_MAP = 1 << 2,    /* server address is a cached MX host of the domain */
	EV_PROTECTED = 1 << 3, /* configured protected domain and MX address */
	EV_BANNER = 1 << 4,    /* server's own greeting/EHLO name: untrusted, informational */
	EV_HISTORY = 1 << 5,   /* the learned history of this server */
	EV_POLICY = 1 << 6,    /* the domain's published policy */
	EV_DNS = 1 << 7,       /* DNS answers seen on the wire (passive DNS) */
};

const char *finding_name(enum finding_id id);
int finding_from_name(const char *name);
const char *severity_name(enum severity s);
int severity_from_name(const char *name);
/* Writes "rcpt,sni" style lists. */
void evidence_names(uint32_t ev, char *buf, size_t len);

struct finding {
	enum finding_id id;
	enum severity severity;
	uint8_t alert;       /* 0: reported only (e.g. MTA-STS testing mode) */
	const char *session; /* session id */
	uint64_t ts_ns;
	char domain[256]; /* "" when no domain could be tied */
	char mx_host[256];
	uint32_t evidence;
	const char *rfc8460; /* result type or NULL */
	char client_ip[64], server_ip[64];
	uint16_t client_port, server_port;
	char community_id[32]; /* the session's (util/community_id.h) */
	const char *pcap;      /* offline: the session's capture file */
	const char *sensor;    /* the sensor that saw it (set by the writer) */
	char helo[256]; /* the client's HELO/EHLO name, as sent (untrusted) */
	char message[512];
};

#define RULES_MAX_PROTECTED 64
#define RULES_MAX_ADDRS     16
#define RULES_MAX_ALLOW     64

struct protected_domain {
	char domain[256];
	char addrs[RULES_MAX_ADDRS][64];
	int n_addrs;
};

struct rules_config {
	uint8_t disabled[F_COUNT];
	enum severity severity[F_COUNT];
	struct protected_domain protected[RULES_MAX_PROTECTED];
	int n_protected;
	char allow_plaintext[RULES_MAX_ALLOW][64]; /* peer addresses known to be plaintext */
	int n_allow;
	uint32_t fallback_window_s;
	char ca_bundle[512]; /* "" = system store */
};

void rules_config_defaults(struct rules_config *c);

#define VERDICT_MAX_DOMAINS 16

/* What the rules concluded about a session as a whole (for the record). */
/* The closed list of session verdicts (DESIGN.md, "Verdicts"): silence
 * must mean "checked and fine", so every session gets exactly one. */
enum verdict_kind {
	VERDICT_VERIFIED = 0,   /* every applicable DANE/PKIX check passed on the chain seen */
	VERDICT_FAILED,         /* a policy check failed: the findings say which */
	VERDICT_PLAINTEXT,      /* no TLS, and no policy asked for it */
	VERDICT_NO_POLICY,      /* TLS; the domain publishes no policy (known from the cache) */
	VERDICT_POLICY_UNKNOWN, /* not in the cache, cached policy expired, or its fetch failed */
	VERDICT_NOT_CHECKABLE,  /* a policy applies but the chain could not be checked: reason */
	VERDICT_COUNT
};

const char *verdict_name(enum verdict_kind v);
int verdict_from_name(const char *name);

struct verdict {
	enum verdict_kind verdict;
	/* Why not checkable ("tls13-no-keys", "anonymous", "no-certificate-seen",
	 * "midstream", "no-domain", "handshake-too-big"), or why the policy is unknown
	 * ("not-cached", "expired", "fetch-failed"); NULL otherwise. */
	const char *reason;
	char domains[VERDICT_MAX_DOMAINS][256]; /* every domain the session was tied to */
	char mx_hosts[VERDICT_MAX_DOMAINS][256];
	int n_domains;
	char domain[256]; /* first policy domain tied, "" if none */
	char mx_host[256];
	uint32_t evidence;
	int verified;       /* 1 PKIX or DANE verified, 0 failed, -1 not checked/observable */
	const char *method; /* "dane" | "pkix" | NULL */
	int findings;
};

struct rules;
struct history;
struct observed;

typedef void (*finding_fn)(void *ctx, const struct finding *f);

/* cache and history may be NULL. Returns NULL with err set. */
struct rules *rules_new(const struct rules_config *cfg, const struct policy_cache *cache,
			struct history *hist, char *err, size_t errlen);
void rules_free(struct rules *r);
/* Passive DNS consulted where the cache knows nothing (may be NULL). */
void rules_set_observed(struct rules *r, struct observed *obs);

/* Judges one finished session, emitting each finding through `emit`.
 * Findings point at rec->id: they live as long as the record. */
void rules_evaluate(struct rules *r, const struct session_record *rec, finding_fn emit, void *ctx,
		    struct verdict *out);

#endif
