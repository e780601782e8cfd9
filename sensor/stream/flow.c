/*
 * flow.c - flow table: keyed hash buckets plus one age-ordered list per
 * flow state (each state has its own timeout), so lookup, ageing and
 * eviction of the oldest are all O(1) per packet.
 */
#include "stream/flow.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "stream/caps.h"
#include "util/siphash.h"
#include "util/stagetime.h"
#include "util/units.h"

#ifdef MXW_STAGE_TIMING
_Thread_local struct stage_times stage_times;
#endif

#define EVICT_FOR_MEMORY_TRIES 8
#define FLOW_CLOCK_JUMP_NS     (2 * NS_PER_S) /* under the shortest timeout */
#define FLOW_CLOCK_AHEAD_NS    (60 * NS_PER_S) /* a gap this long on a link is rare */
#define FLOW_TICK_NS           NS_PER_S

/* Age lists, in the order flows are given up under pressure: a closed
 * flow has nothing more to say; a half-open one (a SYN, a scan, a flood)
 * holds no session yet; a bypassed one holds no decoder state; a live mail
 * session goes last, or an attacker could flood it out of the table. */
enum age_class { AGE_CLOSED = 0, AGE_EMBRYONIC, AGE_PASSIVE, AGE_ACTIVE, AGE_CLASSES };

struct flow_table {
	struct flow_config cfg;
	struct flow_consumer consumer;
	struct flow **buckets;
	uint64_t mask;
	struct age_list {
		struct flow *oldest, *newest;
	} ages[AGE_CLASSES]; /* by enum age_class */
	struct flow_clock clock;
	uint64_t seq; /* packets seen (or the dispatcher's number) */
	uint8_t key[16];
	struct reasm_budget budget;
	struct flow_stats stats;
};

static const char *const end_names[FLOW_END_COUNT] = {
    [FLOW_END_NONE] = "open",       [FLOW_END_FIN] = "fin",         [FLOW_END_RST] = "rst",
    [FLOW_END_TIMEOUT] = "timeout", [FLOW_END_EVICTED] = "evicted", [FLOW_END_REUSED] = "reused",
    [FLOW_END_EOF] = "eof",
};

/* Fixed key for flow ids: ids must be the same in every run and worker. */
static const uint8_t id_key[16] = "mxwatch-flow-id";

const char *flow_end_name(enum flow_end e)
{
	return (unsigned)e < FLOW_END_COUNT ? end_names[e] : "unknown";
}

void flow_config_defaults(struct flow_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg)); /* no hash key: each table draws its own */
	cfg->max_flows = FLOW_MAX_DEFAULT;
	cfg->reasm_budget = REASM_BUDGET_DEFAULT;
	cfg->timeout_established = FLOW_TIMEOUT_ESTABLISHED;
	cfg->timeout_embryonic = FLOW_TIMEOUT_EMBRYONIC;
	cfg->timeout_closed = FLOW_TIMEOUT_CLOSED;
}

struct flow_config flow_config_share(const struct flow_config *cfg, int n)
{
	struct flow_config c = *cfg;
	c.max_flows = cfg->max_flows / (uint32_t)n ? cfg->max_flows / (uint32_t)n : 1;
	c.reasm_budget = cfg->reasm_budget / (uint64_t)n;
	return c;
}

struct flow_table *flow_table_new(const struct flow_config *cfg, const struct flow_consumer *c)
{
	struct flow_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cfg = *cfg;
	if (t->cfg.max_flows == 0)
		t->cfg.max_flows = 1;
	t->consumer = *c;
	uint64_t n = 1024;
	while (n < t->cfg.max_flows && n < (1ull << 30))
		n <<= 1;
	t->buckets = calloc(n, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return NULL;
	}
	t->mask = n - 1;
	t->budget.limit = cfg->reasm_budget;
	if (cfg->hash_key_set) {
		memcpy(t->key, cfg->hash_key, sizeof(t->key));
	} else if (getrandom(t->key, sizeof(t->key), 0) != (ssize_t)sizeof(t->key)) {
		/* No entropy source: still run, with a weaker time-derived key. */
		uint64_t x = (uint64_t)(uintptr_t)t ^ (uint64_t)time(NULL);
		memcpy(t->key, &x, sizeof(x));
	}
	return t;
}

