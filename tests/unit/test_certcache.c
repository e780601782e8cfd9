/*
 * test_certcache.c - the certificate cache: one description per distinct
 * DER, shared, bounded, and safe to hold across eviction. The expected
 * digests are the ones openssl computed when the certificates were made
 * (pcaps/certs/fingerprints.txt), not this code's.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "decoder/certcache.h"
#include "decoder/x509.h"

#define LEAF_PEM "pcaps/certs/mx.example.test.pem"

static uint8_t *load_der(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	X509_free(x);
	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

/* The cert and SPKI digests openssl wrote for `file`. */
static void fingerprints(const char *file, char cert[65], char spki[65])
{
	FILE *f = fopen("pcaps/certs/fingerprints.txt", "r");
	assert_non_null(f);
	char line[512], name[128];
	int found = 0;
	while (!found && fgets(line, sizeof(line), f))
		found = line[0] != '#' && sscanf(line, "%127s %64s %64s", name, cert, spki) == 3 &&
			!strcmp(name, file);
	fclose(f);
	assert_true(found);
}

static void test_described_once(void **state)
{
	(void)state;
	certcache_clear();
	struct certcache_stats before, after;
	certcache_stats(&before);
	size_t len;
	uint8_t *der = load_der(LEAF_PEM, &len);
	const struct x509_info *a = certcache_get(der, len);
	const struct x509_info *b = certcache_get(der, len);
	assert_non_null(a);
	assert_ptr_equal(a, b); /* the second lookup found the first's entry */
	certcache_stats(&after);
	assert_int_equal(after.misses - before.misses, 1);
	assert_int_equal(after.hits - before.hits, 1);
	assert_int_equal(after.entries, 1);

	char cert[65], spki[65];
	fingerprints("mx.example.test.pem", cert, spki);
	assert_true(a->parsed);
	assert_string_equal(a->sha256, cert);
	assert_string_equal(a->spki_sha256, spki);
	assert_non_null(strstr(a->subject, "CN=mx.example.test"));
	assert_int_equal(a->n_san, 2);
	assert_string_equal(a->san[0], "mx.example.test");
	assert_string_equal(a->san[1], "mail.example.test");
	certcache_release(a);
	certcache_release(b);
	OPENSSL_free(der);
}

/* Distinct certificates, as many as wanted: the same one with another
 * byte in its signature (parsing checks no signature). */
static void variant(uint8_t *der, size_t len, const uint8_t *orig, unsigned i)
{
	memcpy(der, orig, len);
	der[len - 1] ^= (uint8_t)i;
	der[len - 2] ^= (uint8_t)(i >> 8);
	der[len - 3] ^= (uint8_t)(i >> 16);
}

static void test_bounded_and_held_past_eviction(void **state)
{
	(void)state;
	certcache_clear();
	size_t len;
	uint8_t *orig = load_der(LEAF_PEM, &len);
	uint8_t *der = malloc(len);
	variant(der, len, orig, 1);
	const struct x509_info *held = certcache_get(der, len);
	assert_non_null(held);
	char sha[65];
	snprintf(sha, sizeof(sha), "%s", held->sha256);
	struct certcache_stats st0, st;
	certcache_stats(&st0);
	const unsigned n = CERTCACHE_MAX_ENTRIES + 1002; /* with `held`: 1001 over */
	for (unsigned i = 2; i < n; i++) {
		variant(der, len, orig, i);
		certcache_release(certcache_get(der, len));
	}
	certcache_stats(&st);
	assert_true(st.entries <= CERTCACHE_MAX_ENTRIES);
	assert_true(st.bytes <= CERTCACHE_MAX_BYTES);
	assert_true(st.evictions - st0.evictions >= 1000);
	/* Evicted long ago, still whole for whoever holds it. */
	assert_string_equal(held->sha256, sha);
	assert_string_equal(held->san[0], "mx.example.test");
	certcache_release(held);
	/* Looked up again: described anew. */
	variant(der, len, orig, 1);
	const struct x509_info *again = certcache_get(der, len);
	assert_string_equal(again->sha256, sha);
	certcache_release(again);
	free(der);
	OPENSSL_free(orig);
}

struct hammer {
	const uint8_t *orig;
	size_t len;
	unsigned seed;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	uint8_t *der = malloc(h->len);
	for (unsigned i = 0; i < 20000; i++) {
		variant(der, h->len, h->orig, (i * 7 + h->seed) % 64);
		const struct x509_info *x = certcache_get(der, h->len);
		if (!x || !x->parsed || strcmp(x->san[0], "mx.example.test") != 0)
			abort();
		certcache_release(x);
	}
	free(der);
	return NULL;
}

/* Two threads on the same 64 certificates: each gets whole descriptions,
 * and the cache ends with one entry apiece. */
static void test_shared_between_threads(void **state)
{
	(void)state;
	certcache_clear();
	size_t len;
	uint8_t *orig = load_der(LEAF_PEM, &len);
	struct hammer h[2] = {{orig, len, 0}, {orig, len, 3}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	struct certcache_stats st;
	certcache_stats(&st);
	assert_int_equal(st.entries, 64);
	OPENSSL_free(orig);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_described_once),
	    cmocka_unit_test(test_bounded_and_held_past_eviction),
	    cmocka_unit_test(test_shared_between_threads),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	certcache_clear();
	return rc;
}
