/*
 * test_observed.c - the passive DNS store under a flood of spoofed answers
 * (a genuine answer still gets in and is found), least-recently-used order,
 * expired answers going first, TTL expiry in lookups (RFC 2181 §8 for TTLs
 * with the top bit set, the one-day cap), and the observed_dns table across
 * runs: expired rows go, the cap holds.
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

#include "db/policy/observed.h"
#include "db/sql/db.h"

#define T0  1800000000 /* capture time of the tests, seconds */
#define DAY 86400

static void spoofed_address(char *buf, size_t len, uint32_t i)
{
	snprintf(buf, len, "10.%u.%u.%u", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
}

/* Address answer i: host hN.spoof.test at 10.x.y.z. */
static void add_spoofed(struct observed *o, uint32_t i, uint32_t ttl, int64_t seen_at)
{
	char host[64], addr[32];
	snprintf(host, sizeof(host), "h%u.spoof.test", i);
	spoofed_address(addr, sizeof(addr), i);
	observed_add(o, OBS_ADDR, host, addr, 0, "192.0.2.53", ttl, seen_at);
}

static int found_host(struct observed *o, const char *address, int64_t now, const char *host)
{
	const char *out[8];
	int n = observed_hosts_at(o, address, now, out, 8);
	for (int i = 0; i < n; i++)
		if (!strcmp(out[i], host))
			return 1;
	return 0;
}

static void add_genuine(struct observed *o, int64_t seen_at)
{
	observed_add(o, OBS_MX, "example.test", "mx.example.test", 1, "192.0.2.53", 3600, seen_at);
	observed_add(o, OBS_ADDR, "mx.example.test", "192.0.2.25", 1, "192.0.2.53", 3600, seen_at);
}

static void test_flood_then_genuine(void **state)
{
	(void)state;
	struct observed *o = observed_new();
	assert_non_null(o);
	for (uint32_t i = 0; i < 200000; i++)
		add_spoofed(o, i, DAY, T0 + i / 1000);
	assert_int_equal(observed_count(o), OBSERVED_MAX_ENTRIES);
	assert_int_equal(observed_evicted(o), 200000 - OBSERVED_MAX_ENTRIES);
	assert_int_equal(observed_evicted_unexpired(o), 200000 - OBSERVED_MAX_ENTRIES);

	add_genuine(o, T0 + 200);
	assert_true(observed_count(o) <= OBSERVED_MAX_ENTRIES);
	assert_true(found_host(o, "192.0.2.25", T0 + 201, "mx.example.test"));
	const char *d[8];
	assert_int_equal(observed_domains_of(o, "mx.example.test", T0 + 201, d, 8), 1);
	assert_string_equal(d[0], "example.test");
	/* The oldest spoofed answers made room; the newest are still there. */
	assert_false(found_host(o, "10.0.0.0", T0 + 201, "h0.spoof.test"));
	char addr[32];
	spoofed_address(addr, sizeof(addr), 199999);
	assert_true(found_host(o, addr, T0 + 201, "h199999.spoof.test"));
	observed_free(o);
}

/* Spoofed answers that all claim one address: one long chain in the value
 * index, unlinked in O(1) as they are evicted. */
static void test_flood_on_one_address(void **state)
{
	(void)state;
	struct observed *o = observed_new();
	char host[64];
	for (uint32_t i = 0; i < OBSERVED_MAX_ENTRIES + 5000; i++) {
		snprintf(host, sizeof(host), "h%u.spoof.test", i);
		observed_add(o, OBS_ADDR, host, "192.0.2.25", 0, "192.0.2.53", DAY, T0);
	}
	add_genuine(o, T0 + 1);
	assert_int_equal(observed_count(o), OBSERVED_MAX_ENTRIES);
	const char *out[8];
	assert_int_equal(observed_hosts_at(o, "192.0.2.25", T0 + 1, out, 8), 8);
	assert_true(found_host(o, "192.0.2.25", T0 + 1, "mx.example.test"));
	observed_free(o);
}

static void test_lru_order(void **state)
{
	(void)state;
	struct observed *o = observed_new();
	for (uint32_t i = 0; i < OBSERVED_MAX_ENTRIES; i++)
		add_spoofed(o, i, DAY, T0);
	/* Answer 0 is the oldest but used by a lookup; 1 is next and untouched. */
	assert_true(found_host(o, "10.0.0.0", T0 + 10, "h0.spoof.test"));
	add_spoofed(o, OBSERVED_MAX_ENTRIES, DAY, T0 + 10);
	assert_int_equal(observed_evicted(o), 1);
	assert_true(found_host(o, "10.0.0.0", T0 + 10, "h0.spoof.test"));
	assert_false(found_host(o, "10.0.0.1", T0 + 10, "h1.spoof.test"));
	/* A repeated answer is a use too: 2 stays, 3 goes. */
	add_spoofed(o, 2, DAY, T0 + 11);
	add_spoofed(o, OBSERVED_MAX_ENTRIES + 1, DAY, T0 + 11);
	assert_true(found_host(o, "10.0.0.2", T0 + 11, "h2.spoof.test"));
	assert_false(found_host(o, "10.0.0.3", T0 + 11, "h3.spoof.test"));
	assert_int_equal(observed_count(o), OBSERVED_MAX_ENTRIES);
	observed_free(o);
}

static void test_expired_go_first(void **state)
{
	(void)state;
	struct observed *o = observed_new();
	/* The least recently used half lives a day; the newer half 60 s. */
	for (uint32_t i = 0; i < OBSERVED_MAX_ENTRIES; i++)
		add_spoofed(o, i, i < OBSERVED_MAX_ENTRIES / 2 ? DAY : 60, T0);
	for (uint32_t i = 0; i < 1000; i++)
		add_spoofed(o, OBSERVED_MAX_ENTRIES + i, DAY, T0 + 61);
	assert_int_equal(observed_evicted(o), 1000);
	assert_int_equal(observed_evicted_unexpired(o), 0);
	assert_true(found_host(o, "10.0.0.0", T0 + 61, "h0.spoof.test"));
	observed_free(o);
}

static void test_ttl(void **state)
{
	(void)state;
	struct observed *o = observed_new();
	observed_add(o, OBS_ADDR, "mx.example.test", "192.0.2.25", 0, "", 300, T0);
	assert_true(found_host(o, "192.0.2.25", T0 - 30, "mx.example.test"));
	assert_true(found_host(o, "192.0.2.25", T0, "mx.example.test"));
	assert_true(found_host(o, "192.0.2.25", T0 + 300, "mx.example.test"));
	assert_false(found_host(o, "192.0.2.25", T0 + 301, "mx.example.test"));
	/* A newer answer extends it. */
	observed_add(o, OBS_ADDR, "mx.example.test", "192.0.2.25", 0, "", 300, T0 + 200);
	assert_true(found_host(o, "192.0.2.25", T0 + 500, "mx.example.test"));
	assert_false(found_host(o, "192.0.2.25", T0 + 501, "mx.example.test"));

	/* TTL 0: the second it was seen only. */
	observed_add(o, OBS_ADDR, "zero.example.test", "192.0.2.26", 0, "", 0, T0);
	assert_true(found_host(o, "192.0.2.26", T0, "zero.example.test"));
	assert_false(found_host(o, "192.0.2.26", T0 + 1, "zero.example.test"));
	/* Top bit set: read as 0 (RFC 2181 §8). */
	observed_add(o, OBS_ADDR, "neg.example.test", "192.0.2.27", 0, "", 0x80000000u, T0);
	assert_false(found_host(o, "192.0.2.27", T0 + 1, "neg.example.test"));
	/* The largest TTL counts for a day only. */
	observed_add(o, OBS_ADDR, "long.example.test", "192.0.2.28", 0, "", 0x7fffffffu, T0);
	assert_true(found_host(o, "192.0.2.28", T0 + OBSERVED_MAX_TTL, "long.example.test"));
	assert_false(found_host(o, "192.0.2.28", T0 + OBSERVED_MAX_TTL + 1, "long.example.test"));
	observed_free(o);
}

struct tmpdb {
	char dir[64], path[96];
};

static struct db *open_db(const struct tmpdb *t)
{
	char err[512];
	struct db *d = db_open(t->path, err, sizeof(err));
	if (!d)
		fail_msg("%s", err);
	return d;
}

static long long scalar(const struct tmpdb *t, const char *sql)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "sqlite3 %s \"%s\"", t->path, sql);
	FILE *p = popen(cmd, "r");
	long long v = -1;
	if (p) {
		if (fscanf(p, "%lld", &v) != 1)
			v = -1;
		pclose(p);
	}
	return v;
}