const struct flow_stats *flow_table_stats(const struct flow_table *t)
{
	return &t->stats;
}

void flow_stats_add(struct flow_stats *sum, const struct flow_stats *x)
{
	sum->packets_tcp += x->packets_tcp;
	sum->packets_ignored += x->packets_ignored;
	sum->flows_created += x->flows_created;
	sum->flows_active += x->flows_active;
	sum->flows_peak += x->flows_peak;
	for (int e = 0; e < FLOW_END_COUNT; e++)
		sum->ended[e] += x->ended[e];
	sum->evicted_for_memory += x->evicted_for_memory;
	for (int i = 0; i < 4; i++)
		sum->evicted_by_class[i] += x->evicted_by_class[i];
	sum->segments_dropped += x->segments_dropped;
	sum->bytes_dropped += x->bytes_dropped;
	sum->gap_bytes += x->gap_bytes;
	sum->overlap_conflicts += x->overlap_conflicts;
	sum->clock_jumps += x->clock_jumps;
	sum->clock_outliers += x->clock_outliers;
	sum->rst_ignored += x->rst_ignored;
}

void reasm_budget_add(struct reasm_budget *sum, const struct reasm_budget *x)
{
	sum->limit += x->limit;
	sum->used += x->used;
	sum->over_limit += x->over_limit;
	sum->oom += x->oom;
}

const struct reasm_budget *flow_table_budget(const struct flow_table *t)
{
	return &t->budget;
}

/* Endpoint order independent of direction, so both directions hash alike.
 * IPv4, every packet's case, hashes two 64-bit words built in registers:
 * the endpoints (address and port) in a fixed order, and the family. */
static uint64_t tuple_hash(const uint8_t key[16], uint8_t family, const uint8_t *a, uint16_t ap,
			   const uint8_t *b, uint16_t bp)
{
	if (family == 4) {
		uint32_t a4, b4;
		memcpy(&a4, a, 4);
		memcpy(&b4, b, 4);
		uint64_t ea = (uint64_t)a4 << 16 | ap, eb = (uint64_t)b4 << 16 | bp;
		return siphash13_words(key, ea < eb ? ea : eb,
				       (ea < eb ? eb : ea) | (uint64_t)4 << 56);
	}
	uint8_t buf[1 + 2 * 18];
	int c = memcmp(a, b, 16);
	int a_first = c < 0 || (c == 0 && ap <= bp);
	const uint8_t *lo = a_first ? a : b, *hi = a_first ? b : a;
	uint16_t lop = a_first ? ap : bp, hip = a_first ? bp : ap;
	buf[0] = family;
	memcpy(buf + 1, lo, 16);
	buf[17] = (uint8_t)(lop >> 8);
	buf[18] = (uint8_t)lop;
	memcpy(buf + 19, hi, 16);
	buf[35] = (uint8_t)(hip >> 8);
	buf[36] = (uint8_t)hip;
	return siphash13(key, buf, sizeof(buf));
}

uint64_t flow_tuple_hash(const uint8_t key[16], const struct packet *p)
{
	return tuple_hash(key, p->family, p->src, p->sport, p->dst, p->dport);
}

static enum age_class age_class_of(const struct flow *f)
{
	switch (f->state) {
	case FLOW_CLOSED: return AGE_CLOSED;
	case FLOW_EMBRYONIC: return AGE_EMBRYONIC;
	default: return f->dir[0].bypass && f->dir[1].bypass ? AGE_PASSIVE : AGE_ACTIVE;
	}
}

static void age_unlink(struct flow_table *t, struct flow *f)
{
	struct age_list *l = &t->ages[f->age_class];
	if (f->older)
		f->older->newer = f->newer;
	else if (l->oldest == f)
		l->oldest = f->newer;
	if (f->newer)
		f->newer->older = f->older;
	else if (l->newest == f)
		l->newest = f->older;
	f->older = f->newer = NULL;
}

static void age_push_newest(struct flow_table *t, struct flow *f)
{
	f->age_class = (uint8_t)age_class_of(f);
	struct age_list *l = &t->ages[f->age_class];
	f->older = l->newest;
	f->newer = NULL;
	if (l->newest)
		l->newest->newer = f;
	else
		l->oldest = f;
	l->newest = f;
}

