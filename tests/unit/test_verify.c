/*
 * test_verify.c - DANE and PKIX checks on the corpus certificates (the chain
 * the STARTTLS captures present): TLSA data is computed here from the PEM
 * files with OpenSSL digests, independently of the code under test.
 * Fixtures: 3 1 1, 3 0 1, 3 1 2, 2 1 1, 2 0 1, all-unusable, mismatch;
 * DANE-EE ignores names and dates, DANE-TA does not; PKIX valid, wrong
 * name, expired (by verification time), untrusted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rules/verify.h"

#define CA_PEM   "pcaps/certs/ca.example.test.pem"
#define LEAF_PEM "pcaps/certs/mx.example.test.pem"

struct fixture {
	uint8_t *leaf, *ca;
	int leaf_len, ca_len;
	X509 *leaf_x, *ca_x;
	struct der_cert chain[2];
	struct verifier *v;
	time_t now;
};

static X509 *load(const char *path, uint8_t **der, int *len)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	*der = NULL;
	*len = i2d_X509(x, der);
	assert_true(*len > 0);
	return x;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->leaf_x = load(LEAF_PEM, &f->leaf, &f->leaf_len);
	f->ca_x = load(CA_PEM, &f->ca, &f->ca_len);
	f->chain[0] = (struct der_cert){f->leaf, (size_t)f->leaf_len};
	f->chain[1] = (struct der_cert){f->ca, (size_t)f->ca_len};
	char err[256];
	f->v = verifier_new(CA_PEM, err, sizeof(err));
	assert_non_null(f->v);
	/* Inside both certificates' validity: a day after the leaf's start. */
	const ASN1_TIME *nb = X509_get0_notBefore(f->leaf_x);
	struct tm tm;
	assert_true(ASN1_TIME_to_tm(nb, &tm));
	f->now = timegm(&tm) + 86400;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	verifier_free(f->v);
	OPENSSL_free(f->leaf);
	OPENSSL_free(f->ca);
	X509_free(f->leaf_x);
	X509_free(f->ca_x);
	free(f);
	return 0;
}

/* TLSA association data for (selector, mtype) of a certificate. */
static size_t assoc(X509 *x, int selector, int mtype, uint8_t *out)
{
	unsigned char *der = NULL;
	int n = selector ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : i2d_X509(x, &der);
	assert_true(n > 0);
	size_t len;
	if (mtype == 0) {
		memcpy(out, der, (size_t)n);
		len = (size_t)n;
	} else {
		unsigned int mdlen = 0;
		EVP_Digest(der, (size_t)n, out, &mdlen, mtype == 1 ? EVP_sha256() : EVP_sha512(),
			   NULL);
		len = mdlen;
	}
	OPENSSL_free(der);
	return len;
}

static enum dane_outcome dane(struct fixture *f, int usage, int selector, int mtype, int corrupt,
			      const char *host, time_t when, int chain_len)
{
	static uint8_t data[4096];
	X509 *x = usage == 2 ? f->ca_x : f->leaf_x;
	size_t len = assoc(x, selector, mtype, data);
	if (corrupt)
		data[len / 2] ^= 1;
	struct tlsa_rr t = {(uint8_t)usage, (uint8_t)selector, (uint8_t)mtype, data, len};
	char detail[256];
	return verify_dane(f->v, f->chain, chain_len, &t, 1, host, when, detail, sizeof(detail));
}

static void test_dane_ee_and_ta_match(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(dane(f, 3, 1, 1, 0, "mx.example.test", f->now, 2), DANE_MATCH);
	assert_int_equal(dane(f, 3, 0, 1, 0, "mx.example.test", f->now, 2), DANE_MATCH);
	assert_int_equal(dane(f, 3, 1, 2, 0, "mx.example.test", f->now, 2), DANE_MATCH);
	assert_int_equal(dane(f, 3, 0, 0, 0, "mx.example.test", f->now, 1), DANE_MATCH);
	assert_int_equal(dane(f, 2, 1, 1, 0, "mx.example.test", f->now, 2), DANE_MATCH);
	assert_int_equal(dane(f, 2, 0, 1, 0, "mx.example.test", f->now, 2), DANE_MATCH);
}

static void test_dane_mismatch(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(dane(f, 3, 1, 1, 1, "mx.example.test", f->now, 2), DANE_MISMATCH);
	assert_int_equal(dane(f, 2, 1, 1, 1, "mx.example.test", f->now, 2), DANE_MISMATCH);
	/* DANE-TA needs the CA in the presented chain. */
	assert_int_equal(dane(f, 2, 1, 1, 0, "mx.example.test", f->now, 1), DANE_MISMATCH);
}

