/*
 * fuzz_tls.c - the TLS handshake walker on both directions (frames.h),
 * with the server's certificates described as the session engine does.
 */
#include <stdlib.h>

#include "decoder/tls.h"
#include "decoder/x509.h"
#include "frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void feed(void *ctx, int dir, const uint8_t *p, size_t n)
{
	struct tls *t = ctx;
	if (n == 0)
		tls_gap(t, dir, 100);
	else
		tls_feed(t, dir, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready)
		ready = x509_init() == 0;
	struct tls *t = tls_new();
	if (!t)
		return 0;
	frames_each(data, size, feed, t);
	(void)tls_done(t);
	struct tls_facts *f = tls_take_facts(t);
	for (int i = 0; f && i < f->n_certs; i++) {
		free(x509_describe(f->certs[i].der, f->certs[i].len));
	}
	tls_facts_free(f);
	tls_free(t);
	return 0;
}
