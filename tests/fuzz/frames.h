/*
 * frames.h - the input format of the stream fuzz targets (smtp, tls): a
 * sequence of [direction:1][length:2, big-endian][bytes], so one input
 * holds both sides of a conversation in order, as tests/fuzz/seeds.sh
 * writes it from real captures. A truncated last frame is fed as far as
 * it goes.
 */
#ifndef MXW_FUZZ_FRAMES_H
#define MXW_FUZZ_FRAMES_H

#include <stddef.h>
#include <stdint.h>

typedef void (*frame_fn)(void *ctx, int dir, const uint8_t *p, size_t n);

static inline void frames_each(const uint8_t *data, size_t size, frame_fn fn, void *ctx)
{
	size_t i = 0;
	while (i + 3 <= size) {
		int dir = data[i] & 1;
		size_t n = (size_t)data[i + 1] << 8 | data[i + 2];
		i += 3;
		if (n > size - i)
			n = size - i;
		fn(ctx, dir, data + i, n);
		i += n;
	}
}

#endif
