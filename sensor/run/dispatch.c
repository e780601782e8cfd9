/*
 * dispatch.c - the reader and worker threads of offline analysis. With one
 * worker, the worker also writes (its results need no merge): reading runs
 * beside decoding and writing. With several, the reading thread is the
 * writer: between batches it hands on what the merge can release, so no
 * thread of its own competes for a core with the workers, and it never
 * waits for the merge while the workers have input.
 */
#include "run/dispatch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define BATCH_ITEMS   1024
/* Room for the largest frame libpcap hands over (262144 bytes) and more. */
#define BATCH_BYTES   (320u << 10)
#define QUEUE_BATCHES 8
/* A worker that has had nothing for this many packets is told how far the
 * reader got, so the writer's merge need not wait for it. */
#define STALE_PACKETS 4096

enum item_kind {
	ITEM_PACKET = 0,
	ITEM_STEP
};

struct item {
	uint64_t seq;
	uint64_t now_ns;
	uint64_t hash; /* the packet's flow hash, with the tables' shared key */
	uint8_t kind;
	uint8_t step;
	struct packet pkt; /* pointers into the batch's data */
};

struct batch {
	struct batch *next;
	uint32_t n;
	uint32_t used;
	uint64_t through; /* every item for this worker up to this packet is in */
	int finish;
	struct item items[BATCH_ITEMS];
	uint8_t data[BATCH_BYTES];
};

struct worker {
	struct dispatch *d;
	pthread_t thread;
	int started;
	struct shard *shard;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct batch *queue[QUEUE_BATCHES];
	unsigned head, count;
	struct batch *pending; /* being filled by the reader */
	uint64_t last_through;
	int finished; /* has its last batch */
	/* start-up: the worker makes its own shard, so that what it writes
	 * all the time lies in its own memory, not beside the reader's */
	int index, ready; /* ready: 1 made, -1 failed */
	const struct flow_config *cfg;
};

struct dispatch {
	int n;
	int worker_writes; /* one shard: its thread is the writer, not the reader */
	struct shard_hub *hub;
	struct worker *w;
	struct shard **shards; /* w[i].shard, for the counters */
	shard_event_fn fn;
	void *ctx;
	struct flow_clock clock;
	uint64_t seq;
	uint64_t clock_jumps;
	uint8_t key[16];
	pthread_mutex_t pool_mu;
	struct batch *pool;
	int dns, all_flows;
	enum session_ndpi_mode ndpi;
	pthread_cond_t ready_cond; /* with pool_mu */
};

static struct batch *batch_get(struct dispatch *d)
{
	pthread_mutex_lock(&d->pool_mu);
	struct batch *b = d->pool;
	if (b)
		d->pool = b->next;
	pthread_mutex_unlock(&d->pool_mu);
	/* Bounded: at most QUEUE_BATCHES + 2 per worker ever exist. Without
	 * one the reader cannot go on, so it waits for memory. */
	while (!b && !(b = malloc(sizeof(*b)))) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	b->n = 0;
	b->used = 0;
	b->finish = 0;
	b->next = NULL;
	return b;
}

static void batch_put(struct dispatch *d, struct batch *b)
{
	pthread_mutex_lock(&d->pool_mu);
	b->next = d->pool;
	d->pool = b;
	pthread_mutex_unlock(&d->pool_mu);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct dispatch *d = w->d;
	struct shard *sh = shard_new(d->hub, w->index, d->ndpi, w->cfg, d->dns, d->all_flows);
	/* One shard needs no merge: its results are in order as made, and
	 * its thread writes them, so reading and the rest run side by side. */
	if (sh && d->worker_writes)
		shard_write_own(sh, d->fn, d->ctx);
	pthread_mutex_lock(&d->pool_mu);
	w->shard = d->shards[w->index] = sh;
	w->ready = sh ? 1 : -1;
	pthread_cond_broadcast(&d->ready_cond);
	pthread_mutex_unlock(&d->pool_mu);
	if (!sh)
		return NULL;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		while (!w->count)
			pthread_cond_wait(&w->cond, &w->mu);
		struct batch *b = w->queue[w->head];
		w->head = (w->head + 1) % QUEUE_BATCHES;
		w->count--;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->mu);

		for (uint32_t i = 0; i < b->n; i++) {
			struct item *it = &b->items[i];
			if (it->kind == ITEM_STEP)
				shard_step(w->shard, it->seq, it->now_ns,
					   (enum flow_clock_step)it->step, it->hash);
			else
				shard_packet_at(w->shard, &it->pkt, it->seq, it->now_ns, it->hash);
		}
		int finish = b->finish;
		if (finish)
			shard_finish(w->shard);
		else {
			shard_progress(w->shard, b->through + 1);
			shard_publish(w->shard);
		}
		batch_put(w->d, b);
		if (finish)
			return NULL;
	}
}

static int queue_try_push(struct worker *w, struct batch *b)
{
	pthread_mutex_lock(&w->mu);
	int ok = w->count < QUEUE_BATCHES;
	if (ok) {
		w->queue[(w->head + w->count) % QUEUE_BATCHES] = b;
		w->count++;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->mu);
	return ok;
}

