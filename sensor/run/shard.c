/*
 * shard.c - per-worker flow tables and the ordered hand-over of their
 * results to the one writer.
 */
#include "run/shard.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Events a shard may have waiting for the writer before it blocks. */
#define SHARD_OUTBOX_CAP 1024

struct outbox {
	struct shard_event *head, *tail;
	uint32_t count;
};

struct shard_hub {
	pthread_mutex_t mu;
	pthread_cond_t to_writer, to_shards;
	int n, ordered;
	int n_ended; /* the writer's count of finished shards (live) */
	struct outbox *box;
	struct outbox *taken; /* the writer's: events taken from each box (offline) */
	int *ended;           /* the writer's: shard finished (offline) */
	struct shard_event *held; /* the writer's (live): by when_ns, then taken */
	size_t n_held;
	int ends_held;
};

struct shard {
	struct shard_hub *hub;
	int index;
	struct flow_table *flows;
	struct session_engine *sessions;
	int dns;
	/* position being processed: the order key of what it emits */
	uint64_t seq;
	uint8_t phase;
	uint8_t flushing;
	uint64_t sub;
	uint64_t lost;       /* results dropped for want of memory */
	uint64_t now_ns;     /* live: the time of the packet or tick in hand */
	struct outbox local; /* made since the last publish */
	/* The shard's own thread is the writer (the only shard of an ordered
	 * hub): publishing hands its results on at once, never waits. */
	shard_event_fn self_fn;
	void *self_ctx;
};

struct shard_hub *shard_hub_new(int n_shards, int ordered)
{
	struct shard_hub *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->box = calloc((size_t)n_shards, sizeof(*h->box));
	h->taken = calloc((size_t)n_shards, sizeof(*h->taken));
	h->ended = calloc((size_t)n_shards, sizeof(*h->ended));
	if (!h->box || !h->taken || !h->ended) {
		free(h->box);
		free(h->taken);
		free(h->ended);
		free(h);
		return NULL;
	}
	h->n = n_shards;
	h->ordered = ordered;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->to_writer, NULL);
	pthread_cond_init(&h->to_shards, NULL);
	return h;
}

static void event_free(struct shard_event *ev)
{
	if (ev->kind == SHARD_EV_SESSION)
		record_free(ev->record);
	free(ev);
}

static void outbox_free(struct outbox *b)
{
	while (b->head) {
		struct shard_event *ev = b->head;
		b->head = ev->next;
		event_free(ev);
	}
	b->tail = NULL;
	b->count = 0;
}

void shard_hub_free(struct shard_hub *h)
{
	if (!h)
		return;
	for (int i = 0; i < h->n; i++) {
		outbox_free(&h->box[i]);
		outbox_free(&h->taken[i]);
	}
	struct outbox held = {h->held, NULL, 0};
	outbox_free(&held);
	free(h->taken);
	free(h->ended);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->to_writer);
	pthread_cond_destroy(&h->to_shards);
	free(h->box);
	free(h);
}

static void outbox_append(struct outbox *b, struct shard_event *ev)
{
	ev->next = NULL;
	if (b->tail)
		b->tail->next = ev;
	else
		b->head = ev;
	b->tail = ev;
	b->count++;
}

/* A result of flow `f` (NULL: of a UDP packet) at the current position.
 * Results the clock produces sort as one table would make them: by age
 * list when ageing, in age order when ending everything; a flow's own
 * results (DNS messages delivered as it ends, then its session) in the
 * order made. */
static struct shard_event *event_new(struct shard *s, const struct flow *f,
				     enum shard_event_kind kind, size_t extra)
{
	struct shard_event *ev = malloc(sizeof(*ev) + extra);
	if (!ev) {
		s->lost++;
		return NULL;
	}
	ev->kind = (uint8_t)kind;
	ev->when_ns = s->now_ns;
	ev->seq = s->seq;
	ev->phase = s->phase;
	ev->k1 = 0;
	ev->k2 = 0;
	ev->k3 = s->sub++;
	if (s->phase == SHARD_PH_CLOCK && f) {
		ev->k1 = s->flushing ? 0 : f->age_class; /* the table expires class by class */
		ev->k2 = f->age_seq;
	}
	return ev;
}

