/*
 * cache.c - loads the policy tables into sorted arrays searched by bsearch.
 * Every string lives in one arena owned by the cache object.
 */
#include "db/policy/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct addr_entry {
	const char *address;
	struct cached_host *host;
};

struct policy_cache {
	struct cached_domain *domains;
	int n_domains, cap_domains;
	struct cached_host *hosts;
	int n_hosts, cap_hosts;
	struct addr_entry *addrs;
	int n_addrs, cap_addrs;
	int n_tlsa;
	/* name -> array index while loading (open addressing, FNV-1a) */
	int *dom_index, *host_index;
	size_t index_cap;
	/* every allocation, freed together */
	void **blocks;
	int n_blocks, cap_blocks;
	int oom;
};

static void *keep(struct policy_cache *c, void *p)
{
	if (!p) {
		c->oom = 1;
		return NULL;
	}
	if (c->n_blocks == c->cap_blocks) {
		int cap = c->cap_blocks ? c->cap_blocks * 2 : 64;
		void **b = realloc(c->blocks, (size_t)cap * sizeof(*b));
		if (!b) {
			free(p);
			c->oom = 1;
			return NULL;
		}
		c->blocks = b;
		c->cap_blocks = cap;
	}
	c->blocks[c->n_blocks++] = p;
	return p;
}

static const char *dup(struct policy_cache *c, const char *s)
{
	return keep(c, strdup(s ? s : ""));
}

