/*
 * fuzz_x509.c - one DER certificate through the describer (OpenSSL's
 * parser underneath, our field extraction on top).
 */
#include "decoder/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready)
		ready = x509_init() == 0;
	struct x509_info info;
	x509_describe(data, size, &info);
	return 0;
}
