/*
 * certcache.c - a mutex-guarded hash table with an LRU list. Each entry
 * holds one reference for the table; each caller of certcache_get()
 * another. The last release frees it.
 */
#include "decoder/certcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/siphash.h"

#define BUCKETS 8192 /* a power of two, twice the entry cap */

struct entry {
	struct entry *chain;            /* next in the bucket */
	struct entry *newer, *older;    /* LRU list */
	atomic_uint refs;
	uint64_t hash;
	size_t der_len;
	size_t bytes; /* accounted against CERTCACHE_MAX_BYTES */
	const struct x509_info *info;
	uint8_t der[]; /* the certificate, to confirm a match */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *table[BUCKETS];
static struct entry *newest, *oldest;
static uint8_t key[16];
static int keyed;
static struct certcache_stats st;

static void unref(struct entry *e)
{
	if (atomic_fetch_sub(&e->refs, 1) == 1) {
		free((void *)e->info);
		free(e);
	}
}

static void lru_unlink(struct entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		oldest = e->newer;
	e->newer = e->older = NULL;
}

static void lru_push(struct entry *e)
{
	e->older = newest;
	e->newer = NULL;
	if (newest)
		newest->newer = e;
	newest = e;
	if (!oldest)
		oldest = e;
}

/* Takes the table's reference away from e; caller holds mu. */
static void drop(struct entry *e)
{
	struct entry **pp = &table[e->hash & (BUCKETS - 1)];
	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	lru_unlink(e);
	st.entries--;
	st.bytes -= e->bytes;
	unref(e);
}

static struct entry *find(uint64_t h, const uint8_t *der, size_t len)
{
	for (struct entry *e = table[h & (BUCKETS - 1)]; e; e = e->chain)
		if (e->hash == h && e->der_len == len && !memcmp(e->der, der, len))
			return e;
	return NULL;
}

const struct x509_info *certcache_get(const uint8_t *der, size_t len)
{
	pthread_mutex_lock(&mu);
	if (!keyed) {
		if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
			memcpy(key, "mxwatch-certkey!", 16); /* balance only */
		keyed = 1;
	}
	uint64_t h = siphash13(key, der, len);
	struct entry *e = find(h, der, len);
	if (e) {
		st.hits++;
		lru_unlink(e);
		lru_push(e);
		atomic_fetch_add(&e->refs, 1);
		pthread_mutex_unlock(&mu);
		return e->info;
	}
	st.misses++;
	pthread_mutex_unlock(&mu);

	/* Parsed outside the lock: two workers meeting the same new
	 * certificate at once both parse it, and the second keeps the
	 * first's entry. */
	struct x509_info *info = x509_describe(der, len);
	e = info ? malloc(sizeof(*e) + len) : NULL;
	if (!e) {
		free(info);
		return NULL;
	}
	info->owner = e;
	memset(e, 0, sizeof(*e));
	e->hash = h;
	e->der_len = len;
	e->bytes = sizeof(*e) + len + info->size;
	e->info = info;
	memcpy(e->der, der, len);
	atomic_init(&e->refs, 1); /* the caller's */
	if (e->bytes > CERTCACHE_MAX_BYTES / 16)
		return info; /* too big to keep: described for this caller only */

	pthread_mutex_lock(&mu);
	struct entry *other = find(h, der, len);
	if (other) {
		atomic_fetch_add(&other->refs, 1);
		pthread_mutex_unlock(&mu);
		unref(e);
		return other->info;
	}
	atomic_fetch_add(&e->refs, 1); /* the table's */
	e->chain = table[h & (BUCKETS - 1)];
	table[h & (BUCKETS - 1)] = e;
	lru_push(e);
	st.entries++;
	st.bytes += e->bytes;
	while (oldest && (st.entries > CERTCACHE_MAX_ENTRIES || st.bytes > CERTCACHE_MAX_BYTES)) {
		drop(oldest);
		st.evictions++;
	}
	pthread_mutex_unlock(&mu);
	return info;
}

void certcache_release(const struct x509_info *info)
{
	if (info)
		unref(info->owner);
}

const struct x509_info *certcache_ref(const struct x509_info *info)
{
	struct entry *e = info->owner;
	atomic_fetch_add(&e->refs, 1);
	return info;
}

const uint8_t *certcache_der(const struct x509_info *info, size_t *len)
{
	const struct entry *e = info->owner;
	*len = e->der_len;
	return e->der;
}

void certcache_stats(struct certcache_stats *out)
{
	pthread_mutex_lock(&mu);
	*out = st;
	pthread_mutex_unlock(&mu);
}

void certcache_clear(void)
{
	pthread_mutex_lock(&mu);
	while (oldest)
		drop(oldest);
	pthread_mutex_unlock(&mu);
}