/* Tells a worker how far the reader got: its pending batch, or an empty
 * one as a progress mark. Never waits; 0 when the worker's queue is full. */
static int try_send_pending(struct dispatch *d, struct worker *w)
{
	struct batch *b = w->pending ? w->pending : batch_get(d);
	b->through = d->seq - 1; /* packet d->seq may still be on its way */
	if (!queue_try_push(w, b)) {
		if (b != w->pending)
			batch_put(d, b);
		return 0;
	}
	w->pending = NULL;
	w->last_through = b->through;
	return 1;
}

/* Every other worker that has not heard how far the reader is for
 * `older_than` packets; with `all`, also any with a batch being filled. */
static void mark_others(struct dispatch *d, const struct worker *w, uint64_t older_than, int all)
{
	for (int j = 0; j < d->n; j++) {
		struct worker *o = &d->w[j];
		if (o != w && !o->finished &&
		    ((all && o->pending) || o->last_through + older_than < d->seq))
			try_send_pending(d, o);
	}
}

/* Hands `b` to `w`, waiting while its queue is full. While it waits, the
 * other workers are told again and again how far the reader is: the
 * writer's merge may be waiting on one of them, which may only now have
 * room, while `w` itself waits for the writer. */
static void queue_push(struct dispatch *d, struct worker *w, struct batch *b)
{
	while (!queue_try_push(w, b)) {
		mark_others(d, w, 1, 1);
		/* The worker may be waiting for its results to be taken. */
		if (!d->worker_writes)
			shard_hub_drain_ready(d->hub, d->fn, d->ctx);
		struct timespec until;
		deadline_after_ms(&until, 5);
		pthread_mutex_lock(&w->mu);
		if (w->count == QUEUE_BATCHES)
			pthread_cond_timedwait(&w->cond, &w->mu, &until);
		pthread_mutex_unlock(&w->mu);
	}
}

static void send_full(struct dispatch *d, struct worker *w)
{
	struct batch *b = w->pending;
	w->pending = NULL;
	b->through = d->seq - 1;
	w->last_through = b->through;
	queue_push(d, w, b);
	/* Workers that had nothing for a while learn how far the reader is,
	 * so the merge need not wait for them. Others' half-filled batches
	 * stay: sent early, they would only mean more hand-overs and wake-ups. */
	mark_others(d, w, STALE_PACKETS, 0);
	if (!d->worker_writes)
		shard_hub_drain_ready(d->hub, d->fn, d->ctx);
}

static struct item *item_slot(struct dispatch *d, struct worker *w, uint32_t bytes)
{
	if (w->pending && (w->pending->n == BATCH_ITEMS || w->pending->used + bytes > BATCH_BYTES))
		send_full(d, w);
	if (!w->pending)
		w->pending = batch_get(d);
	return &w->pending->items[w->pending->n++];
}

void dispatch_packet(struct dispatch *d, const struct packet *p)
{
	enum flow_clock_step step = FLOW_CLOCK_SAME;
	d->seq++;
	if (p->ip_proto == 6) {
		step = flow_clock_advance(&d->clock, p, d->seq);
		if (step == FLOW_CLOCK_JUMP)
			d->clock_jumps++;
		if (step == FLOW_CLOCK_JUMP || step == FLOW_CLOCK_TICK || step == FLOW_CLOCK_EPOCH)
			for (int i = 0; i < d->n; i++) {
				struct item *it = item_slot(d, &d->w[i], 0);
				it->kind = ITEM_STEP;
				it->step = (uint8_t)step;
				it->seq = d->seq;
				it->now_ns = d->clock.now_ns;
				it->hash = d->clock.cand_seq; /* a step has no flow: the epoch's start */
			}
	} else if (!d->dns || p->ip_proto != 17 || p->sport != 53) {
		return;
	}
	uint64_t hash = flow_tuple_hash(d->key, p);
	struct worker *w = &d->w[hash % (uint64_t)d->n];
	/* The frame buffer is reused by the reader: keep the IP packet, which
	 * holds the payload too. libpcap hands over no frame larger than a
	 * batch; were one to come, its tail is cut as a short snaplen would. */
	uint32_t keep = p->l3_len <= BATCH_BYTES ? p->l3_len : BATCH_BYTES;
	struct item *it = item_slot(d, w, keep);
	struct batch *b = w->pending;
	it->kind = ITEM_PACKET;
	it->hash = hash;
	it->seq = d->seq;
	it->now_ns = d->clock.now_ns;
	it->pkt = *p;
	if (step == FLOW_CLOCK_OUTLIER)
		flow_packet_outlier(&it->pkt, d->clock.packet_ns);
	uint8_t *copy = b->data + b->used;
	if (keep)
		memcpy(copy, p->l3, keep);
	b->used += keep;
	size_t at = p->payload_len ? (size_t)(p->payload - p->l3) : 0;
	it->pkt.l3 = copy;
	it->pkt.l3_len = keep;
	it->pkt.payload = copy + (at < keep ? at : keep);
	if (at + p->payload_len > keep)
		it->pkt.payload_len = at < keep ? (uint32_t)(keep - at) : 0;
}

