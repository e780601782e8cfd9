/*
 * tls.h - passive TLS handshake walker for one session, both directions.
 * The session layer feeds in-order bytes per direction once SMTP switched to
 * TLS (or from the start on implicit-TLS ports). Records are reassembled
 * across segments and handshake messages across records, each into a bounded
 * buffer. Facts: ClientHello SNI and offered versions, ServerHello version
 * and cipher, the Certificate chain (TLS <= 1.2 only: 1.3 encrypts it),
 * alerts, and completion. When tls_done() turns true, the caller bypasses
 * the flow.
 */
#ifndef MXW_TLS_H
#define MXW_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "util/parse.h"

/* Protocol version numbers on the wire (RFC 8446 4.2.1, RFC 5246 A.1). */
#define TLS_V10 0x0301
#define TLS_V11 0x0302
#define TLS_V12 0x0303
#define TLS_V13 0x0304

#define TLS_MAX_HANDSHAKE          (128u * 1024) /* one handshake message, e.g. a long chain */
/* All handshake buffers and certificate copies of all flows together. */
#define TLS_BUFFER_BUDGET          (64ull * 1024 * 1024)
#define TLS_MAX_CERTS              10 /* certificates kept from a chain */
#define TLS_MAX_VERSIONS           8  /* offered versions kept */
#define TLS_MAX_SNI                256
/* Encrypted records after which we stop waiting for a clean completion. */
#define TLS_MAX_RECORDS_AFTER_KEYS 8

enum tls_anomaly {
	TLS_AN_BAD_RECORD = 0, /* unknown content type or impossible length */
	TLS_AN_BAD_HANDSHAKE,  /* a handshake message that does not parse */
	TLS_AN_HANDSHAKE_TOO_BIG,
	TLS_AN_NOT_TLS, /* bytes that are not a TLS record at all */
	TLS_AN_GAP,     /* capture loss inside the handshake */
	TLS_AN_BUDGET,  /* the global handshake-buffer budget was spent */
	TLS_AN_COUNT
};

const char *tls_anomaly_name(enum tls_anomaly a);

/* A certificate of the chain: its bytes and description are shared with
 * every other session that presents it (decoder/certcache.h). */
struct tls_cert_der {
	const uint8_t *der;
	uint32_t len;
	const struct x509_info *info; /* holds der */
};

struct tls_facts {
	uint8_t client_hello; /* seen */
	uint8_t server_hello;
	uint8_t hello_retry;                         /* ServerHello was a HelloRetryRequest */
	uint16_t client_version;                     /* legacy_version of the ClientHello */
	uint16_t offered_versions[TLS_MAX_VERSIONS]; /* supported_versions, GREASE dropped */
	uint8_t n_offered_versions;
	char sni[TLS_MAX_SNI];
	uint16_t version; /* negotiated (supported_versions wins) */
	uint16_t cipher;
	uint8_t certificate_seen;
	struct tls_cert_der certs[TLS_MAX_CERTS];
	uint8_t n_certs;
	uint8_t certs_truncated;
	uint8_t alert_seen;
	uint8_t alert_level, alert_description, alert_dir;
	uint8_t alert_encrypted; /* an alert after the keys changed: unreadable */
	uint8_t ccs[2];          /* ChangeCipherSpec seen per direction */
	uint8_t encrypted[2];    /* encrypted records seen per direction */
	uint8_t handshake_complete;
	uint64_t record_bytes[2];
	uint32_t anomalies[TLS_AN_COUNT][2];
	/* TLS 1.3, kept only with tls_keep_tls13_flights(): the key of the
	 * key log, and the server's encrypted records from its ServerHello to
	 * the client's first encrypted record, as on the wire (decoder/tls13.h
	 * reads them). */
	uint8_t client_random[32];
	uint8_t client_random_seen;
	uint8_t *server_flight;
	uint32_t server_flight_len;
	uint8_t server_flight_truncated; /* over TLS13_MAX_FLIGHT: the rest was not kept */
	/* How the chain in certs was seen: "handshake" (in the clear, TLS <=
	 * 1.2) or "keylog" (TLS 1.3, decrypted); NULL if none was. */
	const char *certs_source;
	/* TLS 1.3 with a key log: why the flight could not be read
	 * ("tls13-no-keys", "tls13-decrypt-failed", ... see tls13.h), NULL if
	 * it was, or none was tried. */
	const char *keylog_problem;
};

/* Bytes of a server's TLS 1.3 flight kept: a chain at the handshake cap,
 * with record framing and tags. */
#define TLS13_MAX_FLIGHT (TLS_MAX_HANDSHAKE + 16 * 1024)

/* Process-wide, set before decoding starts: keep TLS 1.3 server flights
 * (a key log was given). Off, they cost nothing. */
void tls_keep_tls13_flights(int on);

struct tls;

struct tls *tls_new(void);
void tls_free(struct tls *t);

/* Feeds bytes of one direction (0 client, 1 server). The walker buffers
 * what it needs, so it consumes everything (returns n) until the direction
 * stops: PARSE_NOT_PROTOCOL (not TLS), PARSE_MALFORMED (framing lost) or
 * PARSE_STOPPED (after either, or a gap). */
parse_ret tls_feed(struct tls *t, int dir, const uint8_t *p, size_t n);
void tls_gap(struct tls *t, int dir, uint32_t n);

/* Nothing more to learn: handshake complete, failed, or given up on. */
int tls_done(const struct tls *t);

const struct tls_facts *tls_facts(const struct tls *t);

/* Hands the facts over, certificate DER included, to be released with
 * tls_facts_free(); the walker must not be fed again. */
struct tls_facts *tls_take_facts(struct tls *t);
void tls_facts_free(struct tls_facts *f);
/* Appends a certificate to the chain (through the certificate cache);
 * -1 when out of memory. The caller checks TLS_MAX_CERTS. */
int tls_facts_add_cert(struct tls_facts *f, const uint8_t *der, size_t len);
/* Releases the chain. */
void tls_facts_drop_certs(struct tls_facts *f);

/* "TLSv1.2" etc., or NULL for unknown values. */
const char *tls_version_name(uint16_t v);

/* Why the server's certificate chain could not be read although the
 * handshake was in the clear: "handshake-too-big" (a message over
 * TLS_MAX_HANDSHAKE, or the handshake-buffer budget spent), else NULL. */
static inline const char *tls_server_flight_unread(const struct tls_facts *t)
{
	if (t->certificate_seen && t->n_certs > 0)
		return NULL;
	if (t->anomalies[TLS_AN_HANDSHAKE_TOO_BIG][1] || t->anomalies[TLS_AN_BUDGET][1])
		return "handshake-too-big";
	return NULL;
}

#endif
