/*
 * stagetime.h - optional time accounting per pipeline stage, for `make
 * bench` only: compiled in with -DMXW_STAGE_TIMING (build/mxwatch-timing),
 * compiled out of the real program. It answers "what share of the run goes
 * to message bodies and to traffic after the TLS handshake".
 */
#ifndef MXW_STAGETIME_H
#define MXW_STAGETIME_H

#include <stdint.h>

enum stage {
	STAGE_BODY = 0, /* skipping DATA / BDAT message bodies */
	STAGE_BYPASSED, /* packets of flows bypassed after the handshake */
	STAGE_COUNT
};

#ifdef MXW_STAGE_TIMING
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

/* Units are CPU timestamp ticks where the CPU has them (cheap enough to
 * read per packet), else nanoseconds; shares are ratios of the same unit. */
struct stage_times {
	uint64_t ns[STAGE_COUNT];
	uint64_t bytes[STAGE_COUNT];
	uint64_t calls[STAGE_COUNT];
};
/* Per thread: the figures printed are the main thread's, so time with --workers 1. */
extern _Thread_local struct stage_times stage_times;

static inline uint64_t stage_now(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#endif
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#define STAGE_BEGIN(var) uint64_t var = stage_now()
#define STAGE_END(st, var, nbytes)                         \
	do {                                               \
		stage_times.ns[st] += stage_now() - (var); \
		stage_times.bytes[st] += (nbytes);         \
		stage_times.calls[st]++;                   \
	} while (0)
#else
#define STAGE_BEGIN(var)           (void)0
#define STAGE_END(st, var, nbytes) (void)0
#endif

#endif
