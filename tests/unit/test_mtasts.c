/*
 * test_mtasts.c - RFC 8461 grammars: the _mta-sts TXT record, the policy
 * file, and mx pattern matching, with every malformed variant we could
 * think of; each rejection must name what is wrong (and the line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/policy/mtasts.h"
#include "db/policy/tlsrpt_txt.h"

static int txt(const char *s, struct sts_txt *t, char *err)
{
	return sts_txt_parse(s, strlen(s), t, err, 256);
}

static void test_txt_valid(void **state)
{
	(void)state;
	struct sts_txt t;
	char err[256];
	static const struct {
		const char *in, *id;
	} ok[] = {
	    {"v=STSv1; id=20160831085700Z;", "20160831085700Z"},
	    {"v=STSv1;id=abc", "abc"},
	    {"v=STSv1; id=abc ;", "abc"},
	    {"v=STSv1;\tid=A1; ext=foo-bar;", "A1"},
	    {"v=STSv1; ext=x; id=12345678901234567890123456789012",
	     "12345678901234567890123456789012"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(txt(ok[i].in, &t, err), 0);
		assert_string_equal(t.id, ok[i].id);
	}
}

static void test_txt_invalid(void **state)
{
	(void)state;
	struct sts_txt t;
	char err[256];
	static const char *const bad[] = {
	    "",
	    "v=STSv2; id=1;",                                 /* wrong version */
	    "v=stsv1; id=1;",                                 /* version is case-sensitive */
	    " v=STSv1; id=1;",                                /* leading space */
	    "v=STSv1;",                                       /* no id */
	    "v=STSv1; id=;",                                  /* empty id */
	    "v=STSv1; id=123456789012345678901234567890123;", /* 33 chars */
	    "v=STSv1; id=ab-cd;",                             /* not alnum */
	    "v=STSv1; id=1; id=2;",                           /* two ids */
	    "v=STSv1 id=1",                                   /* missing ';' */
	    "v=STSv1; =1;",                                   /* no field name */
	    "v=STSv1; id=1; foo;",                            /* field without '=' */
	    "v=STSv1; id=1; foo=;",                           /* empty extension value */
	    "v=STSv1; id=1\x01;",                             /* control byte */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(txt(bad[i], &t, err), -1);
		assert_true(err[0] != 0);
	}
}

static void test_txt_select(void **state)
{
	(void)state;
	struct sts_txt t;
	char err[256];
	const char *recs[] = {"google-site-verification=x", "v=STSv1; id=7;", "v=spf1 -all"};
	size_t lens[3] = {strlen(recs[0]), strlen(recs[1]), strlen(recs[2])};
	assert_int_equal(sts_txt_select(recs, lens, 3, &t, err, sizeof(err)), 0);
	assert_string_equal(t.id, "7");
	const char *two[] = {"v=STSv1; id=1;", "v=STSv1; id=2;"};
	size_t tl[2] = {strlen(two[0]), strlen(two[1])};
	assert_int_equal(sts_txt_select(two, tl, 2, &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "2 v=STSv1"));
	assert_int_equal(sts_txt_select(recs, lens, 1, &t, err, sizeof(err)), -1);
}

static int pol(const char *s, struct sts_policy *p, char *err)
{
	return sts_policy_parse(s, strlen(s), p, err, 256);
}

