/*
 * reasm.h - TCP reassembly of one direction of one flow into in-order bytes.
 * The flow table owns a struct reasm_dir per direction and feeds it segments;
 * in-order bytes, gaps and anomalies come out through a struct reasm_sink.
 * Out-of-order data is held in a bounded queue charged to a shared budget;
 * the first copy of any byte wins and a later copy with other bytes is
 * reported as an overlap conflict.
 */
#ifndef MXW_REASM_H
#define MXW_REASM_H

#include <stddef.h>
#include <stdint.h>

/* One allocator budget shared by every flow's reassembly buffers. */
struct reasm_budget {
	uint64_t limit;
	uint64_t used;
	uint64_t over_limit; /* allocations refused because of the limit */
	uint64_t oom;        /* allocations refused by malloc */
};

enum reasm_anomaly {
	REASM_AN_GAP = 0,          /* bytes never seen: capture loss */
	REASM_AN_OVERLAP_CONFLICT, /* retransmitted bytes differ from the first copy */
	REASM_AN_OUT_OF_WINDOW,    /* sequence number far from anything plausible */
	REASM_AN_QUEUE_FULL,       /* out-of-order queue at its cap: skipped ahead */
	REASM_AN_BUDGET_DROP,      /* segment dropped: global budget exhausted */
	REASM_AN_DATA_AFTER_FIN,   /* payload beyond the FIN sequence number */
	REASM_AN_TS_OUTLIER,       /* a packet stamped far from its neighbours */
	REASM_AN_SYN_DATA,         /* payload on a SYN the peer did not acknowledge */
	REASM_AN_EVICTED,          /* a live session pushed out by the flow or memory cap */
	REASM_AN_COUNT
};

const char *reasm_anomaly_name(enum reasm_anomaly a);

struct reasm_sink {
	void *ctx;
	void (*data)(void *ctx, int dir, const uint8_t *p, size_t n);
	void (*gap)(void *ctx, int dir, uint32_t n);
	void (*anomaly)(void *ctx, int dir, enum reasm_anomaly kind, uint32_t bytes);
};

struct reasm_seg;

struct reasm_dir {
	uint32_t next_seq; /* next byte expected in order */
	uint32_t isn;
	uint32_t fin_seq;   /* sequence number the FIN occupies */
	uint32_t ack_hi;    /* highest ACK the peer sent for this direction */
	uint8_t base_known; /* next_seq is valid */
	uint8_t syn_seen;
	uint8_t fin_seen;
	uint8_t ack_known;
	uint8_t bypass;          /* consumer wants no more bytes */
	uint8_t done;            /* FIN reached in order, or flushed */
	struct reasm_seg *queue; /* sorted by seq, pieces never overlap */
	uint32_t queued_bytes;
	uint32_t queued_segs;
	uint8_t *hist;       /* ring of the last delivered bytes, lazily allocated */
	uint32_t hist_cap;   /* its size: grows with the largest segment delivered */
	uint32_t hist_len;   /* valid bytes in hist */
	uint32_t hist_pos;   /* ring index one past the newest byte */
	uint32_t bypass_seq; /* next_seq when bypass began */
	uint32_t bypass_hi;  /* highest sequence end seen since bypass */
	uint64_t delivered;  /* bytes handed to the sink */
	uint64_t gap_bytes;
	uint64_t retrans_bytes;
};

enum reasm_result {
	REASM_OK = 0,
	REASM_OVER_BUDGET = 1, /* nothing done: caller may free memory and retry */
};

/* Records the SYN (or SYN+ACK) initial sequence number. */
void reasm_syn(struct reasm_dir *d, uint32_t isn);

/* Feeds one segment's payload (may be empty for a bare FIN). */
enum reasm_result reasm_segment(struct reasm_dir *d, const struct reasm_sink *s, int dir,
				uint32_t seq, int fin, const uint8_t *data, uint32_t len,
				struct reasm_budget *b);

/* Accounts a segment the caller gave up on after REASM_OVER_BUDGET. */
void reasm_drop(struct reasm_dir *d, const struct reasm_sink *s, int dir, uint32_t len);

/* The peer acknowledged up to `ack`: holes below it are capture loss. */
void reasm_ack(struct reasm_dir *d, const struct reasm_sink *s, int dir, uint32_t ack);

/* Frees the history ring once nothing a retransmission could change is
 * left in the receiver: the FIN was reached in order and acknowledged, or
 * (`reset`) the connection is gone. A closed flow lingering for late
 * packets then keeps only its counters. */
void reasm_settle(struct reasm_dir *d, int reset, struct reasm_budget *b);

/* End of flow: hands over whatever is queued, with gaps for the holes. */
void reasm_flush(struct reasm_dir *d, const struct reasm_sink *s, int dir, struct reasm_budget *b);

/* Stops buffering; later segments only advance the byte count. */
void reasm_bypass(struct reasm_dir *d, struct reasm_budget *b);

/* Bytes of the stream seen so far, delivered or bypassed. */
uint64_t reasm_stream_bytes(const struct reasm_dir *d);

/* Releases every buffer; the struct may be reused after reasm_init(). */
void reasm_free(struct reasm_dir *d, struct reasm_budget *b);
void reasm_init(struct reasm_dir *d);

#endif
