/*
 * record.h - the session record: the facts of one finished flow, plain and
 * owned. It is the one thing that crosses from the decoders to rules/ and
 * the sinks, and between threads. The session engine (sensor/run) fills it
 * when a flow ends; rules/ judge it; sinks only format it. Nothing in it
 * points into the flow table or the decoders' working state.
 */
#ifndef MXW_RECORD_H
#define MXW_RECORD_H

#include <stdint.h>

#include "decoder/classify.h"
#include "decoder/smtp.h"
#include "decoder/tls.h"
#include "decoder/x509.h"

enum session_kind {
	SESSION_UNDECIDED = 0,
	SESSION_SMTP,  /* SMTP, maybe upgraded with STARTTLS */
	SESSION_SMTPS, /* implicit TLS (port 465) */
	SESSION_OTHER, /* not mail: bypassed */
	SESSION_DNS,   /* DNS over TCP: answers go to the passive DNS hook */
	SESSION_KIND_COUNT
};

enum session_reason { /* why the flow was taken as SMTP */
	SESSION_BY_NONE = 0,
	SESSION_BY_PORT,
	SESSION_BY_CONTENT,
};

/* Which layer reported an anomaly: stream anomalies count bytes, TLS ones
 * only occurrences. */
enum record_layer {
	RECORD_LAYER_STREAM = 0,
	RECORD_LAYER_SMTP,
	RECORD_LAYER_TLS
};

struct record_anomaly {
	const char *kind; /* static name from the reporting module's table */
	uint8_t layer;    /* enum record_layer */
	uint8_t dir;      /* 0 client, 1 server */
	uint32_t count;
	uint64_t bytes;
};

#define RECORD_MAX_ANOMALIES 64

struct session_record {
	char id[17];                /* hex, stable for the same flow across runs */
	char community_id[32];      /* Community ID v1 of the 5-tuple (util/community_id.h) */
	uint16_t file_index;        /* offline: the capture file of its first packet, from 1 */
	const char *pcap;           /* that file's name, set by the writer; NULL live */
	const char *sensor;         /* the sensor's name (--sensor), set by the writer */
	uint64_t ts_first, ts_last; /* capture time, ns */
	uint8_t family;             /* 4 or 6 */
	char ip[2][46];             /* [0] client, [1] server, printable */
	uint16_t port[2];
	uint64_t packets[2];
	uint64_t stream_bytes[2];    /* delivered plus bypassed */
	const char *end;             /* why the flow ended (static name) */
	uint8_t open_at_end;         /* still open when the input ended */
	uint8_t midstream;           /* no SYN seen: capture began inside the session */
	uint8_t kind;                /* enum session_kind */
	uint8_t reason;              /* enum session_reason */
	uint8_t content_not_smtp;    /* on a mail port, but the bytes are not SMTP */
	uint8_t tls_used;            /* the client's bytes went to the TLS walker */
	struct classify_result ndpi; /* ndpi.done == 0: not classified */
	struct smtp_facts *smtp;     /* owned; NULL without SMTP */
	struct tls_facts *tls;       /* owned, certificate DER included; NULL without TLS */
	/* tls->n_certs descriptions of tls->certs, shared through the
	 * certificate cache; a NULL entry when memory ran out */
	const struct x509_info **certs;
	uint8_t n_cert_infos; /* entries in certs, to release */
	uint8_t n_anomalies; /* stream ones first, then SMTP, then TLS */
	uint8_t anomaly_room;
	struct record_anomaly *anomalies; /* owned; grown as they come */
};

/* A zeroed record; NULL when out of memory. */
struct session_record *record_new(void);
/* Frees the record and everything it owns; NULL is a no-op. */
void record_free(struct session_record *r);

/* Appends an anomaly (silently dropped past RECORD_MAX_ANOMALIES). */
void record_add_anomaly(struct session_record *r, enum record_layer layer, const char *kind,
			int dir, uint32_t count, uint64_t bytes);

/* Takes the decoders' facts: SMTP and TLS facts and their anomalies, and a
 * description of each certificate (parsed once, here, for every reader). */
void record_take_smtp(struct session_record *r, struct smtp_facts *smtp);
void record_take_tls(struct session_record *r, struct tls_facts *tls);
/* Describes r->tls's chain again (after a key log revealed it). */
void record_describe_certs(struct session_record *r);

/* Up to TLS 1.2 the server's flight is in the clear: a chain it sent was
 * seen, and an empty list means it sent none (anonymous suites). Returns
 * NULL when the chain is observable, else the reason it is not. */
const char *record_certs_unobservable(const struct session_record *r);

const char *session_kind_name(enum session_kind k);

#endif
