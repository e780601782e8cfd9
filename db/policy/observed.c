/*
 * observed.c - a bounded store of observed DNS records with two hash
 * indexes: by owner name (MX lookups by host go through the value index).
 */
#include "db/policy/observed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/siphash.h"

#define INDEX_SLOTS (OBSERVED_MAX_ENTRIES * 2)

struct entry {
	uint8_t kind, ad;
	char name[256];
	char value[512];
	char resolver[64];
	uint32_t ttl;
	int64_t seen_at;
	int32_t next_by_value; /* chain of entries with the same (kind, value) */
	int32_t next_by_name;
};

struct observed {
	struct entry *e;
	uint32_t n;
	uint64_t dropped;
	int32_t by_name[INDEX_SLOTS];
	int32_t by_value[INDEX_SLOTS];
	uint8_t key[16];
};

struct observed *observed_new(void)
{
	struct observed *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->e = calloc(OBSERVED_MAX_ENTRIES, sizeof(*o->e));
	if (!o->e) {
		free(o);
		return NULL;
	}
	memset(o->by_name, 0xff, sizeof(o->by_name));
	memset(o->by_value, 0xff, sizeof(o->by_value));
	if (getrandom(o->key, sizeof(o->key), 0) != (ssize_t)sizeof(o->key))
		memset(o->key, 0x6f, sizeof(o->key));
	return o;
}

void observed_free(struct observed *o)
{
	if (!o)
		return;
	free(o->e);
	free(o);
}

static uint32_t slot(const struct observed *o, int kind, const char *s)
{
	uint8_t buf[600];
	size_t n = strlen(s);
	if (n > sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	buf[0] = (uint8_t)kind;
	memcpy(buf + 1, s, n);
	return (uint32_t)(siphash24(o->key, buf, n + 1) % INDEX_SLOTS);
}

void observed_add(struct observed *o, enum observed_kind kind, const char *name, const char *value,
		  int ad, const char *resolver, uint32_t ttl, int64_t seen_at)
{
	if (!o)
		return;
	uint32_t ns = slot(o, kind, name);
	for (int32_t i = o->by_name[ns]; i >= 0; i = o->e[i].next_by_name) {
		struct entry *x = &o->e[i];
		if (x->kind == kind && !strcmp(x->name, name) && !strcmp(x->value, value)) {
			x->seen_at = seen_at;
			x->ttl = ttl;
			x->ad = (uint8_t)ad;
			snprintf(x->resolver, sizeof(x->resolver), "%s", resolver);
			return;
		}
	}
	if (o->n == OBSERVED_MAX_ENTRIES) {
		o->dropped++;
		return;
	}
	struct entry *x = &o->e[o->n];
	x->kind = (uint8_t)kind;
	x->ad = (uint8_t)ad;
	snprintf(x->name, sizeof(x->name), "%s", name);
	snprintf(x->value, sizeof(x->value), "%s", value);
	snprintf(x->resolver, sizeof(x->resolver), "%s", resolver);
	x->ttl = ttl;
	x->seen_at = seen_at;
	x->next_by_name = o->by_name[ns];
	o->by_name[ns] = (int32_t)o->n;
	uint32_t vs = slot(o, kind, x->value);
	x->next_by_value = o->by_value[vs];
	o->by_value[vs] = (int32_t)o->n;
	o->n++;
}

int observed_hosts_at(const struct observed *o, const char *address, const char **out, int max)
{
	int n = 0;
	if (!o)
		return 0;
	for (int32_t i = o->by_value[slot(o, OBS_ADDR, address)]; i >= 0 && n < max;
	     i = o->e[i].next_by_value)
		if (o->e[i].kind == OBS_ADDR && !strcmp(o->e[i].value, address))
			out[n++] = o->e[i].name;
	return n;
}

int observed_domains_of(const struct observed *o, const char *host, const char **out, int max)
{
	int n = 0;
	if (!o)
		return 0;
	for (int32_t i = o->by_value[slot(o, OBS_MX, host)]; i >= 0 && n < max;
	     i = o->e[i].next_by_value)
		if (o->e[i].kind == OBS_MX && !strcmp(o->e[i].value, host))
			out[n++] = o->e[i].name;
	return n;
}

uint64_t observed_count(const struct observed *o)
{
	return o ? o->n : 0;
}

uint64_t observed_dropped(const struct observed *o)
{
	return o ? o->dropped : 0;
}

int observed_save(const struct observed *o, struct db *d)
{
	static const char *const kinds[] = {"mx", "address", "tlsa", "txt"};
	for (uint32_t i = 0; o && i < o->n; i++) {
		const struct entry *x = &o->e[i];
		if (db_observed_put(d, kinds[x->kind], x->name, x->value, x->ad, x->resolver,
				    x->ttl, x->seen_at))
			return -1;
	}
	return 0;
}

static int load_row(void *ctx, const char *const *c, int n)
{
	static const char *const kinds[] = {"mx", "address", "tlsa", "txt"};
	if (n < 7 || !c[0] || !c[1] || !c[2])
		return 0;
	for (int k = 0; k < 4; k++)
		if (!strcmp(c[0], kinds[k]))
			observed_add(ctx, (enum observed_kind)k, c[1], c[2], c[3] && atoi(c[3]),
				     c[4] ? c[4] : "",
				     (uint32_t)strtoul(c[5] ? c[5] : "0", NULL, 10),
				     strtoll(c[6] ? c[6] : "0", NULL, 10));
	return 0;
}

int observed_load(struct observed *o, struct db *d)
{
	return db_each_observed(d, load_row, o);
}