/* The flow to give up for room: the oldest of the first class that has
 * one. */
static struct flow *eviction_victim(const struct flow_table *t)
{
	for (int i = 0; i < AGE_CLASSES; i++)
		if (t->ages[i].oldest)
			return t->ages[i].oldest;
	return NULL;
}

/* The least recently active flow of any state. */
static struct flow *oldest_flow(const struct flow_table *t)
{
	struct flow *best = NULL;
	for (int i = 0; i < AGE_CLASSES; i++) {
		struct flow *f = t->ages[i].oldest;
		if (f && (!best || f->age_seq < best->age_seq))
			best = f;
	}
	return best;
}

static void record_anomaly(struct flow *f, int dir, enum reasm_anomaly kind, uint64_t bytes)
{
	for (unsigned i = 0; i < f->n_anomalies; i++) {
		struct flow_anomaly *a = &f->anomalies[i];
		if (a->kind == kind && a->dir == dir) {
			a->count++;
			a->bytes += bytes;
			return;
		}
	}
	if (f->n_anomalies == f->anomaly_room) {
		unsigned room = f->anomaly_room ? f->anomaly_room * 2u : 2u;
		if (room > REASM_AN_COUNT * 2)
			room = REASM_AN_COUNT * 2;
		struct flow_anomaly *grown;
		if (room == f->anomaly_room ||
		    !(grown = realloc(f->anomalies, room * sizeof(*grown))))
			return;
		f->anomalies = grown;
		f->anomaly_room = (uint8_t)room;
	}
	struct flow_anomaly *a = &f->anomalies[f->n_anomalies++];
	a->kind = (uint8_t)kind;
	a->dir = (uint8_t)dir;
	a->count = 1;
	a->bytes = bytes;
}

static void drop_syn_data(struct flow_table *t, struct flow *f, int dir)
{
	t->budget.used -= f->syn_data_len[dir];
	free(f->syn_data[dir]);
	f->syn_data[dir] = NULL;
	f->syn_data_len[dir] = 0;
}

static void sink_data(void *ctx, int dir, const uint8_t *p, size_t n)
{
	struct flow *f = ctx;
	struct flow_table *t = f->table;
	if (t->consumer.data)
		t->consumer.data(t->consumer.ctx, f, dir, p, n);
}

static void sink_gap(void *ctx, int dir, uint32_t n)
{
	struct flow *f = ctx;
	struct flow_table *t = f->table;
	record_anomaly(f, dir, REASM_AN_GAP, n);
	t->stats.gap_bytes += n;
	if (t->consumer.gap)
		t->consumer.gap(t->consumer.ctx, f, dir, n);
}

static void sink_anomaly(void *ctx, int dir, enum reasm_anomaly kind, uint32_t bytes)
{
	struct flow *f = ctx;
	record_anomaly(f, dir, kind, bytes);
	if (kind == REASM_AN_OVERLAP_CONFLICT)
		f->table->stats.overlap_conflicts++;
}

static void sink_for(struct flow *f, struct reasm_sink *s)
{
	s->ctx = f;
	s->data = sink_data;
	s->gap = sink_gap;
	s->anomaly = sink_anomaly;
}

static void flow_finish(struct flow_table *t, struct flow *f, enum flow_end why)
{
	struct reasm_sink s;
	sink_for(f, &s);
	if (f->end == FLOW_END_NONE)
		f->end = (uint8_t)why;
	for (int d = 0; d < 2; d++)
		if (f->syn_data[d]) {
			record_anomaly(f, d, REASM_AN_SYN_DATA, f->syn_data_len[d]);
			drop_syn_data(t, f, d);
		}
	for (int d = 0; d < 2; d++)
		if (!f->dir[d].done)
			reasm_flush(&f->dir[d], &s, d, &t->budget);
	if (t->consumer.close)
		t->consumer.close(t->consumer.ctx, f);
	struct flow **pp = &t->buckets[f->hash & t->mask];
	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	age_unlink(t, f);
	for (int d = 0; d < 2; d++)
		reasm_free(&f->dir[d], &t->budget);
	t->stats.ended[f->end]++;
	t->stats.flows_active--;
	free(f->anomalies);
	free(f);
}

