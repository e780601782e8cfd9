/*
 * observed.c - passive DNS in a fixed table: two hash indexes (the answer
 * itself, to refresh it; its value, for the lookups), a list in order of
 * use, and a heap in order of expiry. Room is made from the heap's top if
 * that answer has expired, else from the cold end of the list. Lookups and
 * list moves are O(1); the heap costs at most log2(cap) = 16 steps per
 * answer added, refreshed or evicted, and makes "expired first" exact,
 * which looking at a few entries at the cold end would not.
 */
#include "db/policy/observed.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/siphash.h"

#define INDEX_SLOTS (OBSERVED_MAX_ENTRIES * 2)
#define NONE        (-1)
#define NAME_LEN    256
#define VALUE_LEN   512

enum index_kind {
	BY_ANSWER, /* (kind, name, value): one entry per distinct answer */
	BY_VALUE,  /* (kind, value): the entries a lookup walks */
	INDEXES
};

struct link {
	int32_t prev, next;
};

struct entry {
	uint8_t kind, ad;
	uint8_t unsaved; /* seen on the wire this run: loaded rows are in the table already */
	char name[NAME_LEN];
	char value[VALUE_LEN];
	char resolver[64];
	uint32_t ttl; /* as answered */
	int64_t seen_at, expires_at;
	uint32_t slot[INDEXES];
	struct link chain[INDEXES]; /* doubly linked: an eviction unlinks in O(1) */
	struct link use;
	int32_t heap_at;
};

struct observed {
	struct entry *e;
	int32_t *heap; /* entry numbers, soonest expiry on top */
	uint32_t n;    /* entries 0..n-1 are in use */
	int32_t hottest, coldest;
	/* The newest capture time of this run (answers and judged sessions):
	 * what "expired" is measured against when room is made or rows are
	 * saved. Rows loaded from earlier runs do not move it. */
	int64_t newest;
	uint64_t evicted, evicted_unexpired;
	int32_t index[INDEXES][INDEX_SLOTS];
	uint8_t key[16];
};

static const char *const kind_names[] = {"mx", "address", "tlsa", "txt"};

struct observed *observed_new(void)
{
	struct observed *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->e = calloc(OBSERVED_MAX_ENTRIES, sizeof(*o->e));
	o->heap = calloc(OBSERVED_MAX_ENTRIES, sizeof(*o->heap));
	if (!o->e || !o->heap) {
		observed_free(o);
		return NULL;
	}
	memset(o->index, 0xff, sizeof(o->index));
	o->hottest = o->coldest = NONE;
	if (getrandom(o->key, sizeof(o->key), 0) != (ssize_t)sizeof(o->key))
		memset(o->key, 0x6f, sizeof(o->key));
	return o;
}

void observed_free(struct observed *o)
{
	if (!o)
		return;
	free(o->e);
	free(o->heap);
	free(o);
}

/* RFC 2181 §8: a TTL is 0 to 2^31-1, and one with the top bit set is read
 * as 0. A TTL 0 answer was given for the transaction in progress only (RFC
 * 1035 §3.2.1): it counts for the second it was seen, no longer. */
static uint32_t effective_ttl(uint32_t ttl)
{
	if (ttl > 0x7fffffffu)
		return 0;
	return ttl > OBSERVED_MAX_TTL ? OBSERVED_MAX_TTL : ttl;
}

static uint32_t slot_of(const struct observed *o, int kind, const char *name, const char *value)
{
	uint8_t buf[1 + NAME_LEN + VALUE_LEN];
	size_t n = 0;
	buf[n++] = (uint8_t)kind;
	if (name) {
		size_t l = strnlen(name, NAME_LEN - 1);
		memcpy(buf + n, name, l);
		n += l;
		buf[n++] = 0;
	}
	size_t l = strnlen(value, VALUE_LEN - 1);
	memcpy(buf + n, value, l);
	n += l;
	return (uint32_t)(siphash24(o->key, buf, n) % INDEX_SLOTS);
}

static void index_insert(struct observed *o, int32_t i, enum index_kind k, uint32_t slot)
{
	struct entry *x = &o->e[i];
	x->slot[k] = slot;
	x->chain[k].prev = NONE;
	x->chain[k].next = o->index[k][slot];
	if (x->chain[k].next != NONE)
		o->e[x->chain[k].next].chain[k].prev = i;
	o->index[k][slot] = i;
}