static void test_policy_valid(void **state)
{
	(void)state;
	struct sts_policy p;
	char err[256];
	assert_int_equal(pol("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
			     "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			     &p, err),
			 0);
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	assert_int_equal(p.max_age, 604800);
	assert_int_equal(p.n_mx, 3);
	assert_string_equal(p.mx[1], "*.example.net");
	/* LF only, no final newline, unknown fields ignored, spaces around. */
	assert_int_equal(
	    pol("version: STSv1\nmode:testing\nmx: a.b\nfoo: bar\nmax_age:  0   ", &p, err), 0);
	assert_int_equal(p.mode, STS_MODE_TESTING);
	assert_int_equal(p.max_age, 0);
	/* mode none needs no mx. */
	assert_int_equal(pol("version: STSv1\nmode: none\nmax_age: 31557600\n", &p, err), 0);
	assert_int_equal(p.mode, STS_MODE_NONE);
}

static void test_policy_invalid_names_line(void **state)
{
	(void)state;
	struct sts_policy p;
	char err[256];
	static const struct {
		const char *in, *want;
	} bad[] = {
	    {"version: STSv1\nmode: enforcing\nmx: a.b\nmax_age: 1\n", "line 2: mode"},
	    {"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", "line 1: version"},
	    {"mode: enforce\nmx: a.b\nmax_age: 1\n", "version"},
	    {"version: STSv1\nmx: a.b\nmax_age: 1\n", "mode: missing"},
	    {"version: STSv1\nmode: enforce\nmax_age: 1\n", "mx: missing"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\n", "max_age: missing"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", "line 4: max_age"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", "line 4: max_age"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n", "line 4: max_age"},
	    {"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1h\n", "line 4: max_age"},
	    {"version: STSv1\nmode: enforce\nmx: **.b\nmax_age: 1\n", "line 3: mx"},
	    {"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", "line 3: mx"},
	    {"version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n", "line 3: mx"},
	    {"version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n", "line 3: mx"},
	    {"version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "line 3: mx"},
	    {"version: STSv1\nthis line has no colon\n", "line 2"},
	    {"<html><body>Not found</body></html>\n", "line 1"},
	    {"version: STSv1\nmo de: enforce\n", "line 2"},
	    {"", "version"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(pol(bad[i].in, &p, err), -1);
		if (!strstr(err, bad[i].want))
			fail_msg("case %zu: '%s' does not mention '%s'", i, err, bad[i].want);
	}
	/* Embedded NUL and a truncated final line must not read past len. */
	static const char nul[] = "version: STSv1\nmode: enf\0orce\nmx: a.b\nmax_age: 5\n";
	assert_int_equal(sts_policy_parse(nul, sizeof(nul) - 1, &p, err, sizeof(err)), -1);
	char *exact = malloc(20);
	memcpy(exact, "version: STSv1\nmode:", 20);
	assert_int_equal(sts_policy_parse(exact, 20, &p, err, sizeof(err)), -1);
	free(exact);
}

/* RFC 8460 3: the record grammar, and 3.1's examples. */
static void test_tlsrpt_record(void **state)
{
	(void)state;
	struct tlsrpt_txt r;
	char err[256];
	static const char *const good[] = {
	    "v=TLSRPTv1;rua=mailto:reports@example.com",         /* 3.1 */
	    "v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", /* 3.1 */
	    "v=TLSRPTv1; rua=mailto:a@example.com, https://r.example.com/x ;", /* WSP, trailing ; */
	    "v=TLSRPTv1; ext-1=x; rua=mailto:a@example.com",     /* an extension first */
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(tlsrpt_txt_parse(good[i], strlen(good[i]), &r, err, sizeof(err)), 0);
	assert_int_equal(r.n_rua, 1);
	const char *two = "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x";
	assert_int_equal(tlsrpt_txt_parse(two, strlen(two), &r, err, sizeof(err)), 0);
	assert_int_equal(r.n_rua, 2);
	assert_string_equal(r.rua[0], "mailto:a@example.com");
	assert_string_equal(r.rua[1], "https://r.example.com/x");
	static const char *const bad[] = {
	    "v=TLSRPTv2; rua=mailto:a@example.com", /* another version */
	    "rua=mailto:a@example.com; v=TLSRPTv1", /* the version must come first */
	    "v=TLSRPTv1",                           /* rua is required */
	    "v=TLSRPTv1; ext=1",                    /* rua is required */
	    "v=TLSRPTv1; rua=",                     /* no URI */
	    "v=TLSRPTv1; rua=ftp://r.example.com/x", /* no usable scheme */
	    "v=TLSRPTv1; rua=mailto:nobody",        /* not an address */
	    "v=TLSRPTv1 rua=mailto:a@example.com",  /* no delimiter */
	    "v=TLSRPTv1; rua=mailto:a@exa mple.com", /* a space inside a URI */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tlsrpt_txt_parse(bad[i], strlen(bad[i]), &r, err, sizeof(err)), -1);
	/* selection: other records are discarded, and two TLSRPT records mean
	 * none */
	const char *txt[] = {"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com"};
	size_t len[] = {strlen(txt[0]), strlen(txt[1])};
	int chosen = -1;
	assert_int_equal(tlsrpt_txt_select(txt, len, 2, &r, &chosen, err, sizeof(err)), 0);
	assert_int_equal(chosen, 1);
	const char *dup[] = {txt[1], "v=TLSRPTv1; rua=mailto:b@example.com"};
	size_t dlen[] = {strlen(dup[0]), strlen(dup[1])};
	assert_int_equal(tlsrpt_txt_select(dup, dlen, 2, &r, &chosen, err, sizeof(err)), -1);
	assert_int_equal(tlsrpt_txt_select(txt, len, 1, &r, &chosen, err, sizeof(err)), -1);
}

static void test_mx_match(void **state)
{
	(void)state;
	assert_true(sts_mx_match("mail.example.com", "mail.example.com"));
	assert_true(sts_mx_match("mail.example.com", "MAIL.Example.COM."));
	assert_true(sts_mx_match("*.example.com", "mx1.example.com"));
	assert_true(sts_mx_match("*.example.com.", "mx1.example.com"));
	/* A wildcard covers exactly one left-most label (RFC 8461 4.1). */
	assert_false(sts_mx_match("*.example.com", "a.b.example.com"));
	assert_false(sts_mx_match("*.example.com", "example.com"));
	assert_false(sts_mx_match("*.example.com", ".example.com"));
	assert_false(sts_mx_match("mail.example.com", "mail.example.co"));
	assert_false(sts_mx_match("mail.example.com", "xmail.example.com"));
	assert_false(sts_mx_match("*.example.com", "mx1.example.com.evil"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_txt_valid),
	    cmocka_unit_test(test_txt_invalid),
	    cmocka_unit_test(test_txt_select),
	    cmocka_unit_test(test_policy_valid),
	    cmocka_unit_test(test_policy_invalid_names_line),
	    cmocka_unit_test(test_mx_match),
	    cmocka_unit_test(test_tlsrpt_record),
	};
	return cmocka_run_group_tests_name("mtasts", tests, NULL, NULL);
}