static void save(struct observed *o, struct db *d)
{
	assert_int_equal(db_begin(d), 0);
	assert_int_equal(observed_save(o, d), 0);
	assert_int_equal(db_commit(d), 0);
}

static void test_save_load(void **state)
{
	(void)state;
	struct tmpdb t;
	snprintf(t.dir, sizeof(t.dir), "/tmp/mxwatch-observed-XXXXXX");
	assert_non_null(mkdtemp(t.dir));
	snprintf(t.path, sizeof(t.path), "%s/o.db", t.dir);

	/* Run 1: a flood of day-long answers, one short answer, the genuine
	 * answers. */
	struct db *d = open_db(&t);
	struct observed *o = observed_new();
	for (uint32_t i = 0; i < OBSERVED_MAX_ENTRIES + 5000; i++)
		add_spoofed(o, i, DAY, T0);
	observed_add(o, OBS_ADDR, "short.example.test", "192.0.2.30", 0, "", 60, T0);
	add_genuine(o, T0 + 30);
	save(o, d);
	observed_free(o);
	assert_int_equal(scalar(&t, "SELECT count(*) FROM observed_dns"), OBSERVED_MAX_ENTRIES);
	assert_int_equal(scalar(&t, "SELECT count(*) FROM observed_dns WHERE expires_at != seen_at"
				    " + min(ttl, 86400)"),
			 0);

	/* Run 2 loads it back, whole, and finds the answers as of their time. */
	o = observed_new();
	assert_int_equal(observed_load(o, d), 0);
	assert_int_equal(observed_count(o), OBSERVED_MAX_ENTRIES);
	assert_true(found_host(o, "192.0.2.25", T0 + 31, "mx.example.test"));
	assert_true(found_host(o, "192.0.2.30", T0 + 31, "short.example.test"));
	/* Its capture is two minutes on: a new answer gets into the full
	 * store; the short answer has expired, makes room, and is not kept. */
	observed_add(o, OBS_ADDR, "mx2.example.test", "192.0.2.26", 1, "", 3600, T0 + 120);
	assert_true(found_host(o, "192.0.2.26", T0 + 120, "mx2.example.test"));
	assert_false(found_host(o, "192.0.2.30", T0 + 120, "short.example.test"));
	assert_int_equal(observed_evicted(o), 1);
	assert_int_equal(observed_evicted_unexpired(o), 0);
	save(o, d);
	observed_free(o);
	assert_int_equal(scalar(&t, "SELECT count(*) FROM observed_dns WHERE name ="
				    " 'short.example.test'"),
			 0);
	assert_int_equal(scalar(&t, "SELECT count(*) FROM observed_dns WHERE name LIKE"
				    " 'mx%.example.test'"),
			 2);
	assert_true(scalar(&t, "SELECT count(*) FROM observed_dns") <= OBSERVED_MAX_ENTRIES);

	/* Meanwhile more rows than the cap came in (another writer), seen two
	 * days later. Run 3 sees a capture of that time: every row of runs 1
	 * and 2 has expired and goes, and the table is cut to its newest rows. */
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 %s \"WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i"
		 " WHERE n + 1 < %d) INSERT INTO observed_dns SELECT 'address',"
		 " 'h' || n || '.extra.test', '192.0.2.40', 0, '', %d, %d + n, %d + n FROM i\"",
		 t.path, OBSERVED_MAX_ENTRIES + 10, DAY, T0 + 2 * DAY, T0 + 3 * DAY);
	assert_int_equal(system(cmd), 0);
	o = observed_new();
	assert_int_equal(observed_load(o, d), 0);
	assert_int_equal(observed_count(o), OBSERVED_MAX_ENTRIES);
	int64_t late = T0 + 2 * DAY + 70000;
	observed_add(o, OBS_MX, "late.example.test", "mx.late.example.test", 0, "", 300, late);
	save(o, d);
	observed_free(o);
	assert_int_equal(scalar(&t, "SELECT count(*) FROM observed_dns"), OBSERVED_MAX_ENTRIES);
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM observed_dns WHERE expires_at < %lld",
		 (long long)late);
	assert_int_equal(scalar(&t, sql), 0);
	assert_int_equal(scalar(&t, "SELECT expires_at FROM observed_dns WHERE name ="
				    " 'late.example.test'"),
			 late + 300);
	/* The 11 oldest of the 65,547 unexpired rows were cut. */
	assert_int_equal(scalar(&t, "SELECT min(seen_at) FROM observed_dns"), T0 + 2 * DAY + 11);
	db_close(d);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", t.dir);
	assert_int_equal(system(cmd), 0);
}

