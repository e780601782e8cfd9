/*
 * x509.h - certificate facts from a captured DER chain, parsed by OpenSSL.
 * The session record calls x509_describe() once per certificate of a
 * finished TLS handshake (decoder/record.c); rules/ verifies the same DER.
 * Also names TLS cipher suites and alerts through OpenSSL's own tables.
 */
#ifndef MXW_X509_H
#define MXW_X509_H

#include <stddef.h>
#include <stdint.h>

#define X509_MAX_SAN  64
#define X509_MAX_NAME 512

/* One block: the strings live right after the struct, so a description
 * costs what its names take, not the worst case. */
struct x509_info {
	int parsed;          /* 0: not DER OpenSSL accepts */
	const char *subject; /* RFC 2253; "" when unparsable */
	const char *issuer;
	const char **san; /* n_san dNSName entries */
	int n_san;
	int san_truncated;
	char not_before[32]; /* RFC 3339 UTC, "" when unparsable */
	char not_after[32];
	char sha256[65];      /* of the whole DER: TLSA x 0 1 */
	char spki_sha256[65]; /* of SubjectPublicKeyInfo: TLSA x 1 1 */
	size_t size;          /* bytes of the block */
	void *owner;          /* the certificate cache's entry holding it */
};

/* Describes one DER certificate in a block the caller frees with free();
 * NULL only when out of memory. The sha256 is always set; the rest only
 * when OpenSSL parses it. */
struct x509_info *x509_describe(const uint8_t *der, size_t len);

/* IANA name of a cipher suite ("TLS_AES_128_GCM_SHA256"), or "0xNNNN". */
void tls_cipher_name(uint16_t id, char *buf, size_t len);

/* Alert description name ("handshake failure"). */
const char *tls_alert_name(uint8_t description);

/* Loads OpenSSL's tables once, before any worker thread starts. */
int x509_init(void);
void x509_cleanup(void);

#endif
