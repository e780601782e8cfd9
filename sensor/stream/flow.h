/*
 * flow.h - the flow table: bidirectional TCP 5-tuples with their reassembly
 * state, bounded in count and memory, aged out by capture time.
 * The capture loop feeds decoded packets in; a flow_consumer (the decoders,
 * or a test) receives open, in-order data, gap and close events per flow.
 * Direction 0 is always client->server, 1 server->client.
 */
#ifndef MXW_FLOW_H
#define MXW_FLOW_H

#include <stdint.h>

#include "capture/packet.h"
#include "stream/reasm.h"

enum flow_dir {
	FLOW_TO_SERVER = 0,
	FLOW_TO_CLIENT = 1
};

enum flow_end {
	FLOW_END_NONE = 0,
	FLOW_END_FIN, /* both sides closed */
	FLOW_END_RST,
	FLOW_END_TIMEOUT, /* idle longer than the timeout */
	FLOW_END_EVICTED, /* pushed out by the flow or memory cap */
	FLOW_END_REUSED,  /* a new SYN on the same 5-tuple */
	FLOW_END_EOF,     /* still open when the input ended */
	FLOW_END_COUNT
};

const char *flow_end_name(enum flow_end e);

enum flow_state {
	FLOW_EMBRYONIC = 0,
	FLOW_ESTABLISHED,
	FLOW_CLOSED
};

/* Per-flow anomaly: one record per (kind, direction), counting repeats. */
struct flow_anomaly {
	uint8_t kind; /* enum reasm_anomaly */
	uint8_t dir;
	uint32_t count;
	uint64_t bytes;
};

struct flow_key {
	uint8_t addr[2][16]; /* [0] client, [1] server */
	uint16_t port[2];
	uint8_t family;
};

struct flow_table;

struct flow {
	struct flow *hnext;
	struct flow *older, *newer; /* age list: oldest at the table's tail */
	struct flow_table *table;
	uint64_t hash;
	struct flow_key key;
	char id[17]; /* hex, stable for the same flow across runs */
	uint64_t ts_first, ts_last;
	uint64_t age_seq; /* sequence number of the last packet seen (age order) */
	uint64_t age_ns;  /* the capture clock at that packet */
	uint64_t packets[2];
	uint64_t wire_bytes[2]; /* payload bytes as sent, retransmissions included */
	struct reasm_dir dir[2];
	uint8_t state;     /* enum flow_state */
	uint8_t age_class; /* the table's age list it is on */
	uint16_t file_index; /* offline: the file of its first packet (packet.h) */
	uint8_t end;       /* enum flow_end */
	uint8_t midstream; /* no SYN seen: capture began inside the session */
	uint8_t rst_seen;
	uint8_t n_anomalies;
	uint8_t anomaly_room;
	struct flow_anomaly *anomalies; /* made at the first: most flows have none */
	/* Payload that came on a SYN, held until the peer's ACK shows whether
	 * its stack took it (TCP Fast Open) or dropped it, as stacks do. */
	uint8_t *syn_data[2];
	uint16_t syn_data_len[2];
	void *app; /* the consumer's per-flow state */
};

struct flow_consumer {
	void *ctx;
	void (*open)(void *ctx, struct flow *f);
	/* Every packet of the flow, before reassembly (for classifiers). */
	void (*packet)(void *ctx, struct flow *f, int dir, const struct packet *p);
	void (*data)(void *ctx, struct flow *f, int dir, const uint8_t *p, size_t n);
	void (*gap)(void *ctx, struct flow *f, int dir, uint32_t n);
	/* Last call for a flow: f->end says why; free f->app here. */
	void (*close)(void *ctx, struct flow *f);
};

struct flow_config {
	uint32_t max_flows;
	uint64_t reasm_budget;
	uint32_t timeout_established;
	uint32_t timeout_embryonic;
	uint32_t timeout_closed;
	/* Key of the lookup hash. Unset: a random one per table. Tables fed by
	 * one dispatcher share its key, so the hash it computed to pick the
	 * table is the one the table looks up with. */
	uint8_t hash_key[16];
	uint8_t hash_key_set;
};

struct flow_stats {
	uint64_t packets_tcp;
	uint64_t packets_ignored; /* TCP without a flow to join (stray ACK/RST/FIN) */
	uint64_t flows_created;
	uint64_t flows_active;
	uint64_t flows_peak;
	uint64_t ended[FLOW_END_COUNT];
	uint64_t evicted_for_memory;
	/* evictions (cap or memory) by what was given up: closed, half-open,
	 * bypassed, live sessions */
	uint64_t evicted_by_class[4];
	uint64_t segments_dropped; /* refused by the reassembly budget */
	uint64_t bytes_dropped;
	uint64_t gap_bytes;
	uint64_t overlap_conflicts;
	uint64_t clock_jumps;    /* capture time went back: every flow ended */
	uint64_t clock_outliers; /* packets whose time was far from their neighbours' */
	uint64_t rst_ignored; /* RSTs far outside the stream's sequence space */
};

