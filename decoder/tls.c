/*
 * tls.c - TLS record layer and handshake walker (RFC 5246, RFC 8446).
 * Record bodies are streamed: only handshake bytes are copied, into a
 * per-direction buffer capped at TLS_MAX_HANDSHAKE, and only until that
 * direction's keys change. Every field is read through the bounds-checked
 * cursor, so a message split at any byte or truncated anywhere is safe.
 */
#include "decoder/tls.h"
#include "decoder/certcache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/bytes.h"
#include "util/parse.h"

#define TLS_MAX_RECORD (16384 + 2048)

enum {
	CT_CCS = 20,
	CT_ALERT = 21,
	CT_HANDSHAKE = 22,
	CT_APPDATA = 23,
	CT_HEARTBEAT = 24
};
enum {
	HS_CLIENT_HELLO = 1,
	HS_SERVER_HELLO = 2,
	HS_CERTIFICATE = 11
};
enum {
	EXT_SERVER_NAME = 0,
	EXT_SUPPORTED_VERSIONS = 43
};

static const uint8_t hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

static const char *const anomaly_names[TLS_AN_COUNT] = {
    [TLS_AN_BAD_RECORD] = "tls-bad-record",
    [TLS_AN_BAD_HANDSHAKE] = "tls-bad-handshake",
    [TLS_AN_HANDSHAKE_TOO_BIG] = "tls-handshake-too-big",
    [TLS_AN_NOT_TLS] = "tls-not-tls",
    [TLS_AN_GAP] = "tls-gap",
    [TLS_AN_BUDGET] = "tls-budget",
};

static int keep_flights;

void tls_keep_tls13_flights(int on)
{
	keep_flights = on;
}

struct tls_dir {
	uint8_t hdr[5];
	uint8_t hdr_len;
	uint8_t rec_type;
	uint32_t rec_left; /* body bytes of the current record still to come */
	uint8_t alert[2];
	uint8_t alert_len;
	uint8_t keys_on;    /* later records are encrypted */
	uint8_t stopped;    /* framing lost or not TLS: ignore the rest */
	uint8_t hs_stopped; /* handshake parsing given up for this direction */
	uint32_t encrypted_records;
	uint32_t records; /* record headers accepted */
	uint8_t *hs;
	uint32_t hs_len, hs_cap;
	uint8_t keep_record; /* the current record goes into the server flight */
};

/* Bytes held by every tls object of the process. Objects are made by the
 * worker threads and freed by the writer, so the count is atomic; the
 * check-then-add may overshoot the budget by one message, no more. */
static _Atomic uint64_t tls_buffered;

struct tls {
	uint64_t charged;    /* this object's share of tls_buffered */
	struct tls_facts *f; /* separate: handed to the session record at the end */
	struct tls_dir d[2];
	uint8_t fatal_alert;
	uint32_t flight_cap; /* bytes allocated for f->server_flight */
};

const char *tls_anomaly_name(enum tls_anomaly a)
{
	return (unsigned)a < TLS_AN_COUNT ? anomaly_names[a] : "unknown";
}

const char *tls_version_name(uint16_t v)
{
	switch (v) {
	case 0x0300: return "SSLv3";
	case TLS_V10: return "TLSv1.0";
	case TLS_V11: return "TLSv1.1";
	case TLS_V12: return "TLSv1.2";
	case TLS_V13: return "TLSv1.3";
	default: return NULL;
	}
}

struct tls *tls_new(void)
{
	struct tls *t = calloc(1, sizeof(*t));
	if (t && !(t->f = calloc(1, sizeof(*t->f)))) {
		free(t);
		return NULL;
	}
	return t;
}

void tls_facts_free(struct tls_facts *f)
{
	if (!f)
		return;
	tls_facts_drop_certs(f);
	free(f->server_flight);
	free(f);
}

int tls_facts_add_cert(struct tls_facts *f, const uint8_t *der, size_t len)
{
	const struct x509_info *info = certcache_get(der, len);
	if (!info)
		return -1;
	size_t n;
	struct tls_cert_der *c = &f->certs[f->n_certs++];
	c->info = info;
	c->der = certcache_der(info, &n);
	c->len = (uint32_t)n;
	return 0;
}

