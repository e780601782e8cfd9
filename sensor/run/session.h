/*
 * session.h - the session engine: the flow table's consumer, which drives
 * the decoders over a reassembled flow. It picks the decoder per flow (SMTP
 * by port or content, implicit TLS on 465, nDPI for the rest), hands SMTP's
 * STARTTLS switch over to the TLS walker, bypasses the flow once the
 * handshake is over, and when the flow ends turns what the decoders learnt
 * into a session record (decoder/record.h) for the emit callback. It
 * records facts only; rules/ judges them.
 */
#ifndef MXW_SESSION_H
#define MXW_SESSION_H

#include <stdint.h>

#include "decoder/classify.h"
#include "decoder/record.h"
#include "decoder/smtp.h"
#include "decoder/tls.h"
#include "stream/flow.h"

/* Which flows nDPI classifies. */
enum session_ndpi_mode {
	SESSION_NDPI_AUTO = 0, /* flows our own decoders cannot place: other ports, and
				  mail ports whose first bytes are not SMTP */
	SESSION_NDPI_ALL,      /* every flow (adds the clear-text credentials cross-check) */
	SESSION_NDPI_OFF,
};

struct session {
	enum session_kind kind;
	enum session_reason reason;
	struct smtp *smtp;
	struct tls *tls;
	uint8_t tls_active[2]; /* this direction's bytes go to the TLS walker */
	uint8_t bypassed;
	uint8_t bypass_reason_tls; /* bypassed because the TLS handshake ended */
	uint8_t ndpi_wanted;       /* feed nDPI this flow's packets */
	uint8_t content_checked;   /* first bytes compared with SMTP */
	uint8_t content_not_smtp;  /* on a mail port, but the bytes are not SMTP */
	struct classify_state *cls;
	struct classify_result cls_res;
	uint8_t *dns_buf; /* DNS over TCP: one message being assembled */
	uint32_t dns_len, dns_cap;
};

/* DNS messages (from UDP or TCP port 53 responses) go here. */
typedef void (*session_dns_fn)(void *ctx, const struct flow *f, const uint8_t *msg, size_t len,
			       uint64_t ts_ns);

/* Servers that drew the most flows without a payload byte (SYN-only,
 * refused, scans, floods): a space-saving tally, exact while it has room. */
#define SESSION_EMPTY_TOP 8
struct server_tally {
	char ip[46];
	uint64_t flows;
};

struct session_stats {
	uint64_t sessions[SESSION_KIND_COUNT]; /* by kind at close, flows with payload */
	uint64_t empty_flows; /* no payload either way: counted here, never recorded */
	struct server_tally empty_top[SESSION_EMPTY_TOP];
	uint64_t tls_bypassed;                 /* flows bypassed after the handshake */
	uint64_t other_bypassed;               /* non-mail flows bypassed at their first byte */
	uint64_t results_lost; /* finished sessions a worker could not hand on (no memory) */
};

/* Receives each finished flow's record and owns it (record_free()). The
 * flow is there for the engine's own bookkeeping (result ordering), never
 * for rules or sinks. */
typedef void (*session_emit_fn)(void *ctx, const struct flow *f, struct session_record *r);

struct session_engine;

/* Returns NULL on failure. `emit` receives a record for every finished
 * mail session, or, with `all_flows`, for every flow (facts of the flow
 * alone: the --flows listing). */
struct session_engine *session_engine_new(enum session_ndpi_mode mode, int all_flows,
					  session_emit_fn emit, void *emit_ctx);
void session_engine_free(struct session_engine *e);

void session_engine_set_dns(struct session_engine *e, session_dns_fn fn, void *ctx);

/* The flow_consumer that feeds this engine. */
struct flow_consumer session_engine_consumer(struct session_engine *e);

const struct session_stats *session_engine_stats(const struct session_engine *e);
void session_stats_add(struct session_stats *sum, const struct session_stats *x);

#endif
