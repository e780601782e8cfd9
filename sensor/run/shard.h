/*
 * shard.h - the decode half of the pipeline when it runs on several
 * threads. A shard is one flow table with its session decoders, driven by
 * one worker thread; what it finishes (sessions, DNS messages) becomes
 * events in its outbox, and the single result writer (rules, sinks,
 * database) takes them from every shard through the hub.
 *
 * Offline, each event carries the capture position that produced it: the
 * packet number, whether it came from the clock (ageing, end of input) or
 * from the packet itself, and the flow's place in age order. Those keys are
 * the same however flows are split across shards, so the writer's merge
 * puts events in exactly the order one flow table would emit them.
 */
#ifndef MXW_SHARD_H
#define MXW_SHARD_H

#include <stdint.h>
#include <time.h>

#include "run/session.h"
#include "stream/flow.h"

enum shard_event_kind {
	SHARD_EV_SESSION = 0,
	SHARD_EV_DNS,      /* a DNS response (UDP payload or one TCP message) */
	SHARD_EV_PROGRESS, /* no later event of this shard sorts before `seq` */
	SHARD_EV_END,      /* the shard is finished */
};

/* Order within one packet number: progress marks first, then what the
 * clock ended, then what the packet itself produced. */
enum shard_phase {
	SHARD_PH_PROGRESS = 0,
	SHARD_PH_CLOCK,
	SHARD_PH_PACKET,
	SHARD_PH_END
};

struct shard_event {
	struct shard_event *next;
	uint64_t seq; /* order key: seq, phase, k1, k2, k3 */
	uint64_t k2;
	uint64_t k3;
	uint8_t phase;
	uint8_t k1;
	uint8_t kind;
	/* SHARD_EV_SESSION: freed with the event */
	struct session_record *record;
	/* SHARD_EV_DNS */
	uint8_t family;
	uint8_t src[16]; /* the answering resolver */
	uint64_t ts_ns;
	uint32_t len;
	uint8_t *msg; /* stored after the event */
	/* live: the packet (or clock) time it was made at, and when the writer
	 * took it (monotonic ms), for the hold-back that orders workers */
	uint64_t when_ns;
	uint64_t taken_ms;
};

struct shard_hub;
struct shard;

/* `ordered`: offline, merge by capture position; otherwise (live) events
 * are handled in the order of the packet times they were made at, each
 * held back SHARD_LIVE_HOLD_MS after the writer takes it (with several
 * workers): rules that relate sessions (a plaintext retry after a failed
 * handshake, the server's history) see them in the order they happened,
 * not in the order the workers happened to hand them on. */
#define SHARD_LIVE_HOLD_MS 500
struct shard_hub *shard_hub_new(int n_shards, int ordered);
void shard_hub_free(struct shard_hub *h);

/* Returns NULL on allocation failure. `dns` asks for DNS events,
 * `all_flows` for a record of every flow (see session_engine_new). */
struct shard *shard_new(struct shard_hub *h, int index, enum session_ndpi_mode ndpi,
			const struct flow_config *cfg, int dns, int all_flows);
void shard_free(struct shard *s);

/* Offline, driven by a dispatcher that owns the clock and numbers packets. */
/* `epoch_seq`: with FLOW_CLOCK_EPOCH, the packet that began the run. */
void shard_step(struct shard *s, uint64_t seq, uint64_t now_ns, enum flow_clock_step step,
		uint64_t epoch_seq);
/* `hash`: flow_tuple_hash() with the key the shard's table was given. */
void shard_packet_at(struct shard *s, const struct packet *p, uint64_t seq, uint64_t now_ns,
		     uint64_t hash);
/* Everything for this shard before packet `seq` has been given to it. */
void shard_progress(struct shard *s, uint64_t seq);

/* Live: the shard's own clock. */
void shard_packet(struct shard *s, const struct packet *p);
void shard_tick(struct shard *s, uint64_t now_ns);

/* Ends every flow (end of input), then marks the shard finished. */
void shard_finish(struct shard *s);
/* Hands the events made so far to the writer; blocks while the writer is
 * far behind, so memory stays bounded. */
void shard_publish(struct shard *s);

/* The handler may take a session's record (setting ev->record to NULL). */
typedef void (*shard_event_fn)(void *ctx, struct shard_event *ev);

/* Makes the shard's own thread the writer: the only shard of an ordered
 * hub hands its results, already in order, to `fn` as it publishes them. */
void shard_write_own(struct shard *s, shard_event_fn fn, void *ctx);

/* Counters of `n` shards together. */
void shard_stats_sum(struct shard *const *shards, int n, struct flow_stats *fs,
		     struct session_stats *ss, struct reasm_budget *b);

/* The absolute time `ms` from now, for timed waits. */
void deadline_after_ms(struct timespec *ts, int ms);

/* The writer's side: handles events until every shard has finished
 * (returns 1), or, for a live hub, until `wait_ms` passes with nothing to
 * do (returns 0). Events are freed after `fn`, with what they own. */
int shard_hub_drain(struct shard_hub *h, shard_event_fn fn, void *ctx, int wait_ms);
/* Offline (ordered hub), from a thread that has other work: handles what
 * can go out now and returns without waiting; 1 once every shard has
 * finished. */
int shard_hub_drain_ready(struct shard_hub *h, shard_event_fn fn, void *ctx);

#endif
