/*
 * verify.c - DANE and PKIX verification of captured chains with OpenSSL.
 */
#include "rules/verify.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

struct verifier {
	SSL_CTX *dane_ctx; /* client context with DANE enabled: only to host SSL_DANE */
	X509_STORE *pkix;  /* trust anchors for MTA-STS */
	int pkix_loaded;   /* the system store is read at first use */
};

struct verifier *verifier_new(const char *ca_bundle, char *err, size_t errlen)
{
	struct verifier *v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->dane_ctx = SSL_CTX_new(TLS_client_method());
	if (!v->dane_ctx || SSL_CTX_dane_enable(v->dane_ctx) <= 0) {
		snprintf(err, errlen, "OpenSSL: cannot enable DANE");
		goto fail;
	}
	v->pkix = X509_STORE_new();
	if (!v->pkix)
		goto fail;
	/* A configured bundle is read now, so a bad one stops the start with
	 * its name. The system store (a few hundred CAs, tens of ms) waits
	 * until a session first needs PKIX: many runs never do. */
	if (ca_bundle) {
		if (!X509_STORE_load_file(v->pkix, ca_bundle)) {
			snprintf(err, errlen, "CA bundle %s: cannot load", ca_bundle);
			goto fail;
		}
		v->pkix_loaded = 1;
	}
	return v;
fail:
	verifier_free(v);
	return NULL;
}

void verifier_free(struct verifier *v)
{
	if (!v)
		return;
	SSL_CTX_free(v->dane_ctx);
	X509_STORE_free(v->pkix);
	free(v);
}

int tlsa_usable_for_smtp(const struct tlsa_rr *t)
{
	if (t->usage != 2 && t->usage != 3)
		return 0; /* PKIX-TA/PKIX-EE are unusable for SMTP (RFC 7672 3.1.3) */
	if (t->selector > 1)
		return 0;
	if (t->mtype == 1)
		return t->len == 32;
	if (t->mtype == 2)
		return t->len == 64;
	return t->mtype == 0 && t->len > 0;
}

/* Leaf plus the rest as an untrusted stack; NULL on parse failure. */
static X509 *load_chain(const struct der_cert *chain, int n, STACK_OF(X509) * *rest)
{
	const unsigned char *p = chain[0].der;
	X509 *leaf = d2i_X509(NULL, &p, (long)chain[0].len);
	if (!leaf)
		return NULL;
	*rest = sk_X509_new_null();
	for (int i = 1; i < n && *rest; i++) {
		p = chain[i].der;
		X509 *x = d2i_X509(NULL, &p, (long)chain[i].len);
		if (x && !sk_X509_push(*rest, x))
			X509_free(x);
	}
	return leaf;
}

enum dane_outcome verify_dane(struct verifier *v, const struct der_cert *chain, int n,
			      const struct tlsa_rr *tlsa, int n_tlsa, const char *host, time_t when,
			      char *detail, size_t dlen)
{
	detail[0] = 0;
	int usable = 0;
	for (int i = 0; i < n_tlsa; i++)
		usable += tlsa_usable_for_smtp(&tlsa[i]);
	if (!usable) {
		snprintf(detail, dlen,
			 "no TLSA record usable for SMTP (only DANE-TA(2) and DANE-EE(3) count)");
		return DANE_UNUSABLE;
	}
	if (n < 1) {
		snprintf(detail, dlen, "no certificate observed");
		return DANE_NO_CHAIN;
	}
	enum dane_outcome out = DANE_ERROR;
	STACK_OF(X509) *rest = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	SSL *ssl = SSL_new(v->dane_ctx);
	X509 *leaf = load_chain(chain, n, &rest);
	if (!ssl || !leaf || !rest) {
		snprintf(detail, dlen, leaf ? "out of memory" : "leaf certificate does not parse");
		goto done;
	}
	if (SSL_dane_enable(ssl, host) <= 0)
		goto done;
	/* DANE-EE matches ignore names and validity; DANE-TA still needs the
	 * name check, which OpenSSL does against the base domain. */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	int added = 0;
	for (int i = 0; i < n_tlsa; i++) {
		if (!tlsa_usable_for_smtp(&tlsa[i]))
			continue;
		if (SSL_dane_tlsa_add(ssl, tlsa[i].usage, tlsa[i].selector, tlsa[i].mtype,
				      tlsa[i].data, tlsa[i].len) > 0)
			added++;
	}
	if (!added) {
		snprintf(detail, dlen, "OpenSSL accepted none of the TLSA records");
		out = DANE_UNUSABLE;
		goto done;
	}
	/* An empty store: DANE-TA anchors come from the TLSA records, and
	 * nothing else may vouch for the chain. */
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (!store || !ctx || !X509_STORE_CTX_init(ctx, store, leaf, rest))
		goto done;
	X509_STORE_CTX_set_default(ctx, "ssl_server");
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, when);
	X509_VERIFY_PARAM_set1_host(param, host, 0);
	X509_STORE_CTX_set0_dane(ctx, SSL_get0_dane(ssl));
	int ok = X509_verify_cert(ctx);
	if (ok == 1) {
		out = DANE_MATCH;
	} else {
		int e = X509_STORE_CTX_get_error(ctx);
		snprintf(detail, dlen, "%s", X509_verify_cert_error_string(e));
		out = DANE_MISMATCH;
	}
done:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(leaf);
	sk_X509_pop_free(rest, X509_free);
	SSL_free(ssl);
	return out;
}

enum pkix_outcome verify_pkix(struct verifier *v, const struct der_cert *chain, int n,
			      const char *host, time_t when, char *detail, size_t dlen)
{
	detail[0] = 0;
	if (n < 1) {
		snprintf(detail, dlen, "no certificate observed");
		return PKIX_NO_CHAIN;
	}
	enum pkix_outcome out = PKIX_ERROR;
	STACK_OF(X509) *rest = NULL;
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *leaf = load_chain(chain, n, &rest);
	if (!v->pkix_loaded) {
		v->pkix_loaded = 1;
		if (!X509_STORE_set_default_paths(v->pkix))
			ERR_clear_error(); /* no system store: nothing verifies by PKIX */
	}
	if (!ctx || !leaf || !rest || !X509_STORE_CTX_init(ctx, v->pkix, leaf, rest)) {
		snprintf(detail, dlen, leaf ? "out of memory" : "leaf certificate does not parse");
		goto done;
	}
	X509_STORE_CTX_set_default(ctx, "ssl_server");
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, when);
	X509_VERIFY_PARAM_set1_host(param, host, 0);
	if (X509_verify_cert(ctx) == 1) {
		out = PKIX_VALID;
		goto done;
	}
	int e = X509_STORE_CTX_get_error(ctx);
	snprintf(detail, dlen, "%s", X509_verify_cert_error_string(e));
	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID: out = PKIX_EXPIRED; break;
	case X509_V_ERR_HOSTNAME_MISMATCH: out = PKIX_HOST_MISMATCH; break;
	default: out = PKIX_UNTRUSTED; break;
	}
done:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_free(leaf);
	sk_X509_pop_free(rest, X509_free);
	return out;
}
