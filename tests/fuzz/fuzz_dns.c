/*
 * fuzz_dns.c - one DNS message through the passive DNS parser, and the
 * same bytes as a DNS-over-TCP stream through the framer.
 */
#include "decoder/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_rr(void *ctx, const struct dns_response *msg, const struct dns_rr *rr)
{
	(void)msg;
	*(unsigned *)ctx += rr->type;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sum = 0;
	dns_parse(data, size, on_rr, &sum);
	size_t i = 0;
	while (i < size) {
		parse_ret r = dns_tcp_frame(data + i, size - i);
		if (r <= 0)
			break;
		dns_parse(data + i + 2, (size_t)r - 2, on_rr, &sum);
		i += (size_t)r;
	}
	return 0;
}
