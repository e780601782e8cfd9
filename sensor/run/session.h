/*
 * session.h - the decoder stage: turns a reassembled flow into an SMTP
 * session record. It is the flow table's consumer: it picks the decoder per
 * flow (SMTP by port or content, implicit TLS on 465, nDPI for the rest),
 * hands SMTP's STARTTLS switch over to the TLS walker, bypasses the flow once
 * the handshake is over, and passes each finished session to an emit
 * callback (the sinks). It records facts only; rules/ judges them.
 */
#ifndef MXW_SESSION_H
#define MXW_SESSION_H

#include <stdint.h>

#include "decoder/classify.h"
#include "stream/flow.h"
#include "decoder/smtp.h"
#include "decoder/tls.h"

enum session_kind {
	SESSION_UNDECIDED = 0,
	SESSION_SMTP,     /* SMTP, maybe upgraded with STARTTLS */
	SESSION_SMTPS,    /* implicit TLS (port 465) */
	SESSION_OTHER,    /* not mail: bypassed */
	SESSION_DNS,      /* DNS over TCP: answers go to the passive DNS hook */
};

enum session_reason { /* why the flow was taken as SMTP */
	SESSION_BY_NONE = 0,
	SESSION_BY_PORT,
	SESSION_BY_CONTENT,
};

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
	uint8_t tls_active[2];   /* this direction's bytes go to the TLS walker */
	uint8_t bypassed;
	uint8_t bypass_reason_tls; /* bypassed because the TLS handshake ended */
	uint8_t ndpi_wanted;     /* feed nDPI this flow's packets */
	uint8_t content_checked; /* first bytes compared with SMTP */
	uint8_t content_not_smtp;/* on a mail port, but the bytes are not SMTP */
	struct classify_state *cls;
	struct classify_result cls_res;
	uint8_t *dns_buf;        /* DNS over TCP: one message being assembled */
	uint32_t dns_len;
};

/* DNS messages (from UDP or TCP port 53 responses) go here. */
typedef void (*session_dns_fn)(void *ctx, const struct flow *f, const uint8_t *msg, size_t len,
			       uint64_t ts_ns);

struct session_stats {
	uint64_t sessions[5];     /* by kind at close */
	uint64_t tls_bypassed;    /* flows bypassed after the handshake */
	uint64_t other_bypassed;  /* non-mail flows bypassed at their first byte */
	uint64_t results_lost;    /* finished sessions a worker could not hand on (no memory) */
};

/* The callback may keep s->smtp and s->tls beyond the call by taking them
 * (setting the fields to NULL); the engine frees whatever is left. */
typedef void (*session_emit_fn)(void *ctx, const struct flow *f, struct session *s);

struct session_engine;

/* Returns NULL on failure. `emit` receives every finished flow's session. */
struct session_engine *session_engine_new(enum session_ndpi_mode mode, session_emit_fn emit,
					  void *emit_ctx);
void session_engine_free(struct session_engine *e);

void session_engine_set_dns(struct session_engine *e, session_dns_fn fn, void *ctx);

/* The flow_consumer that feeds this engine. */
struct flow_consumer session_engine_consumer(struct session_engine *e);

const struct session_stats *session_engine_stats(const struct session_engine *e);
void session_stats_add(struct session_stats *sum, const struct session_stats *x);

/* True for sessions worth a record: SMTP, SMTPS, anything on a mail port
 * or that nDPI calls mail. */
int session_is_mail(const struct flow *f, const struct session *s);

#endif
