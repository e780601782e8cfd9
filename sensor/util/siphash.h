/*
 * siphash.h - SipHash, the keyed hash of the hash tables.
 * A random per-run key means an attacker cannot choose 5-tuples that all
 * land in one bucket (hash flooding). SipHash-1-3 (fewer rounds, the choice
 * of several hash-table implementations for flooding resistance) is the
 * per-packet flow lookup; SipHash-2-4 the rest, including flow ids, which
 * must stay the same across versions.
 */
#ifndef MXW_SIPHASH_H
#define MXW_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash24(const uint8_t key[16], const uint8_t *in, size_t len);
uint64_t siphash13(const uint8_t key[16], const uint8_t *in, size_t len);
/* siphash13() of 16 bytes: m0 then m1, each little-endian. */
uint64_t siphash13_words(const uint8_t key[16], uint64_t m0, uint64_t m1);

#endif