/* Room is made: a live session given up says so on its record. */
static void evict(struct flow_table *t, struct flow *f)
{
	t->stats.evicted_by_class[f->age_class]++;
	if (f->age_class == AGE_ACTIVE)
		record_anomaly(f, 0, REASM_AN_EVICTED, 0);
	flow_finish(t, f, FLOW_END_EVICTED);
}

static uint64_t flow_timeout_ns(const struct flow_table *t, const struct flow *f)
{
	uint32_t s = f->state == FLOW_CLOSED      ? t->cfg.timeout_closed
		     : f->state == FLOW_EMBRYONIC ? t->cfg.timeout_embryonic
						  : t->cfg.timeout_established;
	return (uint64_t)s * NS_PER_S;
}

static void expire(struct flow_table *t)
{
	for (int i = 0; i < AGE_CLASSES; i++) {
		struct age_list *l = &t->ages[i];
		while (l->oldest &&
		       l->oldest->age_ns + flow_timeout_ns(t, l->oldest) < t->clock.now_ns)
			flow_finish(t, l->oldest, FLOW_END_TIMEOUT);
	}
}

/* Lower port, or the one under 1024, is the server when no SYN tells. */
static int src_is_server_by_port(uint16_t sport, uint16_t dport)
{
	int s_low = sport < 1024, d_low = dport < 1024;
	if (s_low != d_low)
		return s_low;
	return sport < dport;
}

static void make_id(struct flow *f)
{
	uint8_t buf[sizeof(f->key) + 8];
	memcpy(buf, &f->key, sizeof(f->key));
	for (int i = 0; i < 8; i++)
		buf[sizeof(f->key) + i] = (uint8_t)(f->ts_first >> (8 * i));
	uint64_t h = siphash24(id_key, buf, sizeof(buf));
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++)
		f->id[i] = digits[(h >> (60 - 4 * i)) & 15];
	f->id[16] = 0;
}

static struct flow *flow_create(struct flow_table *t, const struct packet *p, uint64_t hash)
{
	if (t->stats.flows_active >= t->cfg.max_flows && eviction_victim(t))
		evict(t, eviction_victim(t));
	struct flow *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	int src_is_client;
	if (p->tcp_flags & TCPF_SYN)
		src_is_client = !(p->tcp_flags & TCPF_ACK);
	else
		src_is_client = !src_is_server_by_port(p->sport, p->dport);
	f->table = t;
	f->hash = hash;
	f->key.family = p->family;
	size_t alen = p->family == 4 ? 4 : 16;
	memcpy(f->key.addr[0], src_is_client ? p->src : p->dst, alen);
	memcpy(f->key.addr[1], src_is_client ? p->dst : p->src, alen);
	f->key.port[0] = src_is_client ? p->sport : p->dport;
	f->key.port[1] = src_is_client ? p->dport : p->sport;
	f->ts_first = f->ts_last = p->ts_ns;
	f->file_index = p->file_index;
	f->midstream = !(p->tcp_flags & TCPF_SYN);
	f->state = f->midstream ? FLOW_ESTABLISHED : FLOW_EMBRYONIC;
	reasm_init(&f->dir[0]);
	reasm_init(&f->dir[1]);
	make_id(f);
	f->hnext = t->buckets[hash & t->mask];
	t->buckets[hash & t->mask] = f;
	age_push_newest(t, f);
	t->stats.flows_created++;
	if (++t->stats.flows_active > t->stats.flows_peak)
		t->stats.flows_peak = t->stats.flows_active;
	if (t->consumer.open)
		t->consumer.open(t->consumer.ctx, f);
	return f;
}

static inline int addr_eq(const uint8_t *a, const uint8_t *b, size_t alen)
{
	uint32_t x, y;
	if (alen == 4) {
		memcpy(&x, a, 4);
		memcpy(&y, b, 4);
		return x == y;
	}
	return memcmp(a, b, 16) == 0;
}

