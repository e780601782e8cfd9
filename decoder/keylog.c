/*
 * keylog.c - NSS key log files read and followed, server handshake secrets
 * indexed by client random (see keylog.h).
 *
 * Entries live in a ring of max_entries slots: a new secret takes the slot
 * after the newest, so the oldest goes first. A chained hash over the ring
 * finds them; a slot's chain link is undone when the slot is reused.
 */
#include "decoder/keylog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NO_SLOT UINT32_MAX

struct keylog_entry {
	uint8_t random[32];
	uint8_t secret[KEYLOG_MAX_SECRET];
	uint8_t len; /* 0: slot unused */
	uint32_t next; /* chain of its bucket */
};

struct keylog_file {
	char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	off_t offset;
	/* The file's first bytes as read: a log truncated and written again
	 * to the same length or more is told apart by them. */
	char head[64];
	size_t head_len;
	char line[KEYLOG_MAX_LINE];
	size_t line_len;
	int overlong; /* the line being read is past KEYLOG_MAX_LINE: skip it */
};

struct keylog {
	pthread_mutex_t mu;
	struct keylog_entry *ring;
	uint32_t cap, next_slot;
	uint32_t *buckets;
	uint32_t mask;
	struct keylog_file files[KEYLOG_MAX_FILES];
	int n_files;
	struct keylog_stats stats;
};

static const char SERVER_LABEL[] = "SERVER_HANDSHAKE_TRAFFIC_SECRET";

struct keylog *keylog_new(uint32_t max_entries)
{
	struct keylog *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->cap = max_entries ? max_entries : 1;
	uint32_t nb = 1;
	while (nb < k->cap)
		nb <<= 1;
	k->mask = nb - 1;
	k->ring = calloc(k->cap, sizeof(*k->ring));
	k->buckets = malloc(sizeof(*k->buckets) * nb);
	if (!k->ring || !k->buckets) {
		free(k->ring);
		free(k->buckets);
		free(k);
		return NULL;
	}
	for (uint32_t i = 0; i < nb; i++)
		k->buckets[i] = NO_SLOT;
	pthread_mutex_init(&k->mu, NULL);
	return k;
}

void keylog_free(struct keylog *k)
{
	if (!k)
		return;
	for (int i = 0; i < k->n_files; i++) {
		if (k->files[i].fd >= 0)
			close(k->files[i].fd);
		free(k->files[i].path);
	}
	pthread_mutex_destroy(&k->mu);
	free(k->ring);
	free(k->buckets);
	free(k);
}

static uint32_t bucket_of(const struct keylog *k, const uint8_t random[32])
{
	uint32_t h;
	memcpy(&h, random, sizeof(h)); /* a client random is random already */
	return h & k->mask;
}

static struct keylog_entry *find(struct keylog *k, const uint8_t random[32])
{
	for (uint32_t i = k->buckets[bucket_of(k, random)]; i != NO_SLOT; i = k->ring[i].next)
		if (!memcmp(k->ring[i].random, random, 32))
			return &k->ring[i];
	return NULL;
}

static void unlink_slot(struct keylog *k, uint32_t slot)
{
	uint32_t *link = &k->buckets[bucket_of(k, k->ring[slot].random)];
	while (*link != NO_SLOT && *link != slot)
		link = &k->ring[*link].next;
	if (*link == slot)
		*link = k->ring[slot].next;
}

static void put(struct keylog *k, const uint8_t random[32], const uint8_t *secret, size_t len)
{
	struct keylog_entry *e = find(k, random);
	if (!e) {
		uint32_t slot = k->next_slot;
		k->next_slot = (slot + 1) % k->cap;
		if (k->ring[slot].len) {
			unlink_slot(k, slot);
			k->stats.evicted++;
			k->stats.secrets--;
		}
		e = &k->ring[slot];
		memcpy(e->random, random, 32);
		uint32_t b = bucket_of(k, random);
		e->next = k->buckets[b];
		k->buckets[b] = slot;
		k->stats.secrets++;
	}
	memcpy(e->secret, secret, len);
	e->len = (uint8_t)len;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hex digits of exactly 2*max or fewer bytes up to a space or the end;
 * returns the bytes decoded, or -1. */
static int unhex(const char *s, size_t n, uint8_t *out, size_t max)
{
	if (n == 0 || n % 2 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return (int)(n / 2);
}

/* "LABEL <client random hex> <secret hex>"; '#' lines and blank lines are
 * comments (NSS writes "# SSL/TLS secrets log file" first). */
static void parse_line(struct keylog *k, const char *s, size_t n)
{
	while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0 || s[0] == '#')
		return;
	k->stats.lines++;
	const char *sp1 = memchr(s, ' ', n);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - s)) : NULL;
	if (!sp1 || !sp2) {
		k->stats.bad_lines++;
		return;
	}
	uint8_t random[32], secret[KEYLOG_MAX_SECRET];
	int rl = unhex(sp1 + 1, (size_t)(sp2 - sp1 - 1), random, sizeof(random));
	int sl = unhex(sp2 + 1, n - (size_t)(sp2 + 1 - s), secret, sizeof(secret));
	if (rl != 32 || sl <= 0) {
		k->stats.bad_lines++;
		return;
	}
	if ((size_t)(sp1 - s) == sizeof(SERVER_LABEL) - 1 &&
	    !memcmp(s, SERVER_LABEL, sizeof(SERVER_LABEL) - 1))
		put(k, random, secret, (size_t)sl);
}

