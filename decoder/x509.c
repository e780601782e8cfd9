/*
 * x509.c - OpenSSL-backed certificate parsing and TLS naming.
 */
#include "decoder/x509.h"
#include "decoder/certcache.h"
#include "util/digest.h"
#include "util/text.h"

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static SSL_CTX *names_ctx; /* only to look ciphers up by their wire id */
static SSL *names_ssl;

int x509_init(void)
{
	if (names_ssl)
		return 0;
	names_ctx = SSL_CTX_new(TLS_method());
	if (!names_ctx)
		return -1;
	names_ssl = SSL_new(names_ctx);
	return names_ssl ? 0 : -1;
}

void x509_cleanup(void)
{
	certcache_clear();
	SSL_free(names_ssl);
	SSL_CTX_free(names_ctx);
	names_ssl = NULL;
	names_ctx = NULL;
}

/* IANA names of legacy suites that OpenSSL 3 no longer builds (NULL,
 * export, RC4, single DES, anonymous RC4/DES): without them the weak
 * suites a downgrade would pick could not be named, or told weak. */
static const struct {
	uint16_t id;
	const char *name;
} legacy_suites[] = {
    {0x0000, "TLS_NULL_WITH_NULL_NULL"},
    {0x0001, "TLS_RSA_WITH_NULL_MD5"},
    {0x0002, "TLS_RSA_WITH_NULL_SHA"},
    {0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"},
    {0x0004, "TLS_RSA_WITH_RC4_128_MD5"},
    {0x0005, "TLS_RSA_WITH_RC4_128_SHA"},
    {0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"},
    {0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"},
    {0x0009, "TLS_RSA_WITH_DES_CBC_SHA"},
    {0x000B, "TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA"},
    {0x000C, "TLS_DH_DSS_WITH_DES_CBC_SHA"},
    {0x000E, "TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA"},
    {0x000F, "TLS_DH_RSA_WITH_DES_CBC_SHA"},
    {0x0011, "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA"},
    {0x0012, "TLS_DHE_DSS_WITH_DES_CBC_SHA"},
    {0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"},
    {0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA"},
    {0x0017, "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5"},
    {0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"},
    {0x0019, "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA"},
    {0x001A, "TLS_DH_anon_WITH_DES_CBC_SHA"},
    {0x002C, "TLS_PSK_WITH_NULL_SHA"},
    {0x002D, "TLS_DHE_PSK_WITH_NULL_SHA"},
    {0x002E, "TLS_RSA_PSK_WITH_NULL_SHA"},
    {0x003B, "TLS_RSA_WITH_NULL_SHA256"},
    {0x008A, "TLS_PSK_WITH_RC4_128_SHA"},
    {0x008E, "TLS_DHE_PSK_WITH_RC4_128_SHA"},
    {0x0092, "TLS_RSA_PSK_WITH_RC4_128_SHA"},
    {0xC001, "TLS_ECDH_ECDSA_WITH_NULL_SHA"},
    {0xC002, "TLS_ECDH_ECDSA_WITH_RC4_128_SHA"},
    {0xC006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"},
    {0xC007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"},
    {0xC00B, "TLS_ECDH_RSA_WITH_NULL_SHA"},
    {0xC00C, "TLS_ECDH_RSA_WITH_RC4_128_SHA"},
    {0xC010, "TLS_ECDHE_RSA_WITH_NULL_SHA"},
    {0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"},
    {0xC015, "TLS_ECDH_anon_WITH_NULL_SHA"},
    {0xC016, "TLS_ECDH_anon_WITH_RC4_128_SHA"},
    {0xC033, "TLS_ECDHE_PSK_WITH_RC4_128_SHA"},
    {0xC039, "TLS_ECDHE_PSK_WITH_NULL_SHA"},
    {0xC03A, "TLS_ECDHE_PSK_WITH_NULL_SHA256"},
    {0xC03B, "TLS_ECDHE_PSK_WITH_NULL_SHA384"},
};

static const char *legacy_suite_name(uint16_t id)
{
	for (size_t i = 0; i < sizeof(legacy_suites) / sizeof(legacy_suites[0]); i++)
		if (legacy_suites[i].id == id)
			return legacy_suites[i].name;
	return NULL;
}

void tls_cipher_name(uint16_t id, char *buf, size_t len)
{
	const unsigned char wire[2] = {(unsigned char)(id >> 8), (unsigned char)id};
	const SSL_CIPHER *c = NULL;
	if (names_ssl || x509_init() == 0)
		c = SSL_CIPHER_find(names_ssl, wire);
	const char *name = c ? SSL_CIPHER_standard_name(c) : NULL;
	if (!name || !strcmp(name, "(NONE)"))
		name = legacy_suite_name(id);
	if (name)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "0x%04X", id);
}

const char *tls_alert_name(uint8_t description)
{
	return SSL_alert_desc_string_long(description);
}

static void sha256_hex(const unsigned char *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_Digest(p, n, md, &mdlen, digest_sha256(), NULL) && mdlen == 32)
		hex_encode(md, 32, out);
	else
		out[0] = 0;
}

static void name_str(const X509_NAME *name, char *out, size_t cap)
{
	out[0] = 0;
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		int n = BIO_read(b, out, (int)cap - 1);
		out[n > 0 ? n : 0] = 0;
	}
	BIO_free(b);
}

static void time_str(const ASN1_TIME *t, char *out, size_t cap)
{
	struct tm tm;
	out[0] = 0;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return;
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void copy_ia5(char *dst, size_t cap, const ASN1_STRING *s)
{
	int n = ASN1_STRING_length(s);
	const unsigned char *p = ASN1_STRING_get0_data(s);
	size_t m = n > 0 ? (size_t)n : 0;
	if (m >= cap)
		m = cap - 1;
	for (size_t i = 0; i < m; i++)
		dst[i] = p[i] ? (char)p[i] : '?';
	dst[m] = 0;
}

/* Copies s to *at and returns it, moving *at past it. */
static const char *place(char **at, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = memcpy(*at, s, n);
	*at += n;
	return d;
}

struct x509_info *x509_describe(const uint8_t *der, size_t len)
{
	struct x509_info head;
	char subject[X509_MAX_NAME] = "", issuer[X509_MAX_NAME] = "";
	char(*sans)[256] = NULL;
	memset(&head, 0, sizeof(head));
	sha256_hex(der, len, head.sha256);
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	size_t strings = 2;
	if (x) {
		head.parsed = 1;
		name_str(X509_get_subject_name(x), subject, sizeof(subject));
		name_str(X509_get_issuer_name(x), issuer, sizeof(issuer));
		strings = strlen(subject) + strlen(issuer) + 2;
		time_str(X509_get0_notBefore(x), head.not_before, sizeof(head.not_before));
		time_str(X509_get0_notAfter(x), head.not_after, sizeof(head.not_after));

		unsigned char *spki = NULL;
		int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
		if (spki_len > 0)
			sha256_hex(spki, (size_t)spki_len, head.spki_sha256);
		OPENSSL_free(spki);

		GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
		int n = names ? sk_GENERAL_NAME_num(names) : 0;
		if (n > 0 && !(sans = malloc((size_t)(n < X509_MAX_SAN ? n : X509_MAX_SAN) *
					     sizeof(*sans))))
			head.san_truncated = 1; /* out of memory: say the list is cut */
		for (int i = 0; sans && i < n; i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
			if (g->type != GEN_DNS)
				continue;
			if (head.n_san == X509_MAX_SAN) {
				head.san_truncated = 1;
				break;
			}
			copy_ia5(sans[head.n_san], sizeof(sans[0]), g->d.dNSName);
			strings += strlen(sans[head.n_san++]) + 1;
		}
		GENERAL_NAMES_free(names);
		X509_free(x);
	}
	size_t size = sizeof(head) + (size_t)head.n_san * sizeof(char *) + strings;
	struct x509_info *out = malloc(size);
	if (out) {
		*out = head;
		out->size = size;
		out->san = (const char **)(out + 1);
		char *at = (char *)(out->san + head.n_san);
		out->subject = place(&at, subject);
		out->issuer = place(&at, issuer);
		for (int i = 0; i < head.n_san; i++)
			out->san[i] = place(&at, sans[i]);
	}
	free(sans);
	return out;
}