/* Returns the flow and sets *dir, or NULL. */
static struct flow *flow_lookup(struct flow_table *t, const struct packet *p, uint64_t hash,
				int *dir)
{
	size_t alen = p->family == 4 ? 4 : 16;
	for (struct flow *f = t->buckets[hash & t->mask]; f; f = f->hnext) {
		if (f->hash != hash || f->key.family != p->family)
			continue;
		if (f->key.port[0] == p->sport && f->key.port[1] == p->dport &&
		    addr_eq(f->key.addr[0], p->src, alen) &&
		    addr_eq(f->key.addr[1], p->dst, alen)) {
			*dir = FLOW_TO_SERVER;
			return f;
		}
		if (f->key.port[0] == p->dport && f->key.port[1] == p->sport &&
		    addr_eq(f->key.addr[0], p->dst, alen) &&
		    addr_eq(f->key.addr[1], p->src, alen)) {
			*dir = FLOW_TO_CLIENT;
			return f;
		}
	}
	return NULL;
}

/* An RST counts only near where its direction's stream is. */
#define RST_WINDOW (1u << 20)
static int rst_plausible(const struct reasm_dir *d, uint32_t seq)
{
	if (!d->base_known || d->bypass)
		return 1;
	int32_t diff = (int32_t)(seq - d->next_seq);
	return diff >= -(int32_t)RST_WINDOW && diff <= (int32_t)RST_WINDOW;
}

/* Frees memory by ending the oldest flows other than `keep`. */
static int evict_for_memory(struct flow_table *t, const struct flow *keep)
{
	struct flow *victim = eviction_victim(t);
	if (victim == keep) /* unlinked while its packet is processed: cannot happen */
		return 0;
	if (!victim)
		return 0;
	t->stats.evicted_for_memory++;
	evict(t, victim);
	return 1;
}

static void process_packet(struct flow_table *t, struct flow *f, int dir, const struct packet *p);
static int flow_packet(struct flow_table *t, const struct packet *p, uint64_t hash);

static void feed_bytes(struct flow_table *t, struct flow *f, int dir, uint32_t seq, int fin,
		       const uint8_t *data, uint32_t len, const struct reasm_sink *s)
{
	for (int tries = 0;; tries++) {
		enum reasm_result r =
		    reasm_segment(&f->dir[dir], s, dir, seq, fin, data, len, &t->budget);
		if (r == REASM_OK)
			return;
		if (tries >= EVICT_FOR_MEMORY_TRIES || !evict_for_memory(t, f))
			break;
	}
	t->stats.segments_dropped++;
	t->stats.bytes_dropped += len;
	reasm_drop(&f->dir[dir], s, dir, len);
}

/* A stack that did not agree to TCP Fast Open drops a SYN's payload and
 * the sender sends it again; taking it as stream data would let forged
 * bytes shadow the real ones (first copy wins). So it waits for the
 * peer's ACK: data it acknowledged is stream data, the rest is not. */
static void hold_syn_data(struct flow_table *t, struct flow *f, int dir, const struct packet *p)
{
	uint32_t len = p->payload_len > UINT16_MAX ? UINT16_MAX : p->payload_len;
	if (f->syn_data[dir])
		drop_syn_data(t, f, dir); /* a retransmitted SYN: the newest copy */
	if (t->budget.used + len > t->budget.limit || !(f->syn_data[dir] = malloc(len))) {
		record_anomaly(f, dir, REASM_AN_SYN_DATA, p->payload_len);
		return;
	}
	memcpy(f->syn_data[dir], p->payload, len);
	f->syn_data_len[dir] = (uint16_t)len;
	t->budget.used += len;
}

static void settle_syn_data(struct flow_table *t, struct flow *f, int dir, uint32_t ack,
			    const struct reasm_sink *s)
{
	uint32_t len = f->syn_data_len[dir];
	uint32_t start = f->dir[dir].isn + 1;
	int32_t taken = (int32_t)(ack - start);
	if (taken < 0)
		return; /* an ACK for something older than this SYN */
	if ((uint32_t)taken > len)
		taken = (int32_t)len;
	if (taken > 0)
		feed_bytes(t, f, dir, start, 0, f->syn_data[dir], (uint32_t)taken, s);
	if ((uint32_t)taken < len)
		record_anomaly(f, dir, REASM_AN_SYN_DATA, len - (uint32_t)taken);
	drop_syn_data(t, f, dir);
}

