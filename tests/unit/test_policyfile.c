/*
 * test_policyfile.c - the SQLite store and the policy text format: schema
 * creation and re-opening, import -> export round trip, and bad lines
 * rejected with file, line and field while nothing is stored.
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

#include "db/policy/cache.h"
#include "db/policy/policyfile.h"
#include "db/sql/db.h"

static char dbpath[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dbpath, sizeof(dbpath), "/tmp/mxwatch-test-XXXXXX");
	int fd = mkstemp(dbpath);
	assert_true(fd >= 0);
	close(fd);
	unlink(dbpath);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char p[96];
	unlink(dbpath);
	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
	return 0;
}

static struct db *open_db(void)
{
	char err[256];
	struct db *d = db_open(dbpath, err, sizeof(err));
	if (!d)
		fail_msg("%s", err);
	return d;
}

static int import_text(struct db *d, const char *text, char *err, size_t errlen, int *n)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int rc = policyfile_import(d, f, "demo.policy", err, errlen, n);
	fclose(f);
	return rc;
}

static char *export_text(struct db *d)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_int_equal(policyfile_export(d, f), 0);
	fclose(f);
	return out;
}

static const char demo[] = "# demo\n"
			   "mx Example.TEST. 10 MX1.example.test\n"
			   "mx example.test 20 mx2.example.test dnssec=insecure\n"
			   "address mx1.example.test 192.0.2.25\n"
			   "address mx1.example.test 2001:DB8:0::25\n"
			   "mta-sts example.test mode=enforce max_age=86400 mx=mx1.example.test "
			   "mx=*.example.test id=2026\n"
			   "tlsa mx1.example.test 25 3 1 1 "
			   "ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789\n"
			   "\n";

static void test_round_trip(void **state)
{
	(void)state;
	struct db *d = open_db();
	char err[256];
	int n = 0;
	assert_int_equal(import_text(d, demo, err, sizeof(err), &n), 0);
	assert_int_equal(n, 6);
	char *first = export_text(d);
	/* Names are canonical (lower case, no trailing dot), addresses in
	 * canonical text, hex lower case. */
	assert_non_null(strstr(first, "mx example.test 10 mx1.example.test dnssec=secure\n"));
	assert_non_null(strstr(first, "mx example.test 20 mx2.example.test dnssec=insecure\n"));
	assert_non_null(strstr(first, "address mx1.example.test 2001:db8::25 dnssec=secure\n"));
	assert_non_null(strstr(first, "mta-sts example.test mode=enforce max_age=86400 "
				      "mx=mx1.example.test mx=*.example.test id=2026\n"));
	assert_non_null(strstr(first,
			       "tlsa mx1.example.test 25 3 1 1 abcdef0123456789abcdef0123456789"
			       "abcdef0123456789abcdef0123456789 dnssec=secure\n"));
	db_close(d);

	/* Re-open (no second migration) and re-import the export into a new
	 * file: the same export comes out. */
	d = open_db();
	char *again = export_text(d);
	assert_string_equal(first, again);
	free(again);
	db_close(d);
	teardown(NULL);
	d = open_db();
	assert_int_equal(import_text(d, first, err, sizeof(err), &n), 0);
	again = export_text(d);
	assert_string_equal(first, again);
	free(again);
	free(first);
	db_close(d);
}

static void test_cache_lookups(void **state)
{
	(void)state;
	struct db *d = open_db();
	char err[256];
	int n;
	assert_int_equal(import_text(d, demo, err, sizeof(err), &n), 0);
	assert_int_equal(import_text(d, "mx other.test 5 mx1.example.test\n", err, sizeof(err), &n),
			 0);
	struct policy_cache *c = policy_cache_load(d, err, sizeof(err));
	assert_non_null(c);
	const struct cached_domain *dom = policy_cache_domain(c, "example.test");
	assert_non_null(dom);
	assert_int_equal(dom->n_mx, 2);
	assert_string_equal(dom->mx[0].host, "mx1.example.test");
	assert_true(dom->mx[0].secure);
	assert_false(dom->mx[1].secure);
	assert_non_null(dom->sts);
	assert_string_equal(dom->sts->mode, "enforce");
	assert_int_equal(dom->sts->max_age, 86400);
	assert_int_equal(dom->sts->n_mx_patterns, 2);
	assert_string_equal(dom->sts->mx_patterns[1], "*.example.test");
	assert_null(policy_cache_domain(c, "nope.test"));
	const struct cached_host *hosts[4];
	assert_int_equal(policy_cache_hosts_at(c, "2001:db8::25", hosts, 4), 1);
	assert_string_equal(hosts[0]->name, "mx1.example.test");
	assert_int_equal(hosts[0]->n_domains, 2); /* example.test and other.test */
	assert_int_equal(hosts[0]->n_tlsa, 1);
	assert_int_equal(hosts[0]->tlsa[0].usage, 3);
	assert_int_equal(hosts[0]->tlsa[0].len, 32);
	assert_int_equal(hosts[0]->tlsa[0].data[0], 0xab);
	assert_int_equal(policy_cache_hosts_at(c, "192.0.2.26", hosts, 4), 0);
	int nd, nh, na, nt;
	policy_cache_counts(c, &nd, &nh, &na, &nt);
	assert_int_equal(nd, 2);
	assert_int_equal(nh, 2);
	assert_int_equal(na, 2);
	assert_int_equal(nt, 1);
	policy_cache_free(c);
	db_close(d);
}