static void index_remove(struct observed *o, int32_t i, enum index_kind k)
{
	const struct entry *x = &o->e[i];
	if (x->chain[k].prev != NONE)
		o->e[x->chain[k].prev].chain[k].next = x->chain[k].next;
	else
		o->index[k][x->slot[k]] = x->chain[k].next;
	if (x->chain[k].next != NONE)
		o->e[x->chain[k].next].chain[k].prev = x->chain[k].prev;
}

static void use_unlink(struct observed *o, int32_t i)
{
	const struct link *u = &o->e[i].use;
	if (u->prev != NONE)
		o->e[u->prev].use.next = u->next;
	else
		o->hottest = u->next;
	if (u->next != NONE)
		o->e[u->next].use.prev = u->prev;
	else
		o->coldest = u->prev;
}

static void use_push_hot(struct observed *o, int32_t i)
{
	struct link *u = &o->e[i].use;
	u->prev = NONE;
	u->next = o->hottest;
	if (o->hottest != NONE)
		o->e[o->hottest].use.prev = i;
	else
		o->coldest = i;
	o->hottest = i;
}

/* Rows loaded from the database go behind everything this run uses. */
static void use_push_cold(struct observed *o, int32_t i)
{
	struct link *u = &o->e[i].use;
	u->next = NONE;
	u->prev = o->coldest;
	if (o->coldest != NONE)
		o->e[o->coldest].use.next = i;
	else
		o->hottest = i;
	o->coldest = i;
}

static void touch(struct observed *o, int32_t i)
{
	if (o->hottest == i)
		return;
	use_unlink(o, i);
	use_push_hot(o, i);
}

static void heap_set(struct observed *o, uint32_t at, int32_t i)
{
	o->heap[at] = i;
	o->e[i].heap_at = (int32_t)at;
}

static int64_t heap_expiry(const struct observed *o, uint32_t at)
{
	return o->e[o->heap[at]].expires_at;
}

/* Moves the entry at `at` up or down to its place; heap size o->n. */
static void heap_fix(struct observed *o, uint32_t at)
{
	int32_t i = o->heap[at];
	int64_t t = o->e[i].expires_at;
	while (at > 0 && heap_expiry(o, (at - 1) / 2) > t) {
		heap_set(o, at, o->heap[(at - 1) / 2]);
		at = (at - 1) / 2;
	}
	for (;;) {
		uint32_t c = 2 * at + 1;
		if (c >= o->n)
			break;
		if (c + 1 < o->n && heap_expiry(o, c + 1) < heap_expiry(o, c))
			c++;
		if (heap_expiry(o, c) >= t)
			break;
		heap_set(o, at, o->heap[c]);
		at = c;
	}
	heap_set(o, at, i);
}

/* Frees the entry that should go first and returns its number. */
static int32_t evict(struct observed *o)
{
	int32_t i = o->heap[0];
	if (o->e[i].expires_at >= o->newest) {
		i = o->coldest;
		o->evicted_unexpired++;
	}
	o->evicted++;
	index_remove(o, i, BY_ANSWER);
	index_remove(o, i, BY_VALUE);
	use_unlink(o, i);
	uint32_t at = (uint32_t)o->e[i].heap_at;
	int32_t last = o->heap[--o->n];
	if (last != i) {
		heap_set(o, at, last);
		heap_fix(o, at);
	}
	return i;
}

static void copy_cut(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = 0;
}

