/*
 * siphash.h - SipHash-2-4, the keyed hash of the flow table.
 * A random per-run key means an attacker cannot choose 5-tuples that all
 * land in one bucket (hash flooding).
 */
#ifndef MXW_SIPHASH_H
#define MXW_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash24(const uint8_t key[16], const uint8_t *in, size_t len);

#endif