/* A run of far-off packets that agree with each other is a new epoch (a
 * capture spliced from two, a clock stepped); one packet alone is not. */
static int extends_run(const struct flow_clock *c, uint64_t ts_ns, int ahead)
{
	if (!c->cand_count || c->cand_ahead != ahead)
		return 0;
	if (ahead) /* a sparse link moves on in big steps: any time not before the run */
		return ts_ns + FLOW_CLOCK_JUMP_NS >= c->cand_ns;
	return ts_ns + FLOW_CLOCK_JUMP_NS >= c->cand_ns && ts_ns <= c->cand_ns + FLOW_CLOCK_AHEAD_NS;
}

enum flow_clock_step flow_clock_advance(struct flow_clock *c, const struct packet *p, uint64_t seq)
{
	uint64_t ts_ns = p->ts_ns;
	int back = ts_ns + FLOW_CLOCK_JUMP_NS < c->packet_ns;
	int ahead = c->packet_ns && ts_ns > c->packet_ns + FLOW_CLOCK_AHEAD_NS;
	if ((back && !p->first_of_file) || ahead) {
		if (extends_run(c, ts_ns, ahead)) {
			c->cand_count++;
			if (ts_ns > c->cand_ns)
				c->cand_ns = ts_ns;
		} else {
			if (c->cand_count && c->cand_ahead)
				c->outliers += c->cand_count;
			c->cand_ns = ts_ns;
			c->cand_seq = seq;
			c->cand_count = 1;
			c->cand_ahead = (uint8_t)ahead;
		}
		if (c->cand_count < FLOW_CLOCK_CONFIRM) {
			if (ahead)
				return FLOW_CLOCK_AHEAD;
			c->outliers++;
			return FLOW_CLOCK_OUTLIER;
		}
		ts_ns = c->cand_ns;
		if (ahead) {
			c->cand_count = 0;
			c->packet_ns = c->now_ns = ts_ns;
			c->next_tick_ns = ts_ns + FLOW_TICK_NS;
			return FLOW_CLOCK_EPOCH;
		}
	} else if (c->cand_count && c->cand_ahead) {
		c->outliers += c->cand_count; /* the run ahead was abandoned: it was lone packets */
	}
	c->cand_count = 0;
	/* Time running backwards for good means a new, older capture:
	 * nothing open can continue into it, so end every flow rather than
	 * time each packet out at once. */
	if (back) {
		c->now_ns = c->packet_ns = ts_ns;
		c->next_tick_ns = ts_ns + FLOW_TICK_NS;
		return FLOW_CLOCK_JUMP;
	}
	if (ts_ns > c->packet_ns)
		c->packet_ns = ts_ns;
	if (ts_ns > c->now_ns)
		c->now_ns = ts_ns;
	if (c->now_ns < c->next_tick_ns)
		return FLOW_CLOCK_SAME;
	c->next_tick_ns = c->now_ns + FLOW_TICK_NS;
	return FLOW_CLOCK_TICK;
}

/* The clock took a new epoch ahead. The flows of the packets that made it
 * (sequence numbers from `since_seq`) were aged at the old time; their idle
 * time starts now, or the run that moved the clock would end the very
 * sessions it began. */
static void restamp_newest(struct flow_table *t, uint64_t since_seq, uint64_t now_ns)
{
	for (int i = 0; i < AGE_CLASSES; i++)
		for (struct flow *f = t->ages[i].newest; f && f->age_seq >= since_seq; f = f->older)
			f->age_ns = now_ns;
}

void flow_table_step(struct flow_table *t, uint64_t seq, uint64_t now_ns, enum flow_clock_step step,
		     uint64_t epoch_seq)
{
	t->seq = seq;
	if (step == FLOW_CLOCK_EPOCH)
		restamp_newest(t, epoch_seq, now_ns);
	if (step == FLOW_CLOCK_JUMP) {
		t->stats.clock_jumps++;
		flow_table_flush(t);
		t->clock.packet_ns = now_ns;
	}
	t->clock.now_ns = now_ns;
	if (step == FLOW_CLOCK_TICK || step == FLOW_CLOCK_EPOCH)
		expire(t);
}

