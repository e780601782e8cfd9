/*
 * verify.h - certificate checks on a captured chain with OpenSSL's own
 * verifiers, at the time the session was captured: DANE (RFC 7672, through
 * SSL_dane_enable / SSL_dane_tlsa_add and X509_STORE_CTX_set0_dane) and
 * PKIX for MTA-STS (trust store plus X509_check_host on the MX name).
 * Called by the rules; takes DER blobs, never packets.
 */
#ifndef MXW_VERIFY_H
#define MXW_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct der_cert {
	const uint8_t *der;
	size_t len;
};

struct tlsa_rr {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
};

enum dane_outcome {
	DANE_MATCH = 0, /* a usable TLSA record matched */
	DANE_MISMATCH,  /* usable records, none matched */
	DANE_UNUSABLE,  /* every record unusable for SMTP (usage 0/1, bad data) */
	DANE_NO_CHAIN,  /* no certificate to check */
	DANE_ERROR,     /* library failure */
};

enum pkix_outcome {
	PKIX_VALID = 0,
	PKIX_UNTRUSTED,     /* RFC 8460 certificate-not-trusted */
	PKIX_EXPIRED,       /* certificate-expired (or not yet valid) */
	PKIX_HOST_MISMATCH, /* certificate-host-mismatch */
	PKIX_NO_CHAIN,
	PKIX_ERROR,
};

struct verifier;

/* ca_bundle: PEM file for PKIX checks; NULL uses the system default paths. */
struct verifier *verifier_new(const char *ca_bundle, char *err, size_t errlen);
void verifier_free(struct verifier *v);

/* Checks chain[0] (leaf) and the rest against the TLSA set at time `when`.
 * Only DANE-TA(2) and DANE-EE(3) are used; DANE-EE ignores names and dates.
 * `host` is the MX name (TLSA base domain). detail gets OpenSSL's words. */
enum dane_outcome verify_dane(struct verifier *v, const struct der_cert *chain, int n,
			      const struct tlsa_rr *tlsa, int n_tlsa, const char *host, time_t when,
			      char *detail, size_t dlen);

/* PKIX validation of the chain for `host` at time `when`. */
enum pkix_outcome verify_pkix(struct verifier *v, const struct der_cert *chain, int n,
			      const char *host, time_t when, char *detail, size_t dlen);

/* Does the TLSA record count for SMTP at all (RFC 7672 3.1)? */
int tlsa_usable_for_smtp(const struct tlsa_rr *t);

#endif