/* A database of schema 6 gets its rows' expiry when it is opened, and its
 * sessions their sensors (schema 8). */
static void test_migration(void **state)
{
	(void)state;
	struct tmpdb t;
	snprintf(t.dir, sizeof(t.dir), "/tmp/mxwatch-observed-XXXXXX");
	assert_non_null(mkdtemp(t.dir));
	snprintf(t.path, sizeof(t.path), "%s/o.db", t.dir);
	struct db *d = open_db(&t);
	db_close(d);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 %s \"DELETE FROM schema_version WHERE version >= 7;"
		 " DROP TABLE sightings; DROP INDEX sessions_community;"
		 " DROP TABLE tlsrpt; DROP TABLE tlsrpt_sent;"
		 " DROP INDEX findings_key; ALTER TABLE sessions DROP COLUMN sensor;"
		 " ALTER TABLE sessions DROP COLUMN community_id;"
		 " ALTER TABLE findings DROP COLUMN sensor;"
		 " ALTER TABLE findings DROP COLUMN finding_key;"
		 " INSERT INTO sessions(id, ts_start, record) VALUES ('s1', 5,"
		 " '{\\\"sensor\\\":\\\"old-s\\\",\\\"community_id\\\":\\\"1:x\\\"}'),"
		 " ('s2', 6, '{}');"
		 " INSERT INTO findings(session_id, rule, severity, ts) VALUES"
		 " ('s1', 'starttls-stripped', 'high', 5);"
		 " ALTER TABLE observed_dns DROP COLUMN expires_at;"
		 " INSERT INTO observed_dns VALUES ('mx', 'a.test', 'mx.a.test', 0, '', 300, 100),"
		 " ('mx', 'b.test', 'mx.b.test', 0, '', 4294967295, 100),"
		 " ('mx', 'c.test', 'mx.c.test', 0, '', 999999, 100)\"",
		 t.path);
	assert_int_equal(system(cmd), 0);
	d = open_db(&t);
	db_close(d);
	assert_int_equal(scalar(&t, "SELECT expires_at FROM observed_dns WHERE name = 'a.test'"),
			 400);
	assert_int_equal(scalar(&t, "SELECT expires_at FROM observed_dns WHERE name = 'b.test'"),
			 100);
	assert_int_equal(scalar(&t, "SELECT expires_at FROM observed_dns WHERE name = 'c.test'"),
			 100 + DAY);
	/* 7 -> 8: sessions and findings name the sensor their record named,
	 * and every session is its sensor's sighting ('' when none was named) */
	assert_int_equal(scalar(&t, "SELECT count(*) FROM sessions WHERE id = 's1' AND"
				    " sensor = 'old-s' AND community_id = '1:x'"),
			 1);
	assert_int_equal(scalar(&t, "SELECT count(*) FROM sessions WHERE id = 's2' AND"
				    " sensor IS NULL"),
			 1);
	assert_int_equal(scalar(&t, "SELECT count(*) FROM findings WHERE sensor = 'old-s'"), 1);
	assert_int_equal(scalar(&t, "SELECT count(*) FROM sightings WHERE (sensor, record_id,"
				    " session_id) IN (VALUES ('old-s', 's1', 's1'), ('', 's2', 's2'))"),
			 2);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", t.dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_flood_then_genuine),
	    cmocka_unit_test(test_flood_on_one_address),
	    cmocka_unit_test(test_lru_order),
	    cmocka_unit_test(test_expired_go_first),
	    cmocka_unit_test(test_ttl),
	    cmocka_unit_test(test_save_load),
	    cmocka_unit_test(test_migration),
	};
	return cmocka_run_group_tests_name("observed", tests, NULL, NULL);
}