static void put(struct observed *o, enum observed_kind kind, const char *name_in,
		const char *value_in, int ad, const char *resolver, uint32_t ttl, int64_t seen_at,
		int64_t expires_at, int from_database)
{
	/* Compared as stored: a long value that was cut still finds itself. */
	char name[NAME_LEN], value[VALUE_LEN];
	copy_cut(name, sizeof(name), name_in);
	copy_cut(value, sizeof(value), value_in);
	uint32_t answer_slot = slot_of(o, kind, name, value);
	for (int32_t i = o->index[BY_ANSWER][answer_slot]; i != NONE;
	     i = o->e[i].chain[BY_ANSWER].next) {
		struct entry *x = &o->e[i];
		if (x->kind != kind || strcmp(x->name, name) || strcmp(x->value, value))
			continue;
		/* The later answer is the one that holds (a capture read out of
		 * order may bring an older one after it). */
		if (seen_at >= x->seen_at) {
			x->ad = (uint8_t)ad;
			copy_cut(x->resolver, sizeof(x->resolver), resolver);
			x->ttl = ttl;
			x->seen_at = seen_at;
			x->expires_at = expires_at;
			x->unsaved = !from_database;
			heap_fix(o, (uint32_t)x->heap_at);
		}
		touch(o, i);
		return;
	}
	int32_t i = o->n < OBSERVED_MAX_ENTRIES ? (int32_t)o->n : evict(o);
	struct entry *x = &o->e[i];
	x->kind = (uint8_t)kind;
	x->ad = (uint8_t)ad;
	memcpy(x->name, name, sizeof(name));
	memcpy(x->value, value, sizeof(value));
	copy_cut(x->resolver, sizeof(x->resolver), resolver);
	x->ttl = ttl;
	x->seen_at = seen_at;
	x->expires_at = expires_at;
	x->unsaved = !from_database;
	index_insert(o, i, BY_ANSWER, answer_slot);
	index_insert(o, i, BY_VALUE, slot_of(o, kind, NULL, value));
	if (from_database)
		use_push_cold(o, i);
	else
		use_push_hot(o, i);
	o->n++;
	heap_set(o, o->n - 1, i);
	heap_fix(o, o->n - 1);
}

void observed_add(struct observed *o, enum observed_kind kind, const char *name, const char *value,
		  int ad, const char *resolver, uint32_t ttl, int64_t seen_at)
{
	if (!o || (unsigned)kind > OBS_TXT)
		return;
	if (seen_at > o->newest)
		o->newest = seen_at;
	put(o, kind, name, value, ad, resolver, ttl, seen_at, seen_at + effective_ttl(ttl), 0);
}

/* Owners of unexpired answers of `kind` whose value is `value`. */
static int owners_of(struct observed *o, enum observed_kind kind, const char *value, int64_t now,
		     const char **out, int max)
{
	int n = 0;
	if (!o)
		return 0;
	if (now > o->newest)
		o->newest = now;
	for (int32_t i = o->index[BY_VALUE][slot_of(o, kind, NULL, value)]; i != NONE && n < max;
	     i = o->e[i].chain[BY_VALUE].next) {
		const struct entry *x = &o->e[i];
		if (x->kind == kind && x->expires_at >= now && !strcmp(x->value, value)) {
			out[n++] = x->name;
			touch(o, i);
		}
	}
	return n;
}

int observed_hosts_at(struct observed *o, const char *address, int64_t now, const char **out,
		      int max)
{
	return owners_of(o, OBS_ADDR, address, now, out, max);
}

int observed_domains_of(struct observed *o, const char *host, int64_t now, const char **out,
			int max)
{
	return owners_of(o, OBS_MX, host, now, out, max);
}

uint64_t observed_count(const struct observed *o)
{
	return o ? o->n : 0;
}

uint64_t observed_evicted(const struct observed *o)
{
	return o ? o->evicted : 0;
}

uint64_t observed_evicted_unexpired(const struct observed *o)
{
	return o ? o->evicted_unexpired : 0;
}

int observed_save(const struct observed *o, struct db *d)
{
	if (!o)
		return 0;
	for (uint32_t i = 0; i < o->n; i++) {
		const struct entry *x = &o->e[i];
		if (!x->unsaved || x->expires_at < o->newest)
			continue;
		if (db_observed_put(d, kind_names[x->kind], x->name, x->value, x->ad, x->resolver,
				    x->ttl, x->seen_at, x->expires_at))
			return -1;
	}
	return db_observed_trim(d, o->newest, OBSERVED_MAX_ENTRIES);
}

static int load_row(void *ctx, const char *const *c, int n)
{
	if (n < 8 || !c[0] || !c[1] || !c[2] || !c[6] || !c[7])
		return 0;
	for (int k = 0; k <= OBS_TXT; k++)
		if (!strcmp(c[0], kind_names[k]))
			put(ctx, (enum observed_kind)k, c[1], c[2], c[3] && atoi(c[3]),
			    c[4] ? c[4] : "", (uint32_t)strtoul(c[5] ? c[5] : "0", NULL, 10),
			    strtoll(c[6], NULL, 10), strtoll(c[7], NULL, 10), 1);
	return 0;
}

int observed_load(struct observed *o, struct db *d)
{
	return db_each_observed(d, OBSERVED_MAX_ENTRIES, load_row, o);
}
