/*
 * fuzz_smtp.c - the SMTP state machine on both sides of a conversation
 * (frames.h), ending with the facts it hands to the rules.
 */
#include <stdlib.h>

#include "decoder/smtp.h"
#include "frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void feed(void *ctx, int dir, const uint8_t *p, size_t n)
{
	struct smtp *s = ctx;
	if (n == 0)
		smtp_gap(s, dir, 100);
	else
		smtp_feed(s, dir, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp *s = smtp_new();
	if (!s)
		return 0;
	if (size && (data[0] & 0x80))
		smtp_began_midstream(s);
	frames_each(data, size, feed, s);
	(void)smtp_tls_started(s, 0);
	smtp_facts_free(smtp_take_facts(s));
	smtp_free(s);
	return 0;
}
