/*
 * test_jsonw.c - the JSON writer: structure and escaping of hostile strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sinks/jsonw.h"

static char *render(struct jsonw *w)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_int_equal(jw_emit_line(w, f), 0);
	fclose(f);
	return out;
}

static void test_structure(void **state)
{
	(void)state;
	struct jsonw w;
	jw_init(&w);
	jw_obj_begin(&w);
	jw_key(&w, "a");
	jw_u64(&w, 1);
	jw_key(&w, "b");
	jw_arr_begin(&w);
	jw_str(&w, "x");
	jw_null(&w);
	jw_bool(&w, 1);
	jw_arr_end(&w);
	jw_key(&w, "c");
	jw_obj_begin(&w);
	jw_obj_end(&w);
	jw_key(&w, "t");
	jw_time(&w, 1700000000123456789ull);
	jw_obj_end(&w);
	char *s = render(&w);
	assert_string_equal(s, "{\"a\":1,\"b\":[\"x\",null,true],\"c\":{},"
			       "\"t\":\"2023-11-14T22:13:20.123456Z\"}\n");
	free(s);
	jw_free(&w);
}

static void test_hostile_strings_escaped(void **state)
{
	(void)state;
	struct jsonw w;
	jw_init(&w);
	static const char evil[] = "a\"b\\c\r\nd\x01\x1b[31m\x7f\xff\xc3\xa9\xed\xa0\x80";
	jw_strn(&w, evil, sizeof(evil) - 1);
	char *s = render(&w);
	assert_string_equal(s, "\"a\\\"b\\\\c\\u000d\\u000ad\\u0001\\u001b[31m\\u007f\\u00ff"
			       "\xc3\xa9\\u00ed\\u00a0\\u0080\"\n");
	free(s);
	jw_free(&w);
}

/* Valid UTF-8 that a terminal acts on (RIGHT-TO-LEFT OVERRIDE, the C1 CSI,
 * an isolate, LINE SEPARATOR) is escaped; other text (an em dash) is not. */
static void test_display_controls_escaped(void **state)
{
	(void)state;
	struct jsonw w;
	jw_init(&w);
	static const char text[] = "x\xe2\x80\xaey\xc2\x9bz\xe2\x81\xa6\xe2\x80\xa8\xe2\x80\x94";
	jw_strn(&w, text, sizeof(text) - 1);
	char *s = render(&w);
	assert_string_equal(s, "\"x\\u202ey\\u009bz\\u2066\\u2028\xe2\x80\x94\"\n");
	free(s);
	jw_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_structure),
	    cmocka_unit_test(test_hostile_strings_escaped),
	    cmocka_unit_test(test_display_controls_escaped),
	};
	return cmocka_run_group_tests_name("jsonw", tests, NULL, NULL);
}
