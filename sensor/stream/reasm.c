/*
 * reasm.c - per-direction TCP stream reassembly.
 * All sequence arithmetic is modulo 2^32 through seq_diff(), so wraparound
 * needs no special case. The in-order fast path hands payload straight from
 * the packet to the sink without copying; only out-of-order data is queued.
 */
#include "stream/reasm.h"

#include <stdlib.h>
#include <string.h>

#include "stream/caps.h"

/* Further than this from the expected byte is not plausibly the same stream. */
#define REASM_MAX_WINDOW (1u << 30)

struct reasm_seg {
	struct reasm_seg *next;
	uint32_t seq;
	uint32_t len;
	uint8_t data[];
};

static const char *const anomaly_names[REASM_AN_COUNT] = {
    [REASM_AN_GAP] = "gap",
    [REASM_AN_OVERLAP_CONFLICT] = "overlap-conflict",
    [REASM_AN_OUT_OF_WINDOW] = "out-of-window",
    [REASM_AN_QUEUE_FULL] = "queue-full",
    [REASM_AN_BUDGET_DROP] = "budget-drop",
    [REASM_AN_DATA_AFTER_FIN] = "data-after-fin",
    [REASM_AN_TS_OUTLIER] = "timestamp-outlier",
    [REASM_AN_SYN_DATA] = "syn-data",
    [REASM_AN_EVICTED] = "evicted",
};

const char *reasm_anomaly_name(enum reasm_anomaly a)
{
	return (unsigned)a < REASM_AN_COUNT ? anomaly_names[a] : "unknown";
}

static int32_t seq_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

/* What an allocation of n bytes really holds: glibc's chunk, n plus its
 * 8-byte header rounded up to 16, never under 32. Counting only n let a
 * flood of 1-byte segments hold twice the budget. */
static size_t alloc_cost(size_t n)
{
	size_t c = (n + 8 + 15) & ~(size_t)15;
	return c < 32 ? 32 : c;
}

static void *budget_alloc(struct reasm_budget *b, size_t n)
{
	if (b->used + alloc_cost(n) > b->limit) {
		b->over_limit++;
		return NULL;
	}
	void *p = malloc(n);
	if (!p) {
		b->oom++;
		return NULL;
	}
	b->used += alloc_cost(n);
	return p;
}

static void budget_free(struct reasm_budget *b, void *p, size_t n)
{
	if (!p)
		return;
	free(p);
	b->used -= alloc_cost(n);
}

void reasm_init(struct reasm_dir *d)
{
	memset(d, 0, sizeof(*d));
}

void reasm_syn(struct reasm_dir *d, uint32_t isn)
{
	d->isn = isn;
	d->syn_seen = 1;
	if (!d->base_known) {
		d->next_seq = isn + 1;
		d->base_known = 1;
	}
}

static void hist_write(struct reasm_dir *d, const uint8_t *p, size_t n)
{
	const size_t cap = d->hist_cap;

	if (n >= cap) {
		memcpy(d->hist, p + n - cap, cap);
		d->hist_pos = 0;
		d->hist_len = cap;
		return;
	}
	size_t first = cap - d->hist_pos;
	if (first > n)
		first = n;
	memcpy(d->hist + d->hist_pos, p, first);
	memcpy(d->hist, p + first, n - first);
	d->hist_pos = (uint32_t)((d->hist_pos + n) % cap);
	d->hist_len = d->hist_len + n > cap ? (uint32_t)cap : d->hist_len + (uint32_t)n;
}

/* Compares already delivered bytes [seq, seq+n) with what history holds. */
static int hist_conflicts(const struct reasm_dir *d, uint32_t seq, const uint8_t *p, uint32_t n)
{
	const uint32_t cap = d->hist_cap;

	if (!d->hist)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t back = d->next_seq - (seq + i);
		if (back == 0 || back > d->hist_len)
			continue;
		if (d->hist[(d->hist_pos + cap - back) % cap] != p[i])
			return 1;
	}
	return 0;
}

/* A retransmission repeats a segment, so the ring need only cover the
 * largest one delivered: a dialogue of short commands and replies keeps a
 * small ring, a message body gets the full REASM_HISTORY_BYTES. The bytes
 * held move over, oldest first. */