/* A finished flow leaves the shard as its record. */
static void on_session(void *ctx, const struct flow *f, struct session_record *r)
{
	struct shard *s = ctx;
	struct shard_event *ev = event_new(s, f, SHARD_EV_SESSION, 0);
	if (!ev) {
		record_free(r);
		return;
	}
	ev->record = r;
	/* Live, a closed flow leaves at a worker's next clock tick, which is
	 * not comparable between workers; its last packet is (and orders
	 * expiring flows as one table's age list does offline). */
	ev->when_ns = r->ts_last;
	outbox_append(&s->local, ev);
}

static void dns_event(struct shard *s, const struct flow *f, int family, const uint8_t *src,
		      const uint8_t *msg, size_t len, uint64_t ts_ns)
{
	struct shard_event *ev = event_new(s, f, SHARD_EV_DNS, len);
	if (!ev)
		return;
	ev->family = (uint8_t)family;
	memcpy(ev->src, src, 16);
	ev->ts_ns = ts_ns;
	ev->when_ns = ts_ns;
	ev->len = (uint32_t)len;
	ev->msg = (uint8_t *)(ev + 1);
	memcpy(ev->msg, msg, len);
	outbox_append(&s->local, ev);
}

static void on_tcp_dns(void *ctx, const struct flow *f, const uint8_t *msg, size_t len,
		       uint64_t ts_ns)
{
	dns_event(ctx, f, f->key.family, f->key.addr[1], msg, len, ts_ns);
}

struct shard *shard_new(struct shard_hub *h, int index, enum session_ndpi_mode ndpi,
			const struct flow_config *cfg, int dns, int all_flows)
{
	struct shard *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->hub = h;
	s->index = index;
	s->dns = dns;
	s->sessions = session_engine_new(ndpi, all_flows, on_session, s);
	if (!s->sessions)
		goto fail;
	if (dns)
		session_engine_set_dns(s->sessions, on_tcp_dns, s);
	struct flow_consumer consumer = session_engine_consumer(s->sessions);
	s->flows = flow_table_new(cfg, &consumer);
	if (!s->flows)
		goto fail;
	return s;
fail:
	shard_free(s);
	return NULL;
}

void shard_free(struct shard *s)
{
	if (!s)
		return;
	flow_table_free(s->flows);
	session_engine_free(s->sessions);
	outbox_free(&s->local);
	free(s);
}

static void at(struct shard *s, uint64_t seq, uint8_t phase)
{
	s->seq = seq;
	s->phase = phase;
	s->sub = 0;
}

void shard_step(struct shard *s, uint64_t seq, uint64_t now_ns, enum flow_clock_step step,
		uint64_t epoch_seq)
{
	at(s, seq, SHARD_PH_CLOCK);
	s->flushing = step == FLOW_CLOCK_JUMP;
	flow_table_step(s->flows, seq, now_ns, step, epoch_seq);
	s->flushing = 0;
}

void shard_packet_at(struct shard *s, const struct packet *p, uint64_t seq, uint64_t now_ns,
		     uint64_t hash)
{
	at(s, seq, SHARD_PH_PACKET);
	if (p->ip_proto == 6)
		flow_table_packet_at(s->flows, p, seq, now_ns, hash);
	else if (s->dns)
		dns_event(s, NULL, p->family, p->src, p->payload, p->payload_len, p->ts_ns);
}

void shard_packet(struct shard *s, const struct packet *p)
{
	s->now_ns = p->ts_ns;
	if (p->ip_proto == 6)
		flow_table_packet(s->flows, p);
	else if (s->dns && p->sport == 53)
		dns_event(s, NULL, p->family, p->src, p->payload, p->payload_len, p->ts_ns);
}

void shard_tick(struct shard *s, uint64_t now_ns)
{
	s->now_ns = now_ns;
	flow_table_tick(s->flows, now_ns);
}

static void marker(struct shard *s, enum shard_event_kind kind, uint64_t seq, uint8_t phase)
{
	/* Markers are small and must not be lost: retry allocation. */
	struct shard_event *ev;
	while (!(ev = malloc(sizeof(*ev)))) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	ev->kind = (uint8_t)kind;
	ev->when_ns = kind == SHARD_EV_END ? UINT64_MAX : s->now_ns; /* the end goes last */
	ev->seq = seq;
	ev->phase = phase;
	ev->k1 = 0;
	ev->k2 = 0;
	ev->k3 = 0;
	outbox_append(&s->local, ev);
}

void shard_progress(struct shard *s, uint64_t seq)
{
	marker(s, SHARD_EV_PROGRESS, seq, SHARD_PH_PROGRESS);
}

