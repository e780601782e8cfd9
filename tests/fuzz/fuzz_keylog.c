/*
 * fuzz_keylog.c - NSS key log text of any shape into a small index (so
 * its ring wraps), then a lookup of every random the input could name.
 */
#include "decoder/keylog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keylog *k = keylog_new(8);
	if (!k)
		return 0;
	keylog_feed(k, (const char *)data, size);
	uint8_t secret[KEYLOG_MAX_SECRET];
	for (size_t i = 0; i + 32 <= size; i += 32)
		(void)keylog_server_secret(k, data + i, secret);
	keylog_free(k);
	return 0;
}