static int grow(void **arr, int *cap, int n, size_t elem)
{
	if (n < *cap)
		return 0;
	int nc = *cap ? *cap * 2 : 16;
	void *a = realloc(*arr, (size_t)nc * elem);
	if (!a)
		return -1;
	memset((char *)a + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
	*arr = a;
	*cap = nc;
	return 0;
}

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* Finds or adds a name in a load-time index: indices into `names`
 * (reached through `name_at`), -1 for empty slots. */
static int *index_slot(struct policy_cache *c, int *index, const char *name,
		       const char *(*name_at)(struct policy_cache *, int))
{
	size_t mask = c->index_cap - 1;
	for (size_t i = fnv(name) & mask;; i = (i + 1) & mask) {
		if (index[i] < 0 || !strcmp(name_at(c, index[i]), name))
			return &index[i];
	}
}

static const char *domain_name_at(struct policy_cache *c, int i)
{
	return c->domains[i].name;
}

static const char *host_name_at(struct policy_cache *c, int i)
{
	return c->hosts[i].name;
}

/* Keeps both indexes at most half full. */
static int index_reserve(struct policy_cache *c)
{
	size_t need = (size_t)(c->n_domains > c->n_hosts ? c->n_domains : c->n_hosts) * 2 + 2;
	if (need <= c->index_cap)
		return 0;
	size_t cap = c->index_cap ? c->index_cap : 1024;
	while (cap < need)
		cap *= 2;
	int *di = malloc(cap * sizeof(int)), *hi = malloc(cap * sizeof(int));
	if (!di || !hi) {
		free(di);
		free(hi);
		c->oom = 1;
		return -1;
	}
	memset(di, 0xff, cap * sizeof(int));
	memset(hi, 0xff, cap * sizeof(int));
	free(c->dom_index);
	free(c->host_index);
	c->dom_index = di;
	c->host_index = hi;
	c->index_cap = cap;
	for (int i = 0; i < c->n_domains; i++)
		*index_slot(c, di, c->domains[i].name, domain_name_at) = i;
	for (int i = 0; i < c->n_hosts; i++)
		*index_slot(c, hi, c->hosts[i].name, host_name_at) = i;
	return 0;
}

static struct cached_domain *domain_get(struct policy_cache *c, const char *name)
{
	if (index_reserve(c))
		return NULL;
	int *slot = index_slot(c, c->dom_index, name, domain_name_at);
	if (*slot >= 0)
		return &c->domains[*slot];
	if (grow((void **)&c->domains, &c->cap_domains, c->n_domains, sizeof(*c->domains))) {
		c->oom = 1;
		return NULL;
	}
	struct cached_domain *d = &c->domains[c->n_domains];
	d->name = dup(c, name);
	if (!d->name)
		return NULL;
	*slot = c->n_domains++;
	return d;
}

static struct cached_host *host_get(struct policy_cache *c, const char *name)
{
	if (index_reserve(c))
		return NULL;
	int *slot = index_slot(c, c->host_index, name, host_name_at);
	if (*slot >= 0)
		return &c->hosts[*slot];
	if (grow((void **)&c->hosts, &c->cap_hosts, c->n_hosts, sizeof(*c->hosts))) {
		c->oom = 1;
		return NULL;
	}
	struct cached_host *h = &c->hosts[c->n_hosts];
	h->name = dup(c, name);
	if (!h->name)
		return NULL;
	*slot = c->n_hosts++;
	return h;
}

static int push_str(struct policy_cache *c, const char *const **arr, int *n, const char *s)
{
	const char **a = realloc((void *)*arr, (size_t)(*n + 1) * sizeof(*a));
	if (!a) {
		c->oom = 1;
		return -1;
	}
	a[(*n)++] = dup(c, s);
	*arr = a;
	return 0;
}

static int on_mx(void *ctx, const struct db_mx *r)
{
	struct policy_cache *c = ctx;
	struct cached_domain *d = domain_get(c, r->domain);
	if (!d)
		return 1;
	struct cached_mx *m = realloc(d->mx, (size_t)(d->n_mx + 1) * sizeof(*m));
	if (!m) {
		c->oom = 1;
		return 1;
	}
	d->mx = m;
	m[d->n_mx].host = dup(c, r->host);
	m[d->n_mx].preference = r->preference;
	m[d->n_mx].secure = !strcmp(r->dnssec, "secure");
	d->n_mx++;
	struct cached_host *h = host_get(c, r->host);
	if (h)
		push_str(c, &h->domains, &h->n_domains, r->domain);
	return c->oom;
}

static int on_addr(void *ctx, const struct db_addr *r)
{
	struct policy_cache *c = ctx;
	struct cached_host *h = host_get(c, r->host);
	if (!h || push_str(c, &h->addresses, &h->n_addresses, r->address))
		return 1;
	return 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int on_tlsa(void *ctx, const struct db_tlsa *r)
{
	struct policy_cache *c = ctx;
	struct cached_host *h = host_get(c, r->host);
	if (!h)
		return 1;
	struct cached_tlsa *t = realloc(h->tlsa, (size_t)(h->n_tlsa + 1) * sizeof(*t));
	if (!t) {
		c->oom = 1;
		return 1;
	}
	h->tlsa = t;
	size_t hl = strlen(r->data);
	uint8_t *bin = keep(c, malloc(hl / 2 + 1));
	if (!bin)
		return 1;
	for (size_t i = 0; i + 1 < hl; i += 2)
		bin[i / 2] = (uint8_t)(hexval(r->data[i]) << 4 | hexval(r->data[i + 1]));
	struct cached_tlsa *e = &t[h->n_tlsa++];
	e->port = r->port;
	e->usage = r->usage;
	e->selector = r->selector;
	e->mtype = r->mtype;
	e->data = bin;
	e->len = (uint32_t)(hl / 2);
	e->secure = !strcmp(r->dnssec, "secure");
	e->fetched_at = r->fetched_at;
	e->ttl = r->ttl;
	c->n_tlsa++;
	return 0;
}

static int on_sts(void *ctx, const struct db_sts *r)
{
	struct policy_cache *c = ctx;
	struct cached_domain *d = domain_get(c, r->domain);
	if (!d)
		return 1;
	d->sts_result = dup(c, r->result);
	if (!r->mode[0] || r->max_age < 0)
		return 0;
	struct cached_sts *s = keep(c, calloc(1, sizeof(*s)));
	if (!s)
		return 1;
	s->mode = dup(c, r->mode);
	s->max_age = r->max_age;
	s->fetched_at = r->policy_fetched_at;
	s->txt_id = dup(c, r->txt_id);
	const char *p = r->mx_patterns;
	const char **pats = NULL;
	int n = 0;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *one = keep(c, strndup(p, len));
		const char **np = realloc(pats, (size_t)(n + 1) * sizeof(*np));
		if (!one || !np) {
			free(np ? np : pats);
			c->oom = 1;
			return 1;
		}
		pats = np;
		pats[n++] = one;
		p += len + (nl ? 1 : 0);
	}
	if (pats)
		keep(c, pats);
	s->mx_patterns = pats;
	s->n_mx_patterns = n;
	d->sts = s;
	return 0;
}

static int cmp_domain(const void *a, const void *b)
{
	return strcmp(((const struct cached_domain *)a)->name,
		      ((const struct cached_domain *)b)->name);
}

static int cmp_host(const void *a, const void *b)
{
	return strcmp(((const struct cached_host *)a)->name, ((const struct cached_host *)b)->name);
}

static int cmp_addr(const void *a, const void *b)
{
	return strcmp(((const struct addr_entry *)a)->address,
		      ((const struct addr_entry *)b)->address);
}

struct policy_cache *policy_cache_load(struct db *d, char *err, size_t errlen)
{
	struct policy_cache *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (db_each_mx(d, NULL, on_mx, c) || db_each_addr(d, NULL, on_addr, c) ||
	    db_each_tlsa(d, NULL, on_tlsa, c) || db_each_sts(d, NULL, on_sts, c) || c->oom) {
		snprintf(err, errlen, "loading the policy cache: %s",
			 c->oom ? "out of memory" : db_errmsg(d));
		policy_cache_free(c);
		return NULL;
	}
	free(c->dom_index);
	free(c->host_index);
	c->dom_index = c->host_index = NULL;
	if (c->n_domains) /* an empty cache has no arrays at all */
		qsort(c->domains, (size_t)c->n_domains, sizeof(*c->domains), cmp_domain);
	if (c->n_hosts)
		qsort(c->hosts, (size_t)c->n_hosts, sizeof(*c->hosts), cmp_host);
	for (int i = 0; i < c->n_hosts; i++) {
		for (int k = 0; k < c->hosts[i].n_addresses; k++) {
			if (grow((void **)&c->addrs, &c->cap_addrs, c->n_addrs,
				 sizeof(*c->addrs))) {
				snprintf(err, errlen, "out of memory");
				policy_cache_free(c);
				return NULL;
			}
			c->addrs[c->n_addrs].address = c->hosts[i].addresses[k];
			c->addrs[c->n_addrs].host = &c->hosts[i];
			c->n_addrs++;
		}
	}
	if (c->n_addrs)
		qsort(c->addrs, (size_t)c->n_addrs, sizeof(*c->addrs), cmp_addr);
	return c;
}

void policy_cache_free(struct policy_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_domains; i++)
		free(c->domains[i].mx);
	for (int i = 0; i < c->n_hosts; i++) {
		free(c->hosts[i].tlsa);
		free((void *)c->hosts[i].addresses);
		free((void *)c->hosts[i].domains);
	}
	for (int i = 0; i < c->n_blocks; i++)
		free(c->blocks[i]);
	free(c->dom_index);
	free(c->host_index);
	free(c->blocks);
	free(c->domains);
	free(c->hosts);
	free(c->addrs);
	free(c);
}