void shard_finish(struct shard *s)
{
	at(s, UINT64_MAX, SHARD_PH_CLOCK);
	s->flushing = 1;
	flow_table_flush(s->flows);
	s->flushing = 0;
	marker(s, SHARD_EV_END, UINT64_MAX, SHARD_PH_END);
	shard_publish(s);
}

void shard_write_own(struct shard *s, shard_event_fn fn, void *ctx)
{
	s->self_fn = fn;
	s->self_ctx = ctx;
}

void shard_publish(struct shard *s)
{
	if (!s->local.head)
		return;
	struct shard_hub *h = s->hub;
	pthread_mutex_lock(&h->mu);
	struct outbox *b = &h->box[s->index];
	if (b->tail)
		b->tail->next = s->local.head;
	else
		b->head = s->local.head;
	b->tail = s->local.tail;
	b->count += s->local.count;
	s->local.head = s->local.tail = NULL;
	s->local.count = 0;
	if (s->self_fn) {
		/* Its own writer: nothing to wait for, the results go out now. */
		pthread_mutex_unlock(&h->mu);
		shard_hub_drain_ready(h, s->self_fn, s->self_ctx);
		return;
	}
	pthread_cond_signal(&h->to_writer);
	while (b->count > SHARD_OUTBOX_CAP)
		pthread_cond_wait(&h->to_shards, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

void shard_stats_sum(struct shard *const *shards, int n, struct flow_stats *fs,
		     struct session_stats *ss, struct reasm_budget *b)
{
	memset(fs, 0, sizeof(*fs));
	memset(ss, 0, sizeof(*ss));
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < n; i++) {
		flow_stats_add(fs, flow_table_stats(shards[i]->flows));
		session_stats_add(ss, session_engine_stats(shards[i]->sessions));
		ss->results_lost += shards[i]->lost;
		reasm_budget_add(b, flow_table_budget(shards[i]->flows));
	}
}

static int key_less(const struct shard_event *a, const struct shard_event *b)
{
	if (a->seq != b->seq)
		return a->seq < b->seq;
	if (a->phase != b->phase)
		return a->phase < b->phase;
	if (a->k1 != b->k1)
		return a->k1 < b->k1;
	if (a->k2 != b->k2)
		return a->k2 < b->k2;
	return a->k3 < b->k3;
}

static void handle(struct shard_event *ev, shard_event_fn fn, void *ctx)
{
	if (ev->kind == SHARD_EV_SESSION || ev->kind == SHARD_EV_DNS)
		fn(ctx, ev);
	event_free(ev);
}

void deadline_after_ms(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static uint64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Merges two lists sorted by when_ns; of equal times, a's go first. */
static struct shard_event *merge_by_time(struct shard_event *a, struct shard_event *b)
{
	struct shard_event *out = NULL, **tail = &out;
	while (a && b) {
		struct shard_event **least = b->when_ns < a->when_ns ? &b : &a;
		struct shard_event *ev = *least;
		*least = ev->next;
		*tail = ev;
		tail = &ev->next;
	}
	*tail = a ? a : b;
	return out;
}

/* Sorts a list of n events by when_ns (merge sort, stable). */
static struct shard_event *sort_by_time(struct shard_event *list, size_t n)
{
	if (n < 2)
		return list;
	struct shard_event *second = list, *last = NULL;
	for (size_t i = 0; i < n / 2; i++) {
		last = second;
		second = second->next;
	}
	last->next = NULL;
	return merge_by_time(sort_by_time(list, n / 2), sort_by_time(second, n - n / 2));
}

/* Live: takes what has arrived; with several shards, holds each event
 * SHARD_LIVE_HOLD_MS and hands them on in time order (once every shard has
 * ended, all at once). Returns after one round so the caller can see to
 * signals and commits; 1 once every shard's end went out. */
static int drain_unordered(struct shard_hub *h, shard_event_fn fn, void *ctx, int wait_ms)
{
	int holding = h->n > 1;
	uint64_t now = mono_ms();
	if (holding && h->held) {
		/* wake for the first held event that comes due */
		uint64_t due = UINT64_MAX;
		for (struct shard_event *ev = h->held; ev; ev = ev->next)
			if (ev->taken_ms + SHARD_LIVE_HOLD_MS < due)
				due = ev->taken_ms + SHARD_LIVE_HOLD_MS;
		int until_due = due > now ? (int)(due - now) : 0;
		if (until_due < wait_ms)
			wait_ms = until_due;
	}
	struct timespec until;
	deadline_after_ms(&until, wait_ms);
	struct shard_event *got = NULL, **tail = &got;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		for (int i = 0; i < h->n; i++) {
			if (!h->box[i].head)
				continue;
			*tail = h->box[i].head;
			tail = &h->box[i].tail->next;
			h->box[i].head = h->box[i].tail = NULL;
			h->box[i].count = 0;
		}
		if (got || wait_ms <= 0 ||
		    pthread_cond_timedwait(&h->to_writer, &h->mu, &until) == ETIMEDOUT)
			break;
	}
	pthread_cond_broadcast(&h->to_shards);
	pthread_mutex_unlock(&h->mu);
	if (!holding) {
		while (got) {
			struct shard_event *ev = got;
			got = ev->next;
			if (ev->kind == SHARD_EV_END)
				h->n_ended++;
			handle(ev, fn, ctx);
		}
		return h->n_ended == h->n;
	}
	now = mono_ms();
	size_t n_got = 0;
	for (struct shard_event *ev = got; ev; ev = ev->next) {
		ev->taken_ms = now;
		n_got++;
		h->ends_held += ev->kind == SHARD_EV_END;
	}
	h->held = merge_by_time(h->held, sort_by_time(got, n_got));
	h->n_held += n_got;
	/* Out go, in time order, the events held long enough, wherever they
	 * sit: one that sorts early (a flow that closed seconds ago) never
	 * holds back those behind it. Past the cap the oldest go at once, so
	 * the shards' back-pressure still bounds what waits here. */
	int all_ended = h->n_ended + h->ends_held == h->n;
	size_t cap = (size_t)h->n * SHARD_OUTBOX_CAP;
	struct shard_event **link = &h->held;
	while (*link) {
		struct shard_event *ev = *link;
		if (!all_ended && ev->taken_ms + SHARD_LIVE_HOLD_MS > now && h->n_held <= cap) {
			link = &ev->next;
			continue;
		}
		*link = ev->next;
		h->n_held--;
		if (ev->kind == SHARD_EV_END) {
			h->n_ended++;
			h->ends_held--;
		}
		handle(ev, fn, ctx);
	}
	return h->n_ended == h->n;
}

/* Offline: an n-way merge of the shards' streams, each already in key
 * order; an event goes out only once every unfinished shard has shown an
 * event (or progress mark) at least as late. Without `wait`, returns (0)
 * as soon as a shard has nothing to show yet. */
static int drain_ordered(struct shard_hub *h, shard_event_fn fn, void *ctx, int wait)
{
	struct outbox *mine = h->taken;
	int *ended = h->ended;
	int n_ended = 0;
	for (int i = 0; i < h->n; i++)
		n_ended += ended[i];
	while (n_ended < h->n) {
		int missing = 0;
		for (int i = 0; i < h->n; i++)
			missing |= !ended[i] && !mine[i].head;
		if (missing) {
			pthread_mutex_lock(&h->mu);
			for (;;) {
				missing = 0;
				for (int i = 0; i < h->n; i++) {
					if (ended[i] || mine[i].head)
						continue;
					if (h->box[i].head) {
						mine[i] = h->box[i];
						memset(&h->box[i], 0, sizeof(h->box[i]));
					} else {
						missing = 1;
					}
				}
				if (!missing || !wait)
					break;
				pthread_cond_wait(&h->to_writer, &h->mu);
			}
			pthread_cond_broadcast(&h->to_shards);
			pthread_mutex_unlock(&h->mu);
			if (missing)
				return 0;
		}
		int best = -1;
		for (int i = 0; i < h->n; i++)
			if (!ended[i] && (best < 0 || key_less(mine[i].head, mine[best].head)))
				best = i;
		struct shard_event *ev = mine[best].head;
		mine[best].head = ev->next;
		if (!mine[best].head)
			mine[best].tail = NULL;
		if (ev->kind == SHARD_EV_END) {
			ended[best] = 1;
			n_ended++;
		}
		handle(ev, fn, ctx);
	}
	return 1;
}

int shard_hub_drain(struct shard_hub *h, shard_event_fn fn, void *ctx, int wait_ms)
{
	return h->ordered ? drain_ordered(h, fn, ctx, 1) : drain_unordered(h, fn, ctx, wait_ms);
}

int shard_hub_drain_ready(struct shard_hub *h, shard_event_fn fn, void *ctx)
{
	return drain_ordered(h, fn, ctx, 0);
}