static void test_bad_lines(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"mx example.test ten mx1.example.test\n", "demo.policy:1: preference:"},
	    {"mx example.test 10\n", "demo.policy:1: mx:"},
	    {"mx exa mple.test 10 a.b\n", "demo.policy:1: preference:"},
	    {"address mx1.example.test 999.1.1.1\n", "demo.policy:1: address:"},
	    {"address mx1.example.test 1.2.3.4 dnssec=maybe\n", "demo.policy:1: dnssec:"},
	    {"mx a.test 1 b.test\nmta-sts a.test mode=enforce max_age=1\n",
	     "demo.policy:2: mta-sts: mx: missing"},
	    {"mta-sts a.test mode=enforce max_age=1 mx=a.test colour=red\n",
	     "demo.policy:1: colour:"},
	    {"mta-sts a.test mode=enforce max_age=1 mx=a.test id=has-dash\n", "demo.policy:1: id:"},
	    {"tlsa mx.test 25 3 1 1 xyz0\n", "demo.policy:1: data:"},
	    {"tlsa mx.test 0 3 1 1 00\n", "demo.policy:1: port:"},
	    {"tlsa mx.test 25 256 1 1 00\n", "demo.policy:1: usage:"},
	    {"\n\n# c\nwhatever x y\n", "demo.policy:4: record:"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct db *d = open_db();
		char err[256] = "";
		int n = -1;
		assert_int_equal(import_text(d, bad[i].text, err, sizeof(err), &n), -1);
		if (!strstr(err, bad[i].want))
			fail_msg("case %zu: '%s' does not contain '%s'", i, err, bad[i].want);
		assert_int_equal(n, 0);
		/* Nothing from the file was kept, not even its good lines. */
		char *out = export_text(d);
		assert_null(strstr(out, "\nmx "));
		free(out);
		db_close(d);
		teardown(NULL);
	}
}

/* 64 maximal mx patterns fit; the 65th is refused, never overflows. */
static void test_many_long_patterns(void **state)
{
	(void)state;
	static char line[20000];
	char label[64];
	memset(label, 'a', 63);
	label[63] = 0;
	for (int count = 64; count <= 65; count++) {
		size_t o = (size_t)snprintf(line, sizeof(line),
					    "mta-sts big.test mode=enforce max_age=5");
		for (int i = 0; i < count; i++)
			o += (size_t)snprintf(line + o, sizeof(line) - o, " mx=%s.%s.%s.x%02d",
					      label, label, label, i);
		snprintf(line + o, sizeof(line) - o, "\n");
		struct db *d = open_db();
		char err[256];
		int n;
		int rc = import_text(d, line, err, sizeof(err), &n);
		if (count == 64)
			assert_int_equal(rc, 0);
		else
			assert_non_null(strstr(err, "more than 64"));
		db_close(d);
		teardown(NULL);
	}
}

static void test_newer_schema_refused(void **state)
{
	(void)state;
	struct db *d = open_db();
	db_close(d);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "sqlite3 %s 'INSERT INTO schema_version VALUES (99)'", dbpath);
	if (system(cmd) != 0)
		skip();
	char err[256];
	assert_null(db_open(dbpath, err, sizeof(err)));
	assert_non_null(strstr(err, "newer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_lookups, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_long_patterns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
	};
	return cmocka_run_group_tests_name("policyfile", tests, NULL, NULL);
}
