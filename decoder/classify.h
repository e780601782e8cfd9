/*
 * classify.h - application protocol of a flow from nDPI, fed the flow's
 * first packets and then freed. The session layer uses it to find SMTP on
 * other ports, to name non-SMTP traffic on port 25, and to cross-check
 * nDPI's clear-text-credentials risk against our own AUTH detection.
 */
#ifndef MXW_CLASSIFY_H
#define MXW_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

/* nDPI sees at most this many packets of a flow. */
#define CLASSIFY_MAX_PACKETS 32

struct classifier;     /* one per thread: wraps nDPI's detection module */
struct classify_state; /* one per flow while classification runs */

struct classify_result {
	uint8_t done;                  /* nDPI state freed, result final */
	uint8_t smtp;                  /* nDPI says SMTP (or SMTPS) */
	uint8_t cleartext_credentials; /* nDPI raised NDPI_CLEAR_TEXT_CREDENTIALS */
	uint16_t master, app;
	char name[48]; /* "SMTP", "HTTP", "TLS", "Unknown" */
};

struct classifier *classifier_new(void);
void classifier_free(struct classifier *c);

/* Feeds one packet (from its IP header). Returns 1 when classification is
 * over: the state is freed and *res final. `extra`: once the protocol is
 * known, go on while nDPI still dissects (it finds clear-text credentials
 * that way); without, stop at the protocol name. */
int classify_packet(struct classifier *c, struct classify_state **st, const uint8_t *l3,
		    size_t l3_len, uint64_t ts_ns, int extra, struct classify_result *res);

/* Ends classification early (flow closed): frees the state, final *res. */
void classify_finish(struct classifier *c, struct classify_state **st, struct classify_result *res);

#endif