static void hist_grow(struct reasm_dir *d, uint32_t n, struct reasm_budget *b)
{
	uint32_t cap = REASM_HISTORY_MIN_BYTES;
	while (cap < n && cap < REASM_HISTORY_BYTES)
		cap *= 2;
	if (cap <= d->hist_cap)
		return;
	uint8_t *h = budget_alloc(b, cap);
	if (!h)
		return; /* the old ring, if any, stays */
	/* The held bytes end at hist_pos: the part before the wrap, if any,
	 * first, then the part from the start. */
	uint32_t len = d->hist_len, tail = len <= d->hist_pos ? len : d->hist_pos;
	if (len > tail)
		memcpy(h, d->hist + d->hist_cap - (len - tail), len - tail);
	if (tail)
		memcpy(h + (len - tail), d->hist + d->hist_pos - tail, tail);
	budget_free(b, d->hist, d->hist_cap);
	d->hist = h;
	d->hist_cap = cap;
	d->hist_len = len;
	d->hist_pos = len % cap;
}

static void emit(struct reasm_dir *d, const struct reasm_sink *s, int dir, const uint8_t *p,
		 uint32_t n, struct reasm_budget *b)
{
	if (n == 0)
		return;
	if (n > d->hist_cap && d->hist_cap < REASM_HISTORY_BYTES)
		hist_grow(d, n, b);
	if (d->hist)
		hist_write(d, p, n);
	d->next_seq += n;
	d->delivered += n;
	/* Last: the sink may ask for bypass, which frees the history. */
	s->data(s->ctx, dir, p, n);
}

static void seg_free(struct reasm_dir *d, struct reasm_seg *g, struct reasm_budget *b)
{
	d->queued_bytes -= g->len;
	d->queued_segs--;
	budget_free(b, g, sizeof(*g) + g->len);
}

static void drain(struct reasm_dir *d, const struct reasm_sink *s, int dir, struct reasm_budget *b)
{
	while (d->queue && !d->bypass && seq_diff(d->queue->seq, d->next_seq) <= 0) {
		struct reasm_seg *g = d->queue;
		d->queue = g->next;
		uint32_t off = d->next_seq - g->seq;
		uint32_t end = g->len;
		if (d->fin_seen && seq_diff(g->seq + end, d->fin_seq) > 0) /* see drop_after_fin() */
			end = seq_diff(d->fin_seq, g->seq) > 0 ? d->fin_seq - g->seq : 0;
		/* Unlinked before the sink runs, so a bypass from inside emit()
		 * cannot free it under us. */
		if (off < end)
			emit(d, s, dir, g->data + off, end - off, b);
		seg_free(d, g, b);
	}
}

static void skip_to_head(struct reasm_dir *d, const struct reasm_sink *s, int dir,
			 struct reasm_budget *b)
{
	uint32_t hole = d->queue->seq - d->next_seq;
	if (seq_diff(d->queue->seq, d->next_seq) > 0) {
		d->gap_bytes += hole;
		d->next_seq = d->queue->seq;
		s->gap(s->ctx, dir, hole);
	}
	drain(d, s, dir, b);
}

static struct reasm_seg *seg_new(struct reasm_dir *d, uint32_t seq, const uint8_t *p, uint32_t n,
				 struct reasm_budget *b)
{
	struct reasm_seg *g = budget_alloc(b, sizeof(*g) + n);
	if (!g)
		return NULL;
	g->next = NULL;
	g->seq = seq;
	g->len = n;
	memcpy(g->data, p, n);
	d->queued_bytes += n;
	d->queued_segs++;
	return g;
}

/*
 * Inserts [seq, seq+n) into the sorted queue, keeping only the bytes no
 * queued piece already holds (first copy wins) and comparing the overlap.
 */
static void queue_insert(struct reasm_dir *d, const struct reasm_sink *s, int dir, uint32_t seq,
			 const uint8_t *p, uint32_t n, struct reasm_budget *b)
{
	struct reasm_seg **link = &d->queue;
	uint32_t cur = seq;
	const uint32_t end = seq + n;
	int conflict = 0;

	while (*link && seq_diff(cur, end) < 0) {
		struct reasm_seg *q = *link;
		uint32_t qend = q->seq + q->len;
		if (seq_diff(qend, cur) <= 0) {
			link = &q->next;
			continue;
		}
		if (seq_diff(q->seq, end) >= 0)
			break;
		if (seq_diff(q->seq, cur) > 0) {
			struct reasm_seg *g = seg_new(d, cur, p + (cur - seq), q->seq - cur, b);
			if (!g)
				goto dropped;
			g->next = q;
			*link = g;
			link = &g->next;
			cur = q->seq;
		}
		uint32_t ov_end = seq_diff(qend, end) < 0 ? qend : end;
		uint32_t ov_len = ov_end - cur;
		if (memcmp(q->data + (cur - q->seq), p + (cur - seq), ov_len) != 0)
			conflict = 1;
		cur = ov_end;
		link = &q->next;
	}
	if (seq_diff(cur, end) < 0) {
		struct reasm_seg *g = seg_new(d, cur, p + (cur - seq), end - cur, b);
		if (!g)
			goto dropped;
		g->next = *link;
		*link = g;
	}
	if (conflict)
		s->anomaly(s->ctx, dir, REASM_AN_OVERLAP_CONFLICT, 0);
	return;
dropped:
	if (conflict)
		s->anomaly(s->ctx, dir, REASM_AN_OVERLAP_CONFLICT, 0);
	s->anomaly(s->ctx, dir, REASM_AN_BUDGET_DROP, end - cur);
}