/* Splits text into lines, carrying a partial one in f (NULL: none kept). */
static void feed_lines(struct keylog *k, struct keylog_file *f, const char *p, size_t n)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (f) {
			if (f->overlong || f->line_len + take > sizeof(f->line)) {
				f->overlong = 1;
			} else {
				memcpy(f->line + f->line_len, p, take);
				f->line_len += take;
			}
			if (nl) {
				if (f->overlong)
					k->stats.bad_lines++;
				else
					parse_line(k, f->line, f->line_len);
				f->line_len = 0;
				f->overlong = 0;
			}
		} else if (nl) {
			parse_line(k, p, take);
		}
		if (!nl)
			break;
		p += take + 1;
		n -= take + 1;
	}
}

void keylog_feed(struct keylog *k, const char *text, size_t n)
{
	pthread_mutex_lock(&k->mu);
	feed_lines(k, NULL, text, n);
	pthread_mutex_unlock(&k->mu);
}

static int reopen(struct keylog_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
	f->offset = 0;
	f->head_len = 0;
	f->line_len = 0;
	f->overlong = 0;
	if (f->fd < 0)
		return -1;
	struct stat st;
	if (fstat(f->fd, &st) == 0) {
		f->dev = st.st_dev;
		f->ino = st.st_ino;
	}
	return 0;
}

static int head_changed(struct keylog_file *f)
{
	char now[sizeof(f->head)];
	return f->head_len && (pread(f->fd, now, f->head_len, 0) != (ssize_t)f->head_len ||
			       memcmp(now, f->head, f->head_len));
}

/* Reads what the file gained; a file replaced (another inode at the path),
 * cut shorter than what was read, or whose start changed is read again
 * from its start. */
static void read_more(struct keylog *k, struct keylog_file *f)
{
	struct stat st;
	if (stat(f->path, &st) == 0 &&
	    (f->fd < 0 || st.st_dev != f->dev || st.st_ino != f->ino || st.st_size < f->offset ||
	     head_changed(f)))
		reopen(f);
	if (f->fd < 0)
		return;
	char buf[65536];
	for (;;) {
		ssize_t r = pread(f->fd, buf, sizeof(buf), f->offset);
		if (r <= 0)
			break;
		if (f->head_len < sizeof(f->head) && f->offset < (off_t)sizeof(f->head)) {
			size_t add = sizeof(f->head) - (size_t)f->offset;
			if (add > (size_t)r)
				add = (size_t)r;
			memcpy(f->head + f->offset, buf, add);
			f->head_len = (size_t)f->offset + add;
		}
		f->offset += r;
		feed_lines(k, f, buf, (size_t)r);
	}
}

int keylog_add_file(struct keylog *k, const char *path, char *err, size_t errlen)
{
	pthread_mutex_lock(&k->mu);
	if (k->n_files == KEYLOG_MAX_FILES) {
		pthread_mutex_unlock(&k->mu);
		snprintf(err, errlen, "key log %s: more than %d files", path, KEYLOG_MAX_FILES);
		return -1;
	}
	struct keylog_file *f = &k->files[k->n_files];
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->path = strdup(path);
	if (!f->path || reopen(f) < 0) {
		int e = f->path ? errno : ENOMEM;
		free(f->path);
		pthread_mutex_unlock(&k->mu);
		snprintf(err, errlen, "key log %s: %s", path, strerror(e));
		return -1;
	}
	k->n_files++;
	read_more(k, f);
	pthread_mutex_unlock(&k->mu);
	return 0;
}

int keylog_poll(struct keylog *k)
{
	pthread_mutex_lock(&k->mu);
	uint64_t before = k->stats.secrets + k->stats.evicted;
	for (int i = 0; i < k->n_files; i++)
		read_more(k, &k->files[i]);
	int added = (int)(k->stats.secrets + k->stats.evicted - before);
	pthread_mutex_unlock(&k->mu);
	return added;
}

size_t keylog_server_secret(struct keylog *k, const uint8_t client_random[32],
			    uint8_t secret[KEYLOG_MAX_SECRET])
{
	pthread_mutex_lock(&k->mu);
	const struct keylog_entry *e = find(k, client_random);
	size_t n = e ? e->len : 0;
	if (n)
		memcpy(secret, e->secret, n);
	pthread_mutex_unlock(&k->mu);
	return n;
}

struct keylog_stats keylog_stats(struct keylog *k)
{
	pthread_mutex_lock(&k->mu);
	struct keylog_stats s = k->stats;
	pthread_mutex_unlock(&k->mu);
	return s;
}