void flow_config_defaults(struct flow_config *cfg);
/* One of `n` tables' share of the caps (at least one flow each). */
struct flow_config flow_config_share(const struct flow_config *cfg, int n);

/* The capture clock: the newest packet time seen. Flows age on its ticks
 * (every FLOW_TICK_NS of capture time), not on every packet, so that an
 * offline dispatcher running one clock for several tables makes each of
 * them age its flows at the very packets a single table would. */
struct flow_clock {
	uint64_t now_ns;    /* newest of packet times and wall-clock ticks */
	uint64_t packet_ns; /* newest packet time */
	uint64_t next_tick_ns;
	/* One packet cannot move the clock far (an attacker can stamp one):
	 * a time far from packet_ns is a candidate epoch, taken only once
	 * FLOW_CLOCK_CONFIRM packets in a row agree with it. */
	uint64_t cand_ns;
	uint64_t cand_seq; /* the packet that began the run */
	uint32_t cand_count;
	uint8_t cand_ahead; /* the candidate lies ahead (else behind) */
	uint64_t outliers;  /* packets whose time no neighbour confirmed */
};

#define FLOW_CLOCK_CONFIRM 8 /* far-off packets in a row that make a new epoch */

enum flow_clock_step {
	FLOW_CLOCK_SAME = 0,
	FLOW_CLOCK_TICK,    /* age flows now */
	FLOW_CLOCK_JUMP,    /* time went back for good (an older capture): end every flow */
	FLOW_CLOCK_OUTLIER, /* far behind its neighbours: handle it at the clock's time */
	FLOW_CLOCK_AHEAD,   /* far ahead, not yet confirmed: its own time, the clock stays */
	FLOW_CLOCK_EPOCH,   /* a run of packets far ahead confirmed: the clock moved there */
};

/* Steps the clock for a TCP packet (its time, and whether it starts a file,
 * where time may go back at once). */
enum flow_clock_step flow_clock_advance(struct flow_clock *c, const struct packet *p, uint64_t seq);

/* An outlier (FLOW_CLOCK_OUTLIER) is handled at the clock's time and
 * marked, which leaves an anomaly on its flow. */
void flow_packet_outlier(struct packet *p, uint64_t clock_ns);

/* Returns NULL on allocation failure. The consumer is copied. */
struct flow_table *flow_table_new(const struct flow_config *cfg, const struct flow_consumer *c);

/* Feeds one decoded TCP packet; ages out idle flows first. */
void flow_table_packet(struct flow_table *t, const struct packet *p);

/* The same for a dispatcher that runs the clock itself: the step its clock
 * took at packet number `seq` (flows age or end), then that packet. */
void flow_table_step(struct flow_table *t, uint64_t seq, uint64_t now_ns,
		     enum flow_clock_step step, uint64_t epoch_seq);
void flow_table_packet_at(struct flow_table *t, const struct packet *p, uint64_t seq,
			  uint64_t now_ns, uint64_t hash);

/* Symmetric keyed hash of a packet's 5-tuple: both directions agree. With
 * the table's cfg.hash_key, the `hash` of flow_table_packet_at(). */
uint64_t flow_tuple_hash(const uint8_t key[16], const struct packet *p);

/* Advances the clock without a packet (live capture on a quiet link) and
 * ends the flows that have been idle too long. */
void flow_table_tick(struct flow_table *t, uint64_t now_ns);

/* Ends every flow (FLOW_END_EOF), delivering queued data first. */
void flow_table_flush(struct flow_table *t);

const struct flow_stats *flow_table_stats(const struct flow_table *t);
/* Adds the counters of several tables (peaks add up: an upper bound). */
void flow_stats_add(struct flow_stats *sum, const struct flow_stats *x);
void reasm_budget_add(struct reasm_budget *sum, const struct reasm_budget *x);
const struct reasm_budget *flow_table_budget(const struct flow_table *t);

/* Flushes nothing: call flow_table_flush() first to see every flow closed. */
void flow_table_free(struct flow_table *t);

/* The consumer wants no more bytes in this direction (e.g. after a TLS
 * handshake): buffers are freed, only byte counts continue. */
void flow_bypass(struct flow *f, int dir);

/* Stream bytes seen in a direction (delivered plus bypassed). */
/* Any byte of payload either way, delivered or lost to a gap. */
int flow_carried_payload(const struct flow *f);
uint64_t flow_stream_bytes(const struct flow *f, int dir);

/* Formats an address of the flow ("192.0.2.1", "2001:db8::1"). */
void flow_addr_str(const struct flow *f, int side, char *buf, size_t len);

#endif
