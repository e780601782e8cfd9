/*
 * fuzz_x509.c - one DER certificate through the describer (OpenSSL's
 * parser underneath, our field extraction on top), by way of the
 * certificate cache: the second lookup must find the first's entry.
 */
#include <stdlib.h>

#include "decoder/certcache.h"
#include "decoder/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready)
		ready = x509_init() == 0;
	const struct x509_info *a = certcache_get(data, size);
	const struct x509_info *b = certcache_get(data, size);
	if (a && b && a != b && size < (1u << 16))
		abort(); /* the same DER described twice */
	certcache_release(a);
	certcache_release(b);
	return 0;
}