const struct cached_domain *policy_cache_domain(const struct policy_cache *c, const char *domain)
{
	struct cached_domain key = {.name = domain};
	return c && c->n_domains
		   ? bsearch(&key, c->domains, (size_t)c->n_domains, sizeof(key), cmp_domain)
		   : NULL;
}

const struct cached_host *policy_cache_host(const struct policy_cache *c, const char *host)
{
	struct cached_host key = {.name = host};
	return c && c->n_hosts ? bsearch(&key, c->hosts, (size_t)c->n_hosts, sizeof(key), cmp_host)
			       : NULL;
}

int policy_cache_hosts_at(const struct policy_cache *c, const char *address,
			  const struct cached_host **out, int max)
{
	if (!c || !c->n_addrs)
		return 0;
	struct addr_entry key = {.address = address};
	struct addr_entry *e = bsearch(&key, c->addrs, (size_t)c->n_addrs, sizeof(key), cmp_addr);
	if (!e)
		return 0;
	while (e > c->addrs && !strcmp(e[-1].address, address))
		e--;
	int n = 0;
	for (; e < c->addrs + c->n_addrs && !strcmp(e->address, address) && n < max; e++)
		out[n++] = e->host;
	return n;
}

void policy_cache_counts(const struct policy_cache *c, int *domains, int *hosts, int *addresses,
			 int *tlsa)
{
	*domains = c->n_domains;
	*hosts = c->n_hosts;
	*addresses = c->n_addrs;
	*tlsa = c->n_tlsa;
}
