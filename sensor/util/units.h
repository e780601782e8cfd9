/*
 * units.h - time units, spelled once. Capture times are nanoseconds since
 * the epoch (uint64_t) throughout; stored times are seconds.
 */
#ifndef MXW_UNITS_H
#define MXW_UNITS_H

#define NS_PER_S  1000000000ull
#define NS_PER_MS 1000000ull
#define NS_PER_US 1000ull

#endif
