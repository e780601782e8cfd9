/*
 * test_siphash.c - SipHash-2-4 against the reference vectors of the SipHash
 * paper (key 00..0f, message 00..n-1), and SipHash-1-3 against CPython's
 * bytes hash, which is SipHash-1-3 with an all-zero key when
 * PYTHONHASHSEED=0 (values from `PYTHONHASHSEED=0 python3 -c
 * "print(hex(hash(bytes(range(15))) & (2**64-1)))"`, Python 3.11).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/siphash.h"

static void test_siphash24_reference(void **state)
{
	(void)state;
	uint8_t key[16], msg[64];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	assert_int_equal(siphash24(key, msg, 0), 0x726fdb47dd0e0e31ull);
	assert_int_equal(siphash24(key, msg, 1), 0x74f839c593dc67fdull);
	assert_int_equal(siphash24(key, msg, 15), 0xa129ca6149be45e5ull);
	assert_int_equal(siphash24(key, msg, 63), 0x958a324ceb064572ull);
}

static void test_siphash13_matches_cpython(void **state)
{
	(void)state;
	uint8_t key[16] = {0}, msg[64];
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	assert_int_equal(siphash13(key, (const uint8_t *)"abc", 3), 0xc03bc3a0042630f2ull);
	assert_int_equal(siphash13(key, msg, 15), 0xf30eb725bb91c9eaull);
	assert_int_equal(siphash13(key, msg, 37), 0x422a9751192ff266ull);
}

/* The two-word form equals the byte form on the same 16 bytes. */
static void test_siphash13_words_equals_bytes(void **state)
{
	(void)state;
	uint8_t key[16], msg[16];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)(i * 7 + 1), msg[i] = (uint8_t)(i * 13 + 5);
	uint64_t m0 = 0, m1 = 0;
	for (int i = 7; i >= 0; i--) {
		m0 = m0 << 8 | msg[i];
		m1 = m1 << 8 | msg[8 + i];
	}
	assert_int_equal(siphash13_words(key, m0, m1), siphash13(key, msg, 16));
	uint8_t zero[16] = {0};
	assert_int_equal(siphash13_words(zero, 0, 0), siphash13(zero, zero, 16));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_siphash24_reference),
	    cmocka_unit_test(test_siphash13_matches_cpython),
	    cmocka_unit_test(test_siphash13_words_equals_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
