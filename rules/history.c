/*
 * history.c - learned server history: a keyed hash of server addresses,
 * bounded at HISTORY_MAX_ENTRIES (new servers beyond it are not learned).
 */
#include "rules/history.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "decoder/tls.h"
#include "util/siphash.h"

/* Entries lie in one dense array, in the order learned; the open-addressing
 * index holds their positions (0: empty slot, else position + 1). Growing
 * rehashes only the small index, and the array's pages are written once. */
struct history {
	struct history_entry *entries;
	size_t used, room;
	uint32_t *index;
	size_t cap; /* index slots, a power of two, at least twice `used` */
	uint8_t key[16];
};

struct history *history_new(void)
{
	struct history *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->cap = 1024;
	h->index = calloc(h->cap, sizeof(*h->index));
	if (!h->index) {
		free(h);
		return NULL;
	}
	if (getrandom(h->key, sizeof(h->key), 0) != (ssize_t)sizeof(h->key))
		memset(h->key, 0x5a, sizeof(h->key));
	return h;
}

void history_free(struct history *h)
{
	if (!h)
		return;
	free(h->entries);
	free(h->index);
	free(h);
}

static uint64_t hash_of(const struct history *h, const char *address)
{
	return siphash24(h->key, (const uint8_t *)address, strlen(address));
}

/* The index slot of `address`: its entry's, or the empty one it would take. */
static uint32_t *slot_of(const struct history *h, const char *address, uint64_t hash)
{
	size_t mask = h->cap - 1;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		uint32_t at = h->index[i];
		if (!at)
			return &h->index[i];
		const struct history_entry *e = &h->entries[at - 1];
		if (e->hash == hash && !strcmp(e->address, address))
			return &h->index[i];
	}
}

static int grow_index(struct history *h)
{
	size_t cap = h->cap * 2;
	uint32_t *n = calloc(cap, sizeof(*n));
	if (!n)
		return -1;
	free(h->index);
	h->index = n;
	h->cap = cap;
	for (size_t i = 0; i < h->used; i++)
		*slot_of(h, h->entries[i].address, h->entries[i].hash) = (uint32_t)i + 1;
	return 0;
}

const struct history_entry *history_get(const struct history *h, const char *address)
{
	if (!h || !address[0])
		return NULL;
	uint32_t at = *slot_of(h, address, hash_of(h, address));
	return at ? &h->entries[at - 1] : NULL;
}

static struct history_entry *get_or_add(struct history *h, const char *address)
{
	if (!address[0] || strlen(address) >= sizeof(h->entries[0].address))
		return NULL;
	uint64_t hash = hash_of(h, address);
	uint32_t *slot = slot_of(h, address, hash);
	if (*slot)
		return &h->entries[*slot - 1];
	if (h->used >= HISTORY_MAX_ENTRIES)
		return NULL;
	if (h->used == h->room) {
		size_t room = h->room ? h->room * 2 : 256;
		struct history_entry *grown = realloc(h->entries, room * sizeof(*grown));
		if (!grown)
			return NULL;
		h->entries = grown;
		h->room = room;
	}
	if ((h->used + 1) * 2 > h->cap) {
		if (grow_index(h))
			return NULL;
		slot = slot_of(h, address, hash);
	}
	struct history_entry *e = &h->entries[h->used];
	memset(e, 0, sizeof(*e));
	strcpy(e->address, address);
	e->hash = hash;
	*slot = (uint32_t)++h->used;
	return e;
}

static uint8_t version_bit(uint16_t v)
{
	return v >= TLS_V10 && v <= TLS_V13 ? (uint8_t)(1u << (v - TLS_V10)) : 0;
}

void history_note(struct history *h, const char *address, int64_t ts, int starttls_offered,
		  uint16_t tls_version)
{
	struct history_entry *e = h ? get_or_add(h, address) : NULL;
	if (!e)
		return;
	if (!e->first_seen || ts < e->first_seen)
		e->first_seen = ts;
	if (ts > e->last_seen)
		e->last_seen = ts;
	/* A capture analysed again brings sessions the database counted
	 * already: count only what is newer than what it knew. */
	if (ts > e->known_until)
		e->sessions++;
	if (starttls_offered)
		e->starttls_offered = 1;
	e->tls_versions |= version_bit(tls_version);
	e->dirty = 1;
}

static int load_row(void *ctx, const struct db_history *r)
{
	struct history *h = ctx;
	struct history_entry *e = get_or_add(h, r->address);
	if (!e)
		return 0;
	e->starttls_offered |= r->starttls_offered != 0;
	e->tls_versions |= (uint8_t)r->tls_versions;
	if (!e->first_seen || (r->first_seen && r->first_seen < e->first_seen))
		e->first_seen = r->first_seen;
	if (r->last_seen > e->last_seen)
		e->last_seen = r->last_seen;
	if (r->last_seen > e->known_until)
		e->known_until = r->last_seen;
	e->sessions += (uint64_t)r->sessions;
	return 0;
}

int history_load(struct history *h, struct db *d)
{
	return db_each_history(d, load_row, h);
}

int history_save(struct history *h, struct db *d)
{
	for (size_t i = 0; i < h->used; i++) {
		struct history_entry *e = &h->entries[i];
		if (!e->dirty)
			continue;
		struct db_history r = {.starttls_offered = e->starttls_offered,
				       .tls_versions = e->tls_versions,
				       .first_seen = e->first_seen,
				       .last_seen = e->last_seen,
				       .sessions = (int64_t)e->sessions};
		memcpy(r.address, e->address, sizeof(r.address));
		if (db_history_put(d, &r))
			return -1;
		e->dirty = 0;
	}
	return 0;
}
