/*
 * test_keylog.c - NSS key log files: the lines kept and refused, the cap,
 * and files followed as they grow, are cut short or replaced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "decoder/keylog.h"

static void random_of(uint8_t r[32], unsigned n)
{
	memset(r, 0, 32);
	r[0] = (uint8_t)n;
	r[1] = (uint8_t)(n >> 8);
	r[31] = 0xaa;
}

/* "LABEL <client random> <secret>" with random_of(n) and a secret of len
 * bytes, each (n + i). */
static int line(char *out, size_t cap, const char *label, unsigned n, size_t len)
{
	uint8_t r[32];
	random_of(r, n);
	int o = snprintf(out, cap, "%s ", label);
	for (int i = 0; i < 32; i++)
		o += snprintf(out + o, cap - (size_t)o, "%02x", r[i]);
	o += snprintf(out + o, cap - (size_t)o, " ");
	for (size_t i = 0; i < len; i++)
		o += snprintf(out + o, cap - (size_t)o, "%02X", (unsigned)((n + i) & 255));
	o += snprintf(out + o, cap - (size_t)o, "\n");
	return o;
}

static size_t lookup(struct keylog *k, unsigned n, uint8_t secret[KEYLOG_MAX_SECRET])
{
	uint8_t r[32];
	random_of(r, n);
	return keylog_server_secret(k, r, secret);
}

static void test_only_server_handshake_secrets(void **state)
{
	(void)state;
	struct keylog *k = keylog_new(16);
	char text[4096];
	int o = snprintf(text, sizeof(text), "# SSL/TLS secrets log file\n\n");
	o += line(text + o, sizeof(text) - (size_t)o, "CLIENT_HANDSHAKE_TRAFFIC_SECRET", 1, 32);
	o += line(text + o, sizeof(text) - (size_t)o, "SERVER_TRAFFIC_SECRET_0", 2, 32);
	o += line(text + o, sizeof(text) - (size_t)o, "SERVER_HANDSHAKE_TRAFFIC_SECRET", 3, 48);
	o += line(text + o, sizeof(text) - (size_t)o, "SERVER_HANDSHAKE_TRAFFIC_SECRET", 4, 32);
	o += snprintf(text + o, sizeof(text) - (size_t)o,
		      "SERVER_HANDSHAKE_TRAFFIC_SECRET zz 00\nnot a line\r\n");
	keylog_feed(k, text, (size_t)o);
	uint8_t s[KEYLOG_MAX_SECRET];
	assert_int_equal(lookup(k, 1, s), 0);
	assert_int_equal(lookup(k, 2, s), 0);
	assert_int_equal(lookup(k, 3, s), 48);
	assert_int_equal(s[0], 3);
	assert_int_equal(s[47], 50);
	assert_int_equal(lookup(k, 4, s), 32);
	struct keylog_stats st = keylog_stats(k);
	assert_int_equal(st.secrets, 2);
	assert_int_equal(st.lines, 6);
	assert_int_equal(st.bad_lines, 2);
	keylog_free(k);
}

/* A log of any size: the oldest secrets go first, the newest are found. */
static void test_bounded(void **state)
{
	(void)state;
	struct keylog *k = keylog_new(100);
	char l[256];
	for (unsigned n = 0; n < 1000; n++) {
		int len = line(l, sizeof(l), "SERVER_HANDSHAKE_TRAFFIC_SECRET", n, 32);
		keylog_feed(k, l, (size_t)len);
	}
	uint8_t s[KEYLOG_MAX_SECRET];
	assert_int_equal(lookup(k, 0, s), 0);
	assert_int_equal(lookup(k, 899, s), 0);
	for (unsigned n = 900; n < 1000; n++)
		assert_int_equal(lookup(k, n, s), 32);
	struct keylog_stats st = keylog_stats(k);
	assert_int_equal(st.secrets, 100);
	assert_int_equal(st.evicted, 900);
	keylog_free(k);
}

/* The MTA appends while the sensor runs, a line at a time or in halves;
 * a log cut short (rotated by truncation) is read again from its start. */
static void test_followed_as_it_grows(void **state)
{
	(void)state;
	char path[] = "/tmp/mxwatch-keylog-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	struct keylog *k = keylog_new(16);
	char err[256];
	assert_int_equal(keylog_add_file(k, path, err, sizeof(err)), 0);
	char l[256];
	int len = line(l, sizeof(l), "SERVER_HANDSHAKE_TRAFFIC_SECRET", 7, 32);
	assert_int_equal(write(fd, l, 20), 20);
	assert_int_equal(keylog_poll(k), 0); /* half a line: not yet */
	assert_int_equal(write(fd, l + 20, (size_t)len - 20), len - 20);
	assert_int_equal(keylog_poll(k), 1);
	uint8_t s[KEYLOG_MAX_SECRET];
	assert_int_equal(lookup(k, 7, s), 32);
	assert_int_equal(ftruncate(fd, 0), 0);
	len = line(l, sizeof(l), "SERVER_HANDSHAKE_TRAFFIC_SECRET", 8, 32);
	assert_int_equal(pwrite(fd, l, (size_t)len, 0), len);
	assert_int_equal(keylog_poll(k), 1);
	assert_int_equal(lookup(k, 8, s), 32);
	close(fd);
	unlink(path);
	keylog_free(k);
	k = keylog_new(16);
	assert_int_equal(keylog_add_file(k, "/nonexistent/keys", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/keys"));
	keylog_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_only_server_handshake_secrets),
	    cmocka_unit_test(test_bounded),
	    cmocka_unit_test(test_followed_as_it_grows),
	};
	return cmocka_run_group_tests_name("keylog", tests, NULL, NULL);
}
