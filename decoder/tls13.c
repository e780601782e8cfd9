/*
 * tls13.c - opening a server's TLS 1.3 handshake flight (see tls13.h).
 */
#include "decoder/tls13.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/bytes.h"

#define TAG_LEN    16
#define IV_LEN     12
#define MAX_RECORD (16384 + 256) /* TLSCiphertext.length limit, RFC 8446 5.2 */

enum { CT_ALERT = 21, CT_HANDSHAKE = 22, CT_APPDATA = 23 };
enum {
	HS_ENCRYPTED_EXTENSIONS = 8,
	HS_CERTIFICATE = 11,
	HS_CERTIFICATE_REQUEST = 13,
	HS_CERTIFICATE_VERIFY = 15,
	HS_FINISHED = 20
};

struct suite {
	uint16_t id;
	const char *cipher;
	const char *digest;
	size_t key_len;
	EVP_CIPHER *fetched; /* once per process: a fetch costs more than a record */
};

/* RFC 8446 B.4; TLS_AES_128_CCM(_8)_SHA256 are rare between MTAs. */
static struct suite suites[] = {
    {0x1301, "AES-128-GCM", "SHA256", 16, NULL},
    {0x1302, "AES-256-GCM", "SHA384", 32, NULL},
    {0x1303, "ChaCha20-Poly1305", "SHA256", 32, NULL},
};
static EVP_KDF *hkdf;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
	hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		suites[i].fetched = EVP_CIPHER_fetch(NULL, suites[i].cipher, NULL);
}

/* HKDF-Expand-Label(secret, label, "", n) (RFC 8446 7.1). */
static int expand_label(const char *digest, const uint8_t *secret, size_t secret_len,
			const char *label, uint8_t *out, size_t n)
{
	uint8_t info[2 + 1 + 32 + 1];
	size_t ll = 6 + strlen(label);
	info[0] = (uint8_t)(n >> 8);
	info[1] = (uint8_t)n;
	info[2] = (uint8_t)ll;
	memcpy(info + 3, "tls13 ", 6);
	memcpy(info + 9, label, ll - 6);
	info[3 + ll] = 0; /* empty context */
	EVP_KDF_CTX *ctx = hkdf ? EVP_KDF_CTX_new(hkdf) : NULL;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, 4 + ll),
	    OSSL_PARAM_construct_end(),
	};
	int ok = ctx && EVP_KDF_derive(ctx, out, n, params) > 0;
	EVP_KDF_CTX_free(ctx);
	return ok;
}

struct opener {
	EVP_CIPHER_CTX *ctx;
	EVP_CIPHER *cipher;
	uint8_t key[32];
	uint8_t iv[IV_LEN];
	size_t key_len;
	uint64_t seq;
};

/* One TLSCiphertext: AAD is its header, the nonce the IV XOR the record's
 * sequence number (RFC 8446 5.2, 5.3). Returns the plaintext length, or -1
 * when the tag does not verify. */
static int open_record(struct opener *o, const uint8_t hdr[5], const uint8_t *body, size_t len,
		       uint8_t *out)
{
	if (len < TAG_LEN + 1 || len > MAX_RECORD)
		return -1;
	uint8_t nonce[IV_LEN];
	memcpy(nonce, o->iv, IV_LEN);
	for (int i = 0; i < 8; i++)
		nonce[IV_LEN - 1 - i] ^= (uint8_t)(o->seq >> (8 * i));
	o->seq++;
	int n = 0, fin = 0;
	size_t clen = len - TAG_LEN;
	if (!EVP_DecryptInit_ex2(o->ctx, o->cipher, o->key, nonce, NULL) ||
	    !EVP_DecryptUpdate(o->ctx, NULL, &n, hdr, 5) ||
	    !EVP_DecryptUpdate(o->ctx, out, &n, body, (int)clen) ||
	    !EVP_CIPHER_CTX_ctrl(o->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, (void *)(body + clen)) ||
	    EVP_DecryptFinal_ex(o->ctx, out + n, &fin) <= 0)
		return -1;
	return n + fin;
}

/* The TLS 1.3 Certificate message (RFC 8446 4.4.2): a request context,
 * then entries of a certificate and its extensions. */
static int certificate(struct tls_facts *f, const uint8_t *p, size_t n)
{
	struct cursor c;
	cur_init(&c, p, n);
	cur_skip(&c, cur_u8(&c));
	uint32_t total = cur_be24(&c);
	if (!c.ok || total != cur_left(&c))
		return -1;
	while (cur_left(&c)) {
		uint32_t len = cur_be24(&c);
		if (!c.ok || !cur_has(&c, len))
			return -1;
		if (f->n_certs < TLS_MAX_CERTS) {
			if (tls_facts_add_cert(f, cur_ptr(&c), len))
				return -1;
		} else {
			f->certs_truncated = 1;
		}
		cur_skip(&c, len);
		cur_skip(&c, cur_be16(&c)); /* the entry's extensions */
		if (!c.ok)
			return -1;
	}
	f->certificate_seen = 1;
	return 0;
}