void tls_facts_drop_certs(struct tls_facts *f)
{
	for (int i = 0; i < f->n_certs; i++)
		certcache_release(f->certs[i].info);
	f->n_certs = 0;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	atomic_fetch_sub_explicit(&tls_buffered, t->charged, memory_order_relaxed);
	for (int i = 0; i < 2; i++)
		free(t->d[i].hs);
	tls_facts_free(t->f);
	free(t);
}

struct tls_facts *tls_take_facts(struct tls *t)
{
	struct tls_facts *f = t->f;
	t->f = NULL;
	return f;
}

const struct tls_facts *tls_facts(const struct tls *t)
{
	return t->f;
}

static void anomaly(struct tls *t, enum tls_anomaly k, int dir)
{
	t->f->anomalies[k][dir]++;
}

static int is_grease(uint16_t v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

static void parse_extensions(struct tls *t, struct cursor *c, int client)
{
	uint16_t total = cur_be16(c);
	if (!c->ok || !cur_has(c, total))
		return;
	struct cursor e;
	cur_init(&e, cur_ptr(c), total);
	cur_skip(c, total);
	while (cur_left(&e) >= 4) {
		uint16_t type = cur_be16(&e);
		uint16_t len = cur_be16(&e);
		if (!cur_has(&e, len)) {
			anomaly(t, TLS_AN_BAD_HANDSHAKE, !client);
			return;
		}
		struct cursor x;
		cur_init(&x, cur_ptr(&e), len);
		cur_skip(&e, len);
		if (type == EXT_SERVER_NAME && client) {
			uint16_t list = cur_be16(&x);
			if (!x.ok || !cur_has(&x, list))
				continue;
			while (cur_left(&x) >= 3) {
				uint8_t nt = cur_u8(&x);
				uint16_t nl = cur_be16(&x);
				if (!cur_has(&x, nl))
					break;
				if (nt == 0 && !t->f->sni[0]) {
					size_t n = nl < TLS_MAX_SNI - 1 ? nl : TLS_MAX_SNI - 1;
					const uint8_t *p = cur_ptr(&x);
					for (size_t i = 0; i < n; i++)
						t->f->sni[i] = p[i] ? (char)p[i] : '?';
					t->f->sni[n] = 0;
				}
				cur_skip(&x, nl);
			}
		} else if (type == EXT_SUPPORTED_VERSIONS && client) {
			uint8_t l = cur_u8(&x);
			for (unsigned i = 0; i + 1 < l && cur_has(&x, 2); i += 2) {
				uint16_t v = cur_be16(&x);
				if (!is_grease(v) && t->f->n_offered_versions < TLS_MAX_VERSIONS)
					t->f->offered_versions[t->f->n_offered_versions++] = v;
			}
		} else if (type == EXT_SUPPORTED_VERSIONS && !client) {
			uint16_t v = cur_be16(&x);
			if (x.ok)
				t->f->version = v;
		}
	}
}

static void client_hello(struct tls *t, const uint8_t *p, size_t n)
{
	struct cursor c;
	cur_init(&c, p, n);
	if (t->f->client_hello) /* second hello after a HelloRetryRequest */
		return;
	t->f->client_hello = 1;
	t->f->client_version = cur_be16(&c);
	if (cur_has(&c, 32)) {
		memcpy(t->f->client_random, cur_ptr(&c), 32);
		t->f->client_random_seen = 1;
	}
	cur_skip(&c, 32);
	cur_skip(&c, cur_u8(&c));
	cur_skip(&c, cur_be16(&c));
	cur_skip(&c, cur_u8(&c));
	if (!c.ok) {
		anomaly(t, TLS_AN_BAD_HANDSHAKE, 0);
		return;
	}
	if (cur_left(&c))
		parse_extensions(t, &c, 1);
}

static void server_hello(struct tls *t, const uint8_t *p, size_t n)
{
	struct cursor c;
	cur_init(&c, p, n);
	uint16_t legacy = cur_be16(&c);
	if (!cur_has(&c, 32)) {
		anomaly(t, TLS_AN_BAD_HANDSHAKE, 1);
		return;
	}
	int hrr = memcmp(cur_ptr(&c), hrr_random, 32) == 0;
	cur_skip(&c, 32);
	cur_skip(&c, cur_u8(&c));
	uint16_t cipher = cur_be16(&c);
	cur_u8(&c);
	if (!c.ok) {
		anomaly(t, TLS_AN_BAD_HANDSHAKE, 1);
		return;
	}
	t->f->server_hello = 1;
	t->f->hello_retry |= hrr;
	t->f->version = legacy;
	t->f->cipher = cipher;
	if (cur_left(&c))
		parse_extensions(t, &c, 0);
	/* From TLS 1.3 on everything after ServerHello is encrypted. */
	if (t->f->version >= TLS_V13 && !hrr)
		t->d[1].keys_on = 1;
}

static void certificate(struct tls *t, const uint8_t *p, size_t n)
{
	struct cursor c;
	cur_init(&c, p, n);
	uint32_t total = cur_be24(&c);
	if (!c.ok || !cur_has(&c, total)) {
		anomaly(t, TLS_AN_BAD_HANDSHAKE, 1);
		return;
	}
	t->f->certificate_seen = 1;
	t->f->certs_source = "handshake";
	while (cur_left(&c) >= 3) {
		uint32_t len = cur_be24(&c);
		if (!cur_has(&c, len)) {
			anomaly(t, TLS_AN_BAD_HANDSHAKE, 1);
			return;
		}
		uint64_t held = atomic_load_explicit(&tls_buffered, memory_order_relaxed);
		if (t->f->n_certs < TLS_MAX_CERTS && held + len > TLS_BUFFER_BUDGET) {
			anomaly(t, TLS_AN_BUDGET, 1);
			t->f->certs_truncated = 1;
		} else if (t->f->n_certs < TLS_MAX_CERTS) {
			/* Charged to the budget as if held alone, though shared. */
			if (tls_facts_add_cert(t->f, cur_ptr(&c), len) == 0) {
				atomic_fetch_add_explicit(&tls_buffered, len, memory_order_relaxed);
				t->charged += len;
			}
		} else {
			t->f->certs_truncated = 1;
		}
		cur_skip(&c, len);
	}
}

static void handshake_message(struct tls *t, int dir, uint8_t type, const uint8_t *p, size_t n)
{
	if (type == HS_CLIENT_HELLO && dir == 0)
		client_hello(t, p, n);
	else if (type == HS_SERVER_HELLO && dir == 1)
		server_hello(t, p, n);
	else if (type == HS_CERTIFICATE && dir == 1 && t->f->version < TLS_V13)
		certificate(t, p, n);
}

/* Framing of one handshake message (RFC 8446 4: type, 24-bit length,
 * body): its whole size when complete in p, PARSE_NEED_MORE, or
 * PARSE_TOO_BIG past TLS_MAX_HANDSHAKE. */
static parse_ret handshake_frame(const uint8_t *p, size_t n)
{
	if (n < 4)
		return PARSE_NEED_MORE;
	uint32_t ml = rd_be24(p + 1);
	if (ml > TLS_MAX_HANDSHAKE)
		return PARSE_TOO_BIG;
	return ml <= n - 4 ? (parse_ret)(4 + ml) : PARSE_NEED_MORE;
}

/* Appends handshake record bytes and walks every complete message. */
static void handshake_bytes(struct tls *t, int dir, const uint8_t *p, size_t n)
{
	struct tls_dir *d = &t->d[dir];
	if (d->hs_stopped)
		return;
	if (d->hs_len == 0) {
		/* Fast path: whole messages inside this piece need no copy. */
		parse_ret m;
		while ((m = handshake_frame(p, n)) > 0) {
			handshake_message(t, dir, p[0], p + 4, (size_t)m - 4);
			p += m;
			n -= (size_t)m;
			if (d->keys_on)
				return; /* the rest of the record is encrypted */
		}
		if (n == 0)
			return;
	}
	if (d->hs_len + n > d->hs_cap) {
		size_t need = d->hs_len + n;
		if (need > TLS_MAX_HANDSHAKE + 4) {
			anomaly(t, TLS_AN_HANDSHAKE_TOO_BIG, dir);
			d->hs_stopped = 1;
			free(d->hs);
			atomic_fetch_sub_explicit(&tls_buffered, d->hs_cap, memory_order_relaxed);
			t->charged -= d->hs_cap;
			d->hs = NULL;
			d->hs_len = d->hs_cap = 0;
			return;
		}
		size_t cap = d->hs_cap ? d->hs_cap : 4096;
		while (cap < need)
			cap *= 2;
		if (atomic_load_explicit(&tls_buffered, memory_order_relaxed) + (cap - d->hs_cap) >
		    TLS_BUFFER_BUDGET) {
			anomaly(t, TLS_AN_BUDGET, dir);
			d->hs_stopped = 1;
			return;
		}
		uint8_t *b = realloc(d->hs, cap);
		if (!b) {
			d->hs_stopped = 1;
			return;
		}
		atomic_fetch_add_explicit(&tls_buffered, cap - d->hs_cap, memory_order_relaxed);
		t->charged += cap - d->hs_cap;
		d->hs = b;
		d->hs_cap = (uint32_t)cap;
	}
	memcpy(d->hs + d->hs_len, p, n);
	d->hs_len += (uint32_t)n;
	uint32_t off = 0;
	for (;;) {
		const uint8_t *m = d->hs + off;
		parse_ret ml = handshake_frame(m, d->hs_len - off);
		if (ml == PARSE_TOO_BIG) {
			anomaly(t, TLS_AN_HANDSHAKE_TOO_BIG, dir);
			d->hs_stopped = 1;
			break;
		}
		if (ml < 0)
			break;
		handshake_message(t, dir, m[0], m + 4, (size_t)ml - 4);
		off += (uint32_t)ml;
		if (d->keys_on) {
			off = d->hs_len;
			break;
		}
	}
	memmove(d->hs, d->hs + off, d->hs_len - off);
	d->hs_len -= off;
	if (d->hs_len == 0 && d->hs) {
		/* Nothing left to join: a handshake seldom splits again, and a
		 * finished session must not hold kilobytes until its flow ends. */
		free(d->hs);
		atomic_fetch_sub_explicit(&tls_buffered, d->hs_cap, memory_order_relaxed);
		t->charged -= d->hs_cap;
		d->hs = NULL;
		d->hs_cap = 0;
	}
}

/* Appends to the server flight, within TLS13_MAX_FLIGHT and the budget
 * of all handshake buffers. */
static void flight_append(struct tls *t, const uint8_t *p, size_t n)
{
	struct tls_facts *f = t->f;
	if (f->server_flight_truncated)
		return;
	if (f->server_flight_len + n > TLS13_MAX_FLIGHT ||
	    atomic_load_explicit(&tls_buffered, memory_order_relaxed) + n > TLS_BUFFER_BUDGET) {
		f->server_flight_truncated = 1;
		return;
	}
	if (f->server_flight_len + n > t->flight_cap) {
		uint32_t cap = t->flight_cap ? t->flight_cap : 4096;
		while (cap < f->server_flight_len + n)
			cap *= 2;
		if (cap > TLS13_MAX_FLIGHT)
			cap = TLS13_MAX_FLIGHT;
		uint8_t *b = realloc(f->server_flight, cap);
		if (!b) {
			f->server_flight_truncated = 1;
			return;
		}
		atomic_fetch_add_explicit(&tls_buffered, cap - t->flight_cap, memory_order_relaxed);
		t->charged += cap - t->flight_cap;
		f->server_flight = b;
		t->flight_cap = cap;
	}
	memcpy(f->server_flight + f->server_flight_len, p, n);
	f->server_flight_len += (uint32_t)n;
}

static void check_complete(struct tls *t)
{
	if (t->f->handshake_complete)
		return;
	int both_encrypted = t->f->encrypted[0] && t->f->encrypted[1];
	if (t->f->server_hello && both_encrypted &&
	    (t->f->version >= TLS_V13 || (t->f->ccs[0] && t->f->ccs[1])))
		t->f->handshake_complete = 1;
}

static void record_start(struct tls *t, int dir)
{
	struct tls_dir *d = &t->d[dir];
	uint8_t type = d->hdr[0];
	uint16_t ver = rd_be16(d->hdr + 1);
	uint16_t len = rd_be16(d->hdr + 3);
	if (type < CT_CCS || type > CT_HEARTBEAT || (ver >> 8) != 3) {
		anomaly(t, d->records ? TLS_AN_BAD_RECORD : TLS_AN_NOT_TLS, dir);
		d->stopped = 1;
		return;
	}
	if (len > TLS_MAX_RECORD) {
		anomaly(t, TLS_AN_BAD_RECORD, dir);
		d->stopped = 1;
		return;
	}
	d->records++;
	d->rec_type = type;
	d->rec_left = len;
	d->alert_len = 0;
	/* The server's handshake flight ends before the client's first
	 * encrypted record (its Finished): later records are never kept. */
	d->keep_record = keep_flights && dir == 1 && d->keys_on && type == CT_APPDATA &&
			 t->f->version >= TLS_V13 && !t->f->encrypted[0];
	if (d->keep_record)
		flight_append(t, d->hdr, 5);
	if (type == CT_CCS) {
		t->f->ccs[dir] = 1;
	} else if (d->keys_on || type == CT_APPDATA) {
		/* In TLS 1.3 the client's CCS is cosmetic; its first encrypted
		 * record (type 23) is what carries its Finished. */
		t->f->encrypted[dir] = 1;
		d->encrypted_records++;
		if (type == CT_ALERT) {
			t->f->alert_seen = 1;
			t->f->alert_encrypted = 1;
			t->f->alert_dir = (uint8_t)dir;
		}
	}
	check_complete(t);
}

static void record_body(struct tls *t, int dir, const uint8_t *p, size_t n)
{
	struct tls_dir *d = &t->d[dir];
	if (d->keep_record) {
		flight_append(t, p, n);
	} else if (d->rec_type == CT_HANDSHAKE && !d->keys_on) {
		handshake_bytes(t, dir, p, n);
	} else if (d->rec_type == CT_ALERT && !d->keys_on) {
		for (size_t i = 0; i < n && d->alert_len < 2; i++)
			d->alert[d->alert_len++] = p[i];
		if (d->alert_len == 2 && !t->f->alert_seen) {
			t->f->alert_seen = 1;
			t->f->alert_level = d->alert[0];
			t->f->alert_description = d->alert[1];
			t->f->alert_dir = (uint8_t)dir;
			if (d->alert[0] == 2)
				t->fatal_alert = 1;
		}
	}
}

static void record_end(struct tls *t, int dir)
{
	struct tls_dir *d = &t->d[dir];
	/* In TLS <= 1.2 the keys change right after ChangeCipherSpec. */
	if (d->rec_type == CT_CCS && t->f->version < TLS_V13)
		d->keys_on = 1;
}

parse_ret tls_feed(struct tls *t, int dir, const uint8_t *p, size_t n)
{
	struct tls_dir *d = &t->d[dir];
	const size_t all = n;
	if (d->stopped)
		return PARSE_STOPPED;
	t->f->record_bytes[dir] += n;
	while (n && !d->stopped) {
		if (d->rec_left == 0 && d->hdr_len < 5) {
			size_t take = 5u - d->hdr_len < n ? 5u - d->hdr_len : n;
			memcpy(d->hdr + d->hdr_len, p, take);
			d->hdr_len += (uint8_t)take;
			p += take;
			n -= take;
			if (d->hdr_len < 5)
				return (parse_ret)all;
			record_start(t, dir);
			if (d->stopped)
				return d->records ? PARSE_MALFORMED : PARSE_NOT_PROTOCOL;
			if (d->rec_left == 0) {
				record_end(t, dir);
				d->hdr_len = 0;
			}
			continue;
		}
		size_t take = d->rec_left < n ? d->rec_left : n;
		record_body(t, dir, p, take);
		p += take;
		n -= take;
		d->rec_left -= (uint32_t)take;
		if (d->rec_left == 0) {
			record_end(t, dir);
			d->hdr_len = 0;
		}
	}
	return (parse_ret)all;
}

void tls_gap(struct tls *t, int dir, uint32_t n)
{
	(void)n;
	anomaly(t, TLS_AN_GAP, dir);
	t->d[dir].stopped = 1;
}

int tls_done(const struct tls *t)
{
	if (t->f->handshake_complete || t->fatal_alert)
		return 1;
	if (t->d[0].stopped && t->d[1].stopped)
		return 1;
	return t->d[0].encrypted_records > TLS_MAX_RECORDS_AFTER_KEYS ||
	       t->d[1].encrypted_records > TLS_MAX_RECORDS_AFTER_KEYS;
}