void flow_table_packet(struct flow_table *t, const struct packet *p)
{
	enum flow_clock_step step = flow_clock_advance(&t->clock, p, t->seq + 1);
	if (step == FLOW_CLOCK_JUMP) {
		t->stats.clock_jumps++;
		flow_table_flush(t);
	} else if (step == FLOW_CLOCK_TICK) {
		expire(t);
	} else if (step == FLOW_CLOCK_EPOCH) {
		restamp_newest(t, t->clock.cand_seq, t->clock.now_ns);
		expire(t);
	}
	t->stats.clock_outliers = t->clock.outliers;
	if (step == FLOW_CLOCK_OUTLIER) {
		struct packet q = *p;
		flow_packet_outlier(&q, t->clock.packet_ns);
		flow_table_packet_at(t, &q, t->seq + 1, t->clock.now_ns, flow_tuple_hash(t->key, p));
		return;
	}
	flow_table_packet_at(t, p, t->seq + 1, t->clock.now_ns, flow_tuple_hash(t->key, p));
}

void flow_packet_outlier(struct packet *p, uint64_t clock_ns)
{
	p->ts_ns = clock_ns;
	p->ts_outlier = 1;
}

void flow_table_packet_at(struct flow_table *t, const struct packet *p, uint64_t seq,
			  uint64_t now_ns, uint64_t hash)
{
	t->seq = seq;
	t->clock.now_ns = now_ns;
	STAGE_BEGIN(t0);
	int bypassed = flow_packet(t, p, hash);
	if (bypassed)
		STAGE_END(STAGE_BYPASSED, t0, p->payload_len);
}