static void enforce_caps(struct reasm_dir *d, const struct reasm_sink *s, int dir,
			 struct reasm_budget *b)
{
	while (d->queue && !d->bypass &&
	       (d->queued_bytes > REASM_DIR_MAX_BYTES || d->queued_segs > REASM_DIR_MAX_SEGMENTS)) {
		s->anomaly(s->ctx, dir, REASM_AN_QUEUE_FULL, d->queue->seq - d->next_seq);
		skip_to_head(d, s, dir, b);
	}
	/* The peer already acknowledged past the hole: that data is lost. */
	while (d->queue && !d->bypass && d->ack_known && seq_diff(d->ack_hi, d->queue->seq) >= 0)
		skip_to_head(d, s, dir, b);
}

/* Bytes queued past a FIN learned later were never part of the stream
 * (a sender cannot send past its FIN): dropped, and said so. A piece that
 * straddles the FIN keeps its allocation; drain() stops at the FIN. */
static void drop_after_fin(struct reasm_dir *d, const struct reasm_sink *s, int dir,
			   struct reasm_budget *b)
{
	struct reasm_seg **link = &d->queue;
	while (*link) {
		struct reasm_seg *g = *link;
		if (seq_diff(g->seq, d->fin_seq) >= 0) {
			*link = g->next;
			s->anomaly(s->ctx, dir, REASM_AN_DATA_AFTER_FIN, g->len);
			seg_free(d, g, b);
			continue;
		}
		if (seq_diff(g->seq + g->len, d->fin_seq) > 0)
			s->anomaly(s->ctx, dir, REASM_AN_DATA_AFTER_FIN, g->seq + g->len - d->fin_seq);
		link = &g->next;
	}
}

static void check_done(struct reasm_dir *d)
{
	if (d->fin_seen && d->next_seq == d->fin_seq)
		d->done = 1;
}

enum reasm_result reasm_segment(struct reasm_dir *d, const struct reasm_sink *s, int dir,
				uint32_t seq, int fin, const uint8_t *data, uint32_t len,
				struct reasm_budget *b)
{
	if (d->bypass) {
		uint32_t end = seq + len;
		if (!d->base_known) {
			/* Bypassed before this direction sent anything: its first
			 * segment sets the base, or counts would be garbage. */
			d->base_known = 1;
			d->next_seq = d->bypass_seq = d->bypass_hi = seq;
		}
		if (fin && !d->fin_seen) {
			d->fin_seen = 1;
			d->fin_seq = end;
		}
		if (seq_diff(end, d->bypass_hi) > 0 &&
		    seq_diff(end, d->bypass_hi) < (int32_t)REASM_MAX_WINDOW)
			d->bypass_hi = end;
		return REASM_OK;
	}
	if (!d->base_known) {
		d->next_seq = seq;
		d->base_known = 1;
	}
	int32_t rel = seq_diff(seq, d->next_seq);
	if (rel > (int32_t)REASM_MAX_WINDOW || rel < -(int32_t)REASM_MAX_WINDOW) {
		s->anomaly(s->ctx, dir, REASM_AN_OUT_OF_WINDOW, len);
		return REASM_OK;
	}
	if (fin && !d->fin_seen) {
		d->fin_seen = 1;
		d->fin_seq = seq + len;
		drop_after_fin(d, s, dir, b);
	}
	if (len == 0) {
		check_done(d);
		return REASM_OK;
	}
	if (rel < 0) {
		uint32_t old = (uint32_t)-rel < len ? (uint32_t)-rel : len;
		if (hist_conflicts(d, seq, data, old))
			s->anomaly(s->ctx, dir, REASM_AN_OVERLAP_CONFLICT, 0);
		d->retrans_bytes += old;
		if (old == len) {
			check_done(d);
			return REASM_OK;
		}
		data += old;
		len -= old;
		seq += old;
		rel = 0;
	}
	if (d->fin_seen && seq_diff(seq + len, d->fin_seq) > 0) {
		if (seq_diff(seq, d->fin_seq) >= 0) {
			s->anomaly(s->ctx, dir, REASM_AN_DATA_AFTER_FIN, len);
			return REASM_OK;
		}
		s->anomaly(s->ctx, dir, REASM_AN_DATA_AFTER_FIN, (seq + len) - d->fin_seq);
		len = d->fin_seq - seq;
	}
	if (rel == 0 && !d->queue) {
		emit(d, s, dir, data, len, b);
		check_done(d);
		return REASM_OK;
	}
	if (b->used + alloc_cost(len + sizeof(struct reasm_seg)) > b->limit)
		return REASM_OVER_BUDGET;
	if (rel == 0) {
		/* Bytes up to the first queued piece are new; the rest overlap the
		 * queue, whose copy came first. */
		uint32_t head_off = d->queue->seq - seq;
		uint32_t first = head_off < len ? head_off : len;
		emit(d, s, dir, data, first, b);
		if (first < len && !d->bypass)
			queue_insert(d, s, dir, seq + first, data + first, len - first, b);
		if (!d->bypass)
			drain(d, s, dir, b);
	} else {
		queue_insert(d, s, dir, seq, data, len, b);
	}
	enforce_caps(d, s, dir, b);
	check_done(d);
	return REASM_OK;
}

