/*
 * dispatch.h - offline analysis on several cores. The reading thread
 * numbers packets, runs the capture clock and hands each packet, in
 * batches, to the worker that owns its flow (a symmetric keyed hash of the
 * 5-tuple, so both directions meet in one worker); clock steps go to every
 * worker. Each worker runs one shard; between batches the reading thread
 * merges the shards' results back into capture order for the result stage,
 * so the output is the same as with one worker.
 */
#ifndef MXW_DISPATCH_H
#define MXW_DISPATCH_H

#include "run/shard.h"

struct dispatch;

/* Starts `n` workers; `fn` is called for every result, from the thread that
 * calls dispatch_packet() and dispatch_finish().
 * `dns`: pass DNS responses on; `all_flows`: a record of every flow. NULL on
 * failure. */
struct dispatch *dispatch_new(int n, enum session_ndpi_mode ndpi, const struct flow_config *cfg,
			      int dns, int all_flows, shard_event_fn fn, void *ctx);
/* From the reading thread, in capture order. */
void dispatch_packet(struct dispatch *d, const struct packet *p);
/* End of input: every flow ends, every result is handed over, the threads
 * are joined. */
void dispatch_finish(struct dispatch *d);
/* Counters of all workers together (after dispatch_finish). */
void dispatch_stats(const struct dispatch *d, struct flow_stats *fs, struct session_stats *ss,
		    struct reasm_budget *b);
void dispatch_free(struct dispatch *d);

#endif