/* Returns 1 when the packet belonged to a flow bypassed in both directions. */
static int flow_packet(struct flow_table *t, const struct packet *p, uint64_t hash)
{
	t->stats.packets_tcp++;

	int dir = 0;
	struct flow *f = flow_lookup(t, p, hash, &dir);
	int syn_only = (p->tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN;

	if (f && syn_only) {
		/* A retransmitted SYN joins its flow; any other SYN on a known
		 * 5-tuple is a new connection reusing it. */
		int same = dir == FLOW_TO_SERVER && f->dir[0].syn_seen && f->dir[0].isn == p->seq &&
			   f->state != FLOW_CLOSED;
		if (!same) {
			flow_finish(t, f, FLOW_END_REUSED);
			f = NULL;
		}
	}
	if (!f) {
		if (!(p->tcp_flags & TCPF_SYN) && p->payload_len == 0) {
			t->stats.packets_ignored++;
			return 0;
		}
		f = flow_create(t, p, hash);
		if (!f)
			return 0;
		dir = FLOW_TO_SERVER;
		if (memcmp(f->key.addr[0], p->src, p->family == 4 ? 4 : 16) ||
		    f->key.port[0] != p->sport)
			dir = FLOW_TO_CLIENT;
	}

	f->ts_last = p->ts_ns;
	f->age_seq = t->seq;
	f->age_ns = t->clock.now_ns;
	int bypassed = f->dir[0].bypass && f->dir[1].bypass;
	/* Off its age list while the packet may change its state (and so its
	 * list); back on the right one at the end. */
	age_unlink(t, f);
	process_packet(t, f, dir, p);
	age_push_newest(t, f);
	return bypassed;
}

static void process_packet(struct flow_table *t, struct flow *f, int dir, const struct packet *p)
{
	f->packets[dir]++;
	f->wire_bytes[dir] += p->payload_wire_len;

	if (t->consumer.packet)
		t->consumer.packet(t->consumer.ctx, f, dir, p);
	if (f->state == FLOW_CLOSED && f->rst_seen)
		return;

	struct reasm_sink s;
	sink_for(f, &s);
	if (p->ts_outlier)
		record_anomaly(f, dir, REASM_AN_TS_OUTLIER, 0);
	if (p->tcp_flags & TCPF_SYN)
		reasm_syn(&f->dir[dir], p->seq);
	if (p->tcp_flags & TCPF_ACK) {
		if (f->syn_data[!dir])
			settle_syn_data(t, f, !dir, p->ack, &s);
		reasm_ack(&f->dir[!dir], &s, !dir, p->ack);
		reasm_settle(&f->dir[!dir], 0, &t->budget);
	}
	if (p->payload_len > 0 && (p->tcp_flags & TCPF_SYN))
		hold_syn_data(t, f, dir, p);
	else if (p->payload_len > 0 || (p->tcp_flags & TCPF_FIN))
		feed_bytes(t, f, dir, p->seq + ((p->tcp_flags & TCPF_SYN) ? 1 : 0),
			   (p->tcp_flags & TCPF_FIN) != 0, p->payload, p->payload_len, &s);
	if (p->payload_len > 0 && f->state == FLOW_EMBRYONIC)
		f->state = FLOW_ESTABLISHED;

	if ((p->tcp_flags & TCPF_RST) && !rst_plausible(&f->dir[dir], p->seq)) {
		/* A blind or forged RST far from the stream would otherwise end
		 * decoding while the real session goes on (RFC 5961's concern). */
		record_anomaly(f, dir, REASM_AN_OUT_OF_WINDOW, 0);
		t->stats.rst_ignored++;
	} else if (p->tcp_flags & TCPF_RST) {
		f->rst_seen = 1;
		f->state = FLOW_CLOSED;
		f->end = FLOW_END_RST;
		for (int d = 0; d < 2; d++) {
			if (!f->dir[d].done)
				reasm_flush(&f->dir[d], &s, d, &t->budget);
			reasm_settle(&f->dir[d], 1, &t->budget);
		}
		return;
	}
	/* Closed when both FINs are seen, or one FIN on a flow whose other
	 * direction never showed a packet (asymmetric capture). */
	int fin0 = f->dir[0].fin_seen, fin1 = f->dir[1].fin_seen;
	if ((fin0 && fin1) || (fin0 && !f->packets[1]) || (fin1 && !f->packets[0])) {
		f->state = FLOW_CLOSED;
		if (f->end == FLOW_END_NONE)
			f->end = FLOW_END_FIN;
	}
}

void flow_table_tick(struct flow_table *t, uint64_t now_ns)
{
	/* Wall-clock ticks only ever move the clock forward; they take no
	 * part in spotting time jumps, which packet times alone decide. */
	if (now_ns > t->clock.now_ns) {
		t->clock.now_ns = now_ns;
		expire(t);
	}
}

void flow_table_flush(struct flow_table *t)
{
	struct flow *f;
	while ((f = oldest_flow(t)))
		flow_finish(t, f, FLOW_END_EOF);
}

void flow_table_free(struct flow_table *t)
{
	if (!t)
		return;
	struct flow *f;
	while ((f = oldest_flow(t))) {
		age_unlink(t, f);
		for (int d = 0; d < 2; d++) {
			reasm_free(&f->dir[d], &t->budget);
			drop_syn_data(t, f, d);
		}
		free(f->anomalies);
		free(f);
	}
	free(t->buckets);
	free(t);
}

void flow_bypass(struct flow *f, int dir)
{
	reasm_bypass(&f->dir[dir], &f->table->budget);
}

int flow_carried_payload(const struct flow *f)
{
	for (int d = 0; d < 2; d++)
		if (reasm_stream_bytes(&f->dir[d]) || f->dir[d].gap_bytes)
			return 1;
	return 0;
}

uint64_t flow_stream_bytes(const struct flow *f, int dir)
{
	return reasm_stream_bytes(&f->dir[dir]);
}

void flow_addr_str(const struct flow *f, int side, char *buf, size_t len)
{
	const uint8_t *a = f->key.addr[side];
	if (f->key.family == 4 && len >= 16) {
		/* Once or twice per session: glibc's inet_ntop goes through
		 * sprintf, which showed in profiles. */
		char *o = buf;
		for (int i = 0; i < 4; i++) {
			unsigned v = a[i];
			if (v >= 100)
				*o++ = (char)('0' + v / 100);
			if (v >= 10)
				*o++ = (char)('0' + v / 10 % 10);
			*o++ = (char)('0' + v % 10);
			*o++ = i < 3 ? '.' : 0;
		}
		return;
	}
	if (!inet_ntop(f->key.family == 4 ? AF_INET : AF_INET6, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}
