/*
 * store.c - results into SQLite, batched.
 */
#include "sinks/store.h"

#include <stdio.h>
#include <syslog.h>

#include "util/units.h"

void store_init(struct store *s, struct db *db, const char *path)
{
	s->db = db;
	s->path = path;
	s->syslog = 0;
	s->pending = 0;
	s->in_txn = 0;
	s->failed = 0;
}

int store_usable(const struct store *s)
{
	return s->db && !s->failed;
}

int store_batch(struct store *s)
{
	if (!store_usable(s))
		return -1;
	if (s->in_txn)
		return 0;
	if (db_begin(s->db)) {
		store_fail(s, "starting a transaction");
		return -1;
	}
	s->in_txn = 1;
	return 0;
}

void store_fail(struct store *s, const char *what)
{
	/* Alerts go on, but the operator must learn that the store stopped:
	 * on stderr and, for a daemon, in syslog too. */
	fprintf(stderr, "mxwatch: %s in %s stopped: %s\n", what, s->path, db_errmsg(s->db));
	if (s->syslog)
		syslog(LOG_ERR,
		       "error=store-failed db=\"%s\" msg=\"%s\" (alerts continue, "
		       "nothing more is stored)",
		       s->path, db_errmsg(s->db));
	if (s->in_txn)
		db_rollback(s->db);
	s->in_txn = 0;
	s->failed = 1;
	s->pending = 0;
}

void store_commit(struct store *s)
{
	if (!store_usable(s) || !s->in_txn)
		return;
	if (db_commit(s->db))
		store_fail(s, "committing results");
	s->in_txn = 0;
	s->pending = 0;
}

void store_session(struct store *s, const struct session_record *r, const struct verdict *v,
		   const char *json, const struct finding *findings, int n_findings)
{
	if (store_batch(s))
		return;
	const struct tls_facts *t = r->tls;
	const struct smtp_facts *m = r->smtp;
	struct db_session_row row = {
	    .id = r->id,
	    .ts_start = (int64_t)(r->ts_first / NS_PER_S),
	    .ts_end = (int64_t)(r->ts_last / NS_PER_S),
	    .client_ip = r->ip[0],
	    .server_ip = r->ip[1],
	    .server_port = r->port[1],
	    .domain = v->domain,
	    .mx_host = v->mx_host,
	    .tls_version = t && t->server_hello ? tls_version_name(t->version) : NULL,
	    .starttls_offered = m && m->ehlo_reply_seen ? m->starttls_offered : -1,
	    .verified = v->verified,
	    .verdict = verdict_name(v->verdict),
	    .verdict_reason = v->reason,
	    .record = json ? json : "{}",
	};
	int rc = db_session_put(s->db, &row);
	for (int i = 0; !rc && i < v->n_domains; i++)
		rc = db_session_domain_put(s->db, r->id, v->domains[i], v->mx_hosts[i]);
	for (int i = 0; !rc && i < n_findings; i++) {
		const struct finding *x = &findings[i];
		struct db_finding_row fr = {
		    .session_id = x->session,
		    .rule = finding_name(x->id),
		    .severity = severity_name(x->severity),
		    .domain = x->domain,
		    .mx_host = x->mx_host,
		    .rfc8460 = x->rfc8460,
		    .ts = (int64_t)(x->ts_ns / NS_PER_S),
		    .sending_ip = x->client_ip,
		    .receiving_ip = x->server_ip,
		    .message = x->message,
		};
		rc = db_finding_put(s->db, &fr);
	}
	if (rc) {
		store_fail(s, "storing results");
		return;
	}
	if (++s->pending >= STORE_BATCH)
		store_commit(s);
}

int store_discovery(struct store *s, const char *domain, int64_t ts)
{
	if (store_batch(s))
		return 0;
	if (db_discovery_put(s->db, domain, ts) != 0)
		return 0;
	s->pending++;
	return 1;
}
