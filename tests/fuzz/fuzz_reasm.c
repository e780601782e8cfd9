/*
 * fuzz_reasm.c - TCP reassembly of one direction: the input is a sequence
 * of segments [flags:1][seq offset:2][length:1][bytes]; flags bit 0 is a
 * FIN, bit 1 an ACK of the offset instead of data, bit 2 a SYN. The
 * delivered bytes must never exceed what was fed, and every buffer must
 * go back to the budget.
 */
#include <stdlib.h>

#include "stream/reasm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct counted {
	uint64_t delivered;
};

static void on_data(void *ctx, int dir, const uint8_t *p, size_t n)
{
	(void)dir;
	(void)p;
	((struct counted *)ctx)->delivered += n;
}
static void on_gap(void *ctx, int dir, uint32_t n)
{
	(void)ctx;
	(void)dir;
	(void)n;
}
static void on_anomaly(void *ctx, int dir, enum reasm_anomaly k, uint32_t n)
{
	(void)ctx;
	(void)dir;
	(void)k;
	(void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct counted c = {0};
	struct reasm_sink sink = {&c, on_data, on_gap, on_anomaly};
	struct reasm_dir d;
	struct reasm_budget b = {.limit = 1 << 20};
	reasm_init(&d);
	const uint32_t base = 0xfffff000u; /* near the wrap, where it is hardest */
	uint64_t fed = 0;
	size_t i = 0;
	while (i + 4 <= size) {
		uint8_t flags = data[i];
		uint32_t seq = base + ((uint32_t)data[i + 1] << 8 | data[i + 2]);
		size_t n = data[i + 3];
		i += 4;
		if (n > size - i)
			n = size - i;
		if (flags & 4)
			reasm_syn(&d, seq);
		else if (flags & 2)
			reasm_ack(&d, &sink, 0, seq);
		else if (reasm_segment(&d, &sink, 0, seq, flags & 1, data + i, (uint32_t)n, &b) ==
			 REASM_OVER_BUDGET)
			reasm_drop(&d, &sink, 0, (uint32_t)n);
		fed += n;
		i += n;
	}
	reasm_flush(&d, &sink, 0, &b);
	reasm_free(&d, &b);
	if (c.delivered > fed || b.used != 0)
		abort();
	return 0;
}
