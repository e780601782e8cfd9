/*
 * record.c - building and freeing the session record.
 */
#include "decoder/record.h"
#include "decoder/certcache.h"

#include <stdlib.h>
#include <string.h>

static void release_certs(struct session_record *r)
{
	for (int i = 0; i < r->n_cert_infos; i++)
		certcache_release(r->certs[i]);
	free(r->certs);
	r->certs = NULL;
	r->n_cert_infos = 0;
}

struct session_record *record_new(void)
{
	return calloc(1, sizeof(struct session_record));
}

void record_free(struct session_record *r)
{
	if (!r)
		return;
	smtp_facts_free(r->smtp);
	release_certs(r);
	tls_facts_free(r->tls);
	free(r->anomalies);
	free(r);
}

void record_add_anomaly(struct session_record *r, enum record_layer layer, const char *kind,
			int dir, uint32_t count, uint64_t bytes)
{
	if (r->n_anomalies == r->anomaly_room) {
		unsigned room = r->anomaly_room ? r->anomaly_room * 2u : 4u;
		if (room > RECORD_MAX_ANOMALIES)
			room = RECORD_MAX_ANOMALIES;
		struct record_anomaly *grown;
		if (room == r->anomaly_room ||
		    !(grown = realloc(r->anomalies, room * sizeof(*grown))))
			return;
		r->anomalies = grown;
		r->anomaly_room = (uint8_t)room;
	}
	struct record_anomaly *a = &r->anomalies[r->n_anomalies++];
	a->kind = kind;
	a->layer = (uint8_t)layer;
	a->dir = (uint8_t)(dir & 1);
	a->count = count;
	a->bytes = bytes;
}

void record_take_smtp(struct session_record *r, struct smtp_facts *smtp)
{
	r->smtp = smtp;
	for (int i = 0; smtp && smtp->anomalies && i < SMTP_AN_COUNT * 2; i++) {
		const struct smtp_anomaly_rec *a = &smtp->anomalies[i / 2][i % 2];
		if (a->count)
			record_add_anomaly(r, RECORD_LAYER_SMTP, smtp_anomaly_name(i / 2), i % 2,
					   a->count, a->bytes);
	}
}

void record_take_tls(struct session_record *r, struct tls_facts *tls)
{
	r->tls = tls;
	for (int i = 0; tls && i < TLS_AN_COUNT * 2; i++)
		if (tls->anomalies[i / 2][i % 2])
			record_add_anomaly(r, RECORD_LAYER_TLS, tls_anomaly_name(i / 2), i % 2,
					   tls->anomalies[i / 2][i % 2], 0);
	record_describe_certs(r);
}

void record_describe_certs(struct session_record *r)
{
	const struct tls_facts *tls = r->tls;
	release_certs(r);
	if (tls && tls->n_certs) {
		r->certs = malloc(tls->n_certs * sizeof(*r->certs));
		for (int i = 0; r->certs && i < tls->n_certs; i++)
			r->certs[r->n_cert_infos++] = certcache_ref(tls->certs[i].info);
	}
}

const char *record_certs_unobservable(const struct session_record *r)
{
	const struct tls_facts *t = r->tls;
	if (!t || !t->server_hello)
		return "no-server-hello";
	if (t->version >= TLS_V13 && !t->certs_source)
		return t->keylog_problem ? t->keylog_problem : "tls1.3-encrypted";
	return tls_server_flight_unread(t);
}

const char *session_kind_name(enum session_kind k)
{
	switch (k) {
	case SESSION_SMTP: return "smtp";
	case SESSION_SMTPS: return "smtps";
	case SESSION_OTHER: return "other";
	default: return "undecided";
	}
}