/* Walks whole messages in hs[0..*len); keeps a partial one. Returns 1 at
 * Finished, 0 for more, -1 on a malformed flight. */
static int walk(struct tls_facts *f, uint8_t *hs, size_t *len)
{
	size_t off = 0;
	int done = 0;
	while (!done && *len - off >= 4) {
		uint8_t type = hs[off];
		uint32_t ml = rd_be24(hs + off + 1);
		if (ml > TLS_MAX_HANDSHAKE)
			return -1;
		if (*len - off - 4 < ml)
			break;
		const uint8_t *body = hs + off + 4;
		switch (type) {
		case HS_CERTIFICATE:
			if (certificate(f, body, ml) < 0)
				return -1;
			break;
		case HS_FINISHED: done = 1; break;
		case HS_ENCRYPTED_EXTENSIONS:
		case HS_CERTIFICATE_REQUEST:
		case HS_CERTIFICATE_VERIFY: break;
		default: return -1;
		}
		off += 4 + ml;
	}
	memmove(hs, hs + off, *len - off);
	*len -= off;
	return done;
}

/* Handshake bytes of the flight, grown as needed: most flights are a few
 * kilobytes, and a buffer at the cap each time would be mapped and
 * unmapped per session. */
struct hs_buf {
	uint8_t *p;
	size_t len, cap;
};

static int hs_append(struct hs_buf *b, const uint8_t *p, size_t n)
{
	if (b->len + n > TLS13_MAX_FLIGHT)
		return -1;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static const char *open_flight(struct tls_facts *f, struct opener *o, uint8_t *plain,
			       struct hs_buf *hs)
{
	const uint8_t *p = f->server_flight;
	size_t left = f->server_flight_len;
	while (left >= 5) {
		size_t rl = rd_be16(p + 3);
		if (p[0] != CT_APPDATA || left - 5 < rl)
			break;
		int n = open_record(o, p, p + 5, rl, plain);
		if (n < 0)
			return "tls13-decrypt-failed";
		/* TLSInnerPlaintext: content, its type, then zero padding. */
		while (n > 0 && plain[n - 1] == 0)
			n--;
		if (n == 0)
			return "tls13-bad-handshake";
		uint8_t inner = plain[--n];
		if (inner != CT_HANDSHAKE)
			return inner == CT_ALERT ? "tls13-server-alert" : "tls13-bad-handshake";
		if (hs_append(hs, plain, (size_t)n) < 0)
			return "tls13-bad-handshake";
		int w = walk(f, hs->p, &hs->len);
		if (w < 0)
			return "tls13-bad-handshake";
		if (w > 0)
			return NULL; /* Finished: nothing after it is opened */
		p += 5 + rl;
		left -= 5 + rl;
	}
	return "tls13-truncated-flight";
}

static void drop_certs(struct tls_facts *f)
{
	tls_facts_drop_certs(f);
	f->certificate_seen = 0;
	f->certs_truncated = 0;
}

const char *tls13_open_server_flight(struct tls_facts *f, const uint8_t *secret,
				     size_t secret_len)
{
	pthread_once(&fetch_once, fetch_algorithms);
	const struct suite *s = NULL;
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		if (suites[i].id == f->cipher)
			s = &suites[i];
	if (!s)
		return "tls13-unsupported-cipher";
	if (!f->server_flight_len)
		return "tls13-truncated-flight";
	struct opener o = {.key_len = s->key_len};
	const char *why = "tls13-decrypt-failed";
	uint8_t *plain = malloc(MAX_RECORD);
	struct hs_buf hs = {0};
	o.ctx = EVP_CIPHER_CTX_new();
	o.cipher = s->fetched;
	if (plain && o.ctx && o.cipher &&
	    expand_label(s->digest, secret, secret_len, "key", o.key, s->key_len) &&
	    expand_label(s->digest, secret, secret_len, "iv", o.iv, IV_LEN)) {
		why = open_flight(f, &o, plain, &hs);
	}
	if (why)
		drop_certs(f); /* a chain from a flight that did not verify is no chain */
	else
		f->certs_source = "keylog";
	OPENSSL_cleanse(&o.key, sizeof(o.key));
	OPENSSL_cleanse(&o.iv, sizeof(o.iv));
	if (plain) {
		OPENSSL_cleanse(plain, MAX_RECORD);
		free(plain);
	}
	if (hs.p) {
		OPENSSL_cleanse(hs.p, hs.cap);
		free(hs.p);
	}
	EVP_CIPHER_CTX_free(o.ctx);
	return why;
}