static void test_dane_ee_ignores_names_and_dates(void **state)
{
	struct fixture *f = *state;
	time_t far = f->now + 100L * 365 * 86400;
	assert_int_equal(dane(f, 3, 1, 1, 0, "other.example", far, 2), DANE_MATCH);
	/* DANE-TA keeps the name check. */
	assert_int_equal(dane(f, 2, 1, 1, 0, "other.example", f->now, 2), DANE_MISMATCH);
}

static void test_dane_all_unusable(void **state)
{
	struct fixture *f = *state;
	uint8_t a[64], b[64];
	size_t la = assoc(f->leaf_x, 1, 1, a), lb = assoc(f->ca_x, 0, 1, b);
	/* Correct data, but PKIX-EE / PKIX-TA usages and a bad matching type. */
	struct tlsa_rr t[3] = {{1, 1, 1, a, la}, {0, 0, 1, b, lb}, {3, 1, 7, a, la}};
	char detail[256];
	assert_int_equal(
	    verify_dane(f->v, f->chain, 2, t, 3, "mx.example.test", f->now, detail, sizeof(detail)),
	    DANE_UNUSABLE);
	/* A wrong-length SHA-256 is unusable too. */
	struct tlsa_rr shortrr = {3, 1, 1, a, 31};
	assert_false(tlsa_usable_for_smtp(&shortrr));
	/* One usable record among unusable ones is enough. */
	struct tlsa_rr mixed[2] = {{1, 1, 1, a, la}, {3, 1, 1, a, la}};
	assert_int_equal(verify_dane(f->v, f->chain, 2, mixed, 2, "mx.example.test", f->now, detail,
				     sizeof(detail)),
			 DANE_MATCH);
}

static void test_pkix(void **state)
{
	struct fixture *f = *state;
	char detail[256];
	assert_int_equal(
	    verify_pkix(f->v, f->chain, 2, "mx.example.test", f->now, detail, sizeof(detail)),
	    PKIX_VALID);
	/* The SAN also lists mail.example.test; wildcards are not in it. */
	assert_int_equal(
	    verify_pkix(f->v, f->chain, 2, "mail.example.test", f->now, detail, sizeof(detail)),
	    PKIX_VALID);
	assert_int_equal(
	    verify_pkix(f->v, f->chain, 2, "mx2.example.test", f->now, detail, sizeof(detail)),
	    PKIX_HOST_MISMATCH);
	time_t later = f->now + 20L * 365 * 86400;
	assert_int_equal(
	    verify_pkix(f->v, f->chain, 2, "mx.example.test", later, detail, sizeof(detail)),
	    PKIX_EXPIRED);
	time_t before = f->now - 30L * 86400;
	assert_int_equal(
	    verify_pkix(f->v, f->chain, 2, "mx.example.test", before, detail, sizeof(detail)),
	    PKIX_EXPIRED);
	/* Without the test CA the chain is not trusted. */
	char err[256];
	struct verifier *sys = verifier_new(LEAF_PEM, err, sizeof(err));
	assert_non_null(sys);
	assert_int_equal(
	    verify_pkix(sys, f->chain, 2, "mx.example.test", f->now, detail, sizeof(detail)),
	    PKIX_UNTRUSTED);
	verifier_free(sys);
	uint8_t junk[10] = {0x30, 0x82};
	struct der_cert bad = {junk, sizeof(junk)};
	assert_int_equal(
	    verify_pkix(f->v, &bad, 1, "mx.example.test", f->now, detail, sizeof(detail)),
	    PKIX_ERROR);
}

/* Without a configured bundle the system store is read at the first PKIX
 * check; OpenSSL's default paths honour SSL_CERT_FILE, which points it at
 * the test CA here, so only a store really loaded then can say valid. */
static void test_pkix_system_store_loaded_on_first_use(void **state)
{
	struct fixture *f = *state;
	char err[256], detail[256];
	setenv("SSL_CERT_FILE", CA_PEM, 1);
	setenv("SSL_CERT_DIR", "/nonexistent", 1);
	struct verifier *v = verifier_new(NULL, err, sizeof(err));
	assert_non_null(v);
	assert_int_equal(
	    verify_pkix(v, f->chain, 1, "mx.example.test", f->now, detail, sizeof(detail)),
	    PKIX_VALID);
	verifier_free(v);
	setenv("SSL_CERT_FILE", "/nonexistent", 1);
	v = verifier_new(NULL, err, sizeof(err));
	assert_non_null(v);
	assert_int_equal(
	    verify_pkix(v, f->chain, 1, "mx.example.test", f->now, detail, sizeof(detail)),
	    PKIX_UNTRUSTED);
	verifier_free(v);
	unsetenv("SSL_CERT_FILE");
	unsetenv("SSL_CERT_DIR");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_dane_ee_and_ta_match, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dane_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dane_ee_ignores_names_and_dates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dane_all_unusable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pkix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pkix_system_store_loaded_on_first_use, setup,
					    teardown),
	};
	return cmocka_run_group_tests_name("verify", tests, NULL, NULL);
}
