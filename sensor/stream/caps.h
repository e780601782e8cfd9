/*
 * caps.h - every cap on buffered or tracked state, in one place.
 * A sensor faces hostile traffic: each quantity that grows with input has a
 * named ceiling here; at the ceiling the code truncates and counts, never grows.
 */
#ifndef MXW_CAPS_H
#define MXW_CAPS_H

/* Flows tracked at once; the oldest is evicted to admit a new one. */
#define FLOW_MAX_DEFAULT (1u << 18)

/* Idle timeouts in seconds of capture time. SMTP servers wait up to 5 minutes
 * for a command (RFC 5321 4.5.3.2), so established flows get a little more. */
#define FLOW_TIMEOUT_ESTABLISHED 600
#define FLOW_TIMEOUT_EMBRYONIC   30 /* SYN seen, no data yet */
#define FLOW_TIMEOUT_CLOSED      5  /* FIN both ways or RST: linger for late ACKs */

/* Out-of-order data held per direction while waiting for a hole to fill. */
#define REASM_DIR_MAX_BYTES    (256u * 1024)
#define REASM_DIR_MAX_SEGMENTS 1024

/* Bytes of already delivered data kept per direction to compare against
 * retransmissions: a retransmission whose bytes differ is an evasion signature.
 * The ring starts at the MIN size and doubles to cover the largest segment
 * delivered, up to the full size. */
#define REASM_HISTORY_BYTES     1024
#define REASM_HISTORY_MIN_BYTES 128

/* Global budget for all reassembly buffers of all flows. */
#define REASM_BUDGET_DEFAULT (512ull * 1024 * 1024)

/* Anomaly records kept per flow; more are only counted. */
#define FLOW_MAX_ANOMALY_RECORDS 16

#endif