struct dispatch *dispatch_new(int n, enum session_ndpi_mode ndpi, const struct flow_config *cfg,
			      int dns, int all_flows, shard_event_fn fn, void *ctx)
{
	struct dispatch *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->n = n;
	d->fn = fn;
	d->ctx = ctx;
	d->dns = dns;
	pthread_mutex_init(&d->pool_mu, NULL);
	pthread_cond_init(&d->ready_cond, NULL);
	if (getrandom(d->key, sizeof(d->key), 0) != (ssize_t)sizeof(d->key))
		memcpy(d->key, "mxwatch-dispatch", 16); /* balance only, not secrecy */
	d->hub = shard_hub_new(n, 1);
	d->w = calloc((size_t)n, sizeof(*d->w));
	d->shards = calloc((size_t)n, sizeof(*d->shards));
	if (!d->hub || !d->w || !d->shards)
		goto fail;
	/* Each worker gets its share of the caps, and the dispatch key: the
	 * hash that picks a packet's worker is the one its table looks up. */
	struct flow_config c = flow_config_share(cfg, n);
	memcpy(c.hash_key, d->key, sizeof(c.hash_key));
	c.hash_key_set = 1;
	d->worker_writes = n == 1;
	d->ndpi = ndpi;
	d->all_flows = all_flows;
	for (int i = 0; i < n; i++) {
		struct worker *w = &d->w[i];
		w->d = d;
		w->index = i;
		w->cfg = &c;
		pthread_mutex_init(&w->mu, NULL);
		pthread_cond_init(&w->cond, NULL);
	}
	for (int i = 0; i < n; i++) {
		if (pthread_create(&d->w[i].thread, NULL, worker_main, &d->w[i]) != 0)
			goto fail;
		d->w[i].started = 1;
	}
	int failed = 0;
	pthread_mutex_lock(&d->pool_mu);
	for (int i = 0; i < n; i++) {
		while (!d->w[i].ready)
			pthread_cond_wait(&d->ready_cond, &d->pool_mu);
		failed |= d->w[i].ready < 0;
	}
	pthread_mutex_unlock(&d->pool_mu);
	if (failed)
		goto fail;
	return d;
fail:
	dispatch_finish(d);
	dispatch_free(d);
	return NULL;
}

void dispatch_finish(struct dispatch *d)
{
	if (!d || !d->w)
		return;
	int all = 1;
	/* A started worker says whether it made its shard; wait for that. */
	pthread_mutex_lock(&d->pool_mu);
	for (int i = 0; i < d->n; i++)
		while (d->w[i].started && !d->w[i].ready)
			pthread_cond_wait(&d->ready_cond, &d->pool_mu);
	pthread_mutex_unlock(&d->pool_mu);
	for (int i = 0; i < d->n; i++) {
		int running = d->w[i].started && d->w[i].ready >= 0;
		all &= running && d->w[i].ready > 0;
		if (!running)
			d->w[i].finished = 1; /* no thread to hear anything */
	}
	for (int i = 0; i < d->n; i++) {
		struct worker *w = &d->w[i];
		if (!w->started || w->ready < 0)
			continue;
		if (!all) {
			/* Start-up failed: stop the workers without their results. */
			struct batch *b = batch_get(d);
			b->finish = 1;
			queue_push(d, w, b);
			w->finished = 1;
			continue;
		}
		struct batch *b = w->pending ? w->pending : batch_get(d);
		w->pending = NULL;
		b->finish = 1;
		queue_push(d, w, b);
		w->finished = 1;
	}
	/* The rest of the results, until every shard has finished. */
	if (all && !d->worker_writes)
		shard_hub_drain(d->hub, d->fn, d->ctx, 0);
	for (int i = 0; i < d->n; i++)
		if (d->w[i].started) {
			pthread_join(d->w[i].thread, NULL);
			d->w[i].started = 0;
		}
}

void dispatch_stats(const struct dispatch *d, struct flow_stats *fs, struct session_stats *ss,
		    struct reasm_budget *b)
{
	shard_stats_sum(d->shards, d->n, fs, ss, b);
	/* Every worker saw each jump; it happened once. */
	fs->clock_jumps = d->clock_jumps;
	fs->clock_outliers = d->clock.outliers;
}

void dispatch_free(struct dispatch *d)
{
	if (!d)
		return;
	for (int i = 0; d->w && i < d->n; i++) {
		shard_free(d->w[i].shard);
		free(d->w[i].pending);
		/* batches a worker that never ran left in its queue */
		for (; d->w[i].count; d->w[i].count--, d->w[i].head = (d->w[i].head + 1) % QUEUE_BATCHES)
			free(d->w[i].queue[d->w[i].head]);
		pthread_mutex_destroy(&d->w[i].mu);
		pthread_cond_destroy(&d->w[i].cond);
	}
	while (d->pool) {
		struct batch *b = d->pool;
		d->pool = b->next;
		free(b);
	}
	shard_hub_free(d->hub);
	free(d->shards);
	free(d->w);
	pthread_mutex_destroy(&d->pool_mu);
	pthread_cond_destroy(&d->ready_cond);
	free(d);
}