void reasm_drop(struct reasm_dir *d, const struct reasm_sink *s, int dir, uint32_t len)
{
	(void)d;
	s->anomaly(s->ctx, dir, REASM_AN_BUDGET_DROP, len);
}

void reasm_ack(struct reasm_dir *d, const struct reasm_sink *s, int dir, uint32_t ack)
{
	(void)s;
	(void)dir;
	if (!d->base_known || d->bypass)
		return;
	int32_t rel = seq_diff(ack, d->next_seq);
	if (rel > (int32_t)REASM_MAX_WINDOW || rel < -(int32_t)REASM_MAX_WINDOW)
		return;
	if (!d->ack_known || seq_diff(ack, d->ack_hi) > 0) {
		d->ack_hi = ack;
		d->ack_known = 1;
	}
}

void reasm_settle(struct reasm_dir *d, int reset, struct reasm_budget *b)
{
	if (!d->hist)
		return;
	if (!reset && !(d->done && d->fin_seen && d->ack_known &&
			seq_diff(d->ack_hi, d->fin_seq + 1) >= 0))
		return;
	budget_free(b, d->hist, d->hist_cap);
	d->hist = NULL;
	d->hist_cap = 0;
	d->hist_len = 0;
	d->hist_pos = 0;
}

void reasm_flush(struct reasm_dir *d, const struct reasm_sink *s, int dir, struct reasm_budget *b)
{
	if (d->bypass || !d->base_known) {
		d->done = 1;
		return;
	}
	if (d->ack_known) {
		/* Let the ACK rule claim holes below what the peer acknowledged. */
		enforce_caps(d, s, dir, b);
	}
	while (d->queue && !d->bypass)
		skip_to_head(d, s, dir, b);
	if (!d->bypass && d->ack_known) {
		/* Data the peer acknowledged after the last byte we saw. */
		uint32_t lim = d->ack_hi;
		if (d->fin_seen && seq_diff(lim, d->fin_seq) > 0)
			lim = d->fin_seq;
		if (seq_diff(lim, d->next_seq) > 0) {
			uint32_t hole = lim - d->next_seq;
			d->gap_bytes += hole;
			d->next_seq = lim;
			s->gap(s->ctx, dir, hole);
		}
	}
	d->done = 1;
}

static void queue_free(struct reasm_dir *d, struct reasm_budget *b)
{
	while (d->queue) {
		struct reasm_seg *g = d->queue;
		d->queue = g->next;
		seg_free(d, g, b);
	}
}

void reasm_bypass(struct reasm_dir *d, struct reasm_budget *b)
{
	if (d->bypass)
		return;
	uint32_t hi = d->next_seq;
	for (struct reasm_seg *g = d->queue; g; g = g->next)
		if (seq_diff(g->seq + g->len, hi) > 0)
			hi = g->seq + g->len;
	queue_free(d, b);
	budget_free(b, d->hist, d->hist_cap);
	d->hist = NULL;
	d->hist_cap = 0;
	d->hist_len = 0;
	d->hist_pos = 0;
	d->bypass = 1;
	d->bypass_seq = d->next_seq;
	d->bypass_hi = hi;
}

uint64_t reasm_stream_bytes(const struct reasm_dir *d)
{
	return d->delivered + (d->bypass ? (uint32_t)(d->bypass_hi - d->bypass_seq) : 0);
}

void reasm_free(struct reasm_dir *d, struct reasm_budget *b)
{
	queue_free(d, b);
	budget_free(b, d->hist, d->hist_cap);
	d->hist = NULL;
	d->hist_cap = 0;
	d->hist_len = 0;
	d->hist_pos = 0;
}
