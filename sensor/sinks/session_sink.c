/*
 * session_sink.c - session records as JSON lines or a terminal table.
 * Every string that came off the wire goes through the JSON escaper (JSON)
 * or through printable() (terminal), never raw.
 */
#include "sinks/session_sink.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <string.h>

#include "sinks/alert_sink.h"
#include "sinks/flowsink.h"
#include "decoder/x509.h"

void session_sink_init(struct session_sink *k, FILE *out, int json)
{
	memset(k, 0, sizeof(*k));
	k->out = out;
	k->json = json;
	jw_init(&k->jw);
}

void session_sink_free(struct session_sink *k)
{
	jw_free(&k->jw);
}

static const char *kind_name(enum session_kind k)
{
	switch (k) {
	case SESSION_SMTP: return "smtp";
	case SESSION_SMTPS: return "smtps";
	case SESSION_OTHER: return "other";
	default: return "undecided";
	}
}

static void key_str_or_null(struct jsonw *w, const char *k, const char *v)
{
	jw_key(w, k);
	if (v && *v)
		jw_str(w, v);
	else
		jw_null(w);
}

static void smtp_json(struct jsonw *w, const struct smtp_facts *m, int tls_started)
{
	jw_obj_begin(w);
	jw_key(w, "greeting_code");
	if (m->greeting_code)
		jw_u64(w, (uint64_t)m->greeting_code);
	else
		jw_null(w);
	key_str_or_null(w, "greeting_host", m->greeting_host);
	key_str_or_null(w, "helo_name", m->ehlo >= 0 ? m->helo_name : NULL);
	jw_key(w, "ehlo");
	if (m->ehlo >= 0)
		jw_bool(w, m->ehlo);
	else
		jw_null(w);
	key_str_or_null(w, "ehlo_host", m->ehlo_host);
	jw_key(w, "starttls");
	jw_obj_begin(w);
	jw_key(w, "offered");
	if (m->ehlo_reply_seen)
		jw_bool(w, m->starttls_offered);
	else
		jw_null(w); /* no capability list seen: unknown, not false */
	key_str_or_null(w, "mangled_token", m->mangled_token);
	jw_key(w, "requested");
	jw_bool(w, m->starttls_requested);
	jw_key(w, "reply_code");
	if (m->starttls_reply)
		jw_u64(w, (uint64_t)m->starttls_reply);
	else
		jw_null(w);
	jw_key(w, "tls_started");
	jw_bool(w, tls_started);
	jw_obj_end(w);
	jw_key(w, "pipelining_offered");
	jw_bool(w, m->pipelining_offered);
	jw_key(w, "chunking_offered");
	jw_bool(w, m->chunking_offered);
	jw_key(w, "auth_offered");
	jw_bool(w, m->auth_offered);
	jw_key(w, "auth_before_tls");
	jw_bool(w, m->auth_before_tls);
	key_str_or_null(w, "auth_mechanism", m->auth_mechanism);
	jw_key(w, "mail_from_domain");
	if (m->has_mail_from && m->mail_from_domain[0])
		jw_str(w, m->mail_from_domain);
	else
		jw_null(w);
	jw_key(w, "rcpt_domains");
	jw_arr_begin(w);
	for (uint32_t i = 0; i < m->rcpt_domain_count; i++)
		jw_str(w, m->rcpt_domains[i]);
	jw_arr_end(w);
	jw_key(w, "rcpt_count");
	jw_u64(w, m->rcpt_count);
	jw_key(w, "plaintext_transaction");
	jw_bool(w, m->has_mail_from);
	jw_key(w, "pipelined");
	jw_bool(w, m->pipelined);
	jw_key(w, "data_count");
	jw_u64(w, m->data_count);
	jw_key(w, "bdat_count");
	jw_u64(w, m->bdat_count);
	jw_key(w, "body_bytes");
	jw_u64(w, m->body_bytes);
	jw_key(w, "commands");
	jw_u64(w, m->commands);
	jw_key(w, "quit");
	jw_bool(w, m->quit);
	jw_obj_end(w);
}

static void version_json(struct jsonw *w, uint16_t v)
{
	const char *name = tls_version_name(v);
	char buf[16];
	if (!name) {
		snprintf(buf, sizeof(buf), "0x%04x", v);
		name = buf;
	}
	jw_str(w, name);
}

static void certs_json(struct jsonw *w, const struct tls_facts *t)
{
	jw_arr_begin(w);
	for (int i = 0; i < t->n_certs; i++) {
		static _Thread_local struct x509_info info; /* large: not on the stack */
		x509_describe(t->certs[i].der, t->certs[i].len, &info);
		jw_obj_begin(w);
		key_str_or_null(w, "subject", info.parsed ? info.subject : NULL);
		key_str_or_null(w, "issuer", info.parsed ? info.issuer : NULL);
		jw_key(w, "san");
		jw_arr_begin(w);
		for (int j = 0; j < info.n_san; j++)
			jw_str(w, info.san[j]);
		jw_arr_end(w);
		key_str_or_null(w, "not_before", info.not_before);
		key_str_or_null(w, "not_after", info.not_after);
		key_str_or_null(w, "sha256", info.sha256);
		key_str_or_null(w, "spki_sha256", info.spki_sha256);
		jw_key(w, "parsed");
		jw_bool(w, info.parsed);
		jw_key(w, "der_length");
		jw_u64(w, t->certs[i].len);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

static void tls_json(struct jsonw *w, const struct tls_facts *t)
{
	char buf[96];
	jw_obj_begin(w);
	jw_key(w, "version");
	if (t->server_hello)
		version_json(w, t->version);
	else
		jw_null(w);
	jw_key(w, "cipher");
	if (t->server_hello) {
		tls_cipher_name(t->cipher, buf, sizeof(buf));
		jw_str(w, buf);
	} else {
		jw_null(w);
	}
	key_str_or_null(w, "sni", t->sni);
	jw_key(w, "client_hello");
	jw_bool(w, t->client_hello);
	jw_key(w, "server_hello");
	jw_bool(w, t->server_hello);
	jw_key(w, "offered_versions");
	jw_arr_begin(w);
	if (t->n_offered_versions) {
		for (int i = 0; i < t->n_offered_versions; i++)
			version_json(w, t->offered_versions[i]);
	} else if (t->client_hello) {
		version_json(w, t->client_version);
	}
	jw_arr_end(w);
	jw_key(w, "handshake_complete");
	jw_bool(w, t->handshake_complete);
	jw_key(w, "alert");
	if (t->alert_seen) {
		jw_obj_begin(w);
		jw_key(w, "direction");
		jw_str(w, t->alert_dir ? "server" : "client");
		jw_key(w, "encrypted");
		jw_bool(w, t->alert_encrypted);
		if (!t->alert_encrypted) {
			jw_key(w, "level");
			jw_str(w, t->alert_level == 2 ? "fatal" : "warning");
			jw_key(w, "description");
			jw_str(w, tls_alert_name(t->alert_description));
		}
		jw_obj_end(w);
	} else {
		jw_null(w);
	}
	/* Up to TLS 1.2 the server's flight is in the clear: a chain it sent
	 * was seen, and an empty list means it sent none (anonymous suites). */
	int observable = t->server_hello && t->version < 0x0304;
	jw_key(w, "certs_observable");
	jw_bool(w, observable);
	jw_key(w, "certs_unobservable_reason");
	if (observable)
		jw_null(w);
	else if (t->server_hello && t->version >= 0x0304)
		jw_str(w, "tls1.3-encrypted");
	else if (!t->server_hello)
		jw_str(w, "no-server-hello");
	else
		jw_str(w, "unknown");
	jw_key(w, "certificate_message");
	jw_bool(w, t->certificate_seen);
	jw_key(w, "certs");
	certs_json(w, t);
	jw_obj_end(w);
}

static void anomalies_json(struct jsonw *w, const struct flow *f, const struct session *s)
{
	static const char *const dirs[2] = {"client", "server"};
	jw_arr_begin(w);
	for (unsigned i = 0; i < f->n_anomalies; i++) {
		const struct flow_anomaly *a = &f->anomalies[i];
		jw_obj_begin(w);
		jw_key(w, "kind");
		jw_str(w, reasm_anomaly_name((enum reasm_anomaly)a->kind));
		jw_key(w, "direction");
		jw_str(w, dirs[a->dir & 1]);
		jw_key(w, "count");
		jw_u64(w, a->count);
		jw_key(w, "bytes");
		jw_u64(w, a->bytes);
		jw_obj_end(w);
	}
	for (int k = 0; s->smtp && k < SMTP_AN_COUNT; k++) {
		for (int d = 0; d < 2; d++) {
			const struct smtp_anomaly_rec *r = &smtp_facts(s->smtp)->anomalies[k][d];
			if (!r->count)
				continue;
			jw_obj_begin(w);
			jw_key(w, "kind");
			jw_str(w, smtp_anomaly_name((enum smtp_anomaly)k));
			jw_key(w, "direction");
			jw_str(w, dirs[d]);
			jw_key(w, "count");
			jw_u64(w, r->count);
			jw_key(w, "bytes");
			jw_u64(w, r->bytes);
			jw_obj_end(w);
		}
	}
	for (int k = 0; s->tls && k < TLS_AN_COUNT; k++) {
		for (int d = 0; d < 2; d++) {
			uint32_t c = tls_facts(s->tls)->anomalies[k][d];
			if (!c)
				continue;
			jw_obj_begin(w);
			jw_key(w, "kind");
			jw_str(w, tls_anomaly_name((enum tls_anomaly)k));
			jw_key(w, "direction");
			jw_str(w, dirs[d]);
			jw_key(w, "count");
			jw_u64(w, c);
			jw_obj_end(w);
		}
	}
	jw_arr_end(w);
}

static void verdict_json(struct jsonw *w, const struct verdict *v)
{
	jw_obj_begin(w);
	jw_key(w, "domain");
	jw_str_or_null(w, v->domain[0] ? v->domain : NULL);
	jw_key(w, "mx_host");
	jw_str_or_null(w, v->mx_host[0] ? v->mx_host : NULL);
	jw_key(w, "evidence");
	evidence_json(w, v->evidence);
	jw_key(w, "domains");
	jw_arr_begin(w);
	for (int i = 0; i < v->n_domains; i++)
		jw_str(w, v->domains[i]);
	jw_arr_end(w);
	jw_key(w, "verified");
	if (v->verified >= 0)
		jw_bool(w, v->verified);
	else
		jw_null(w);
	jw_key(w, "method");
	jw_str_or_null(w, v->method);
	jw_key(w, "findings");
	jw_u64(w, (uint64_t)v->findings);
	jw_obj_end(w);
}

void session_record_json(struct jsonw *w, const struct flow *f, const struct session *s,
			 const struct verdict *v)
{
	jw_obj_begin(w);
	flowsink_json_head(w, "session", f);
	jw_key(w, "protocol");
	jw_str(w, kind_name(s->kind));
	jw_key(w, "detected_by");
	jw_str(w, s->reason == SESSION_BY_PORT ? "port" : s->reason == SESSION_BY_CONTENT ? "content" : "none");
	jw_key(w, "content_is_smtp");
	jw_bool(w, s->kind == SESSION_SMTP && !s->content_not_smtp);
	jw_key(w, "ndpi");
	if (s->cls_res.done) {
		jw_obj_begin(w);
		jw_key(w, "protocol");
		jw_str(w, s->cls_res.name);
		jw_key(w, "smtp");
		jw_bool(w, s->cls_res.smtp);
		jw_key(w, "cleartext_credentials");
		jw_bool(w, s->cls_res.cleartext_credentials);
		/* nDPI's verdict next to ours: disagreement is worth a look. */
		jw_key(w, "credentials_agree");
		jw_bool(w, !s->smtp || s->cls_res.cleartext_credentials ==
					       smtp_facts(s->smtp)->auth_before_tls);
		jw_obj_end(w);
	} else {
		jw_null(w); /* not classified (see --ndpi) */
	}
	jw_key(w, "smtp");
	if (s->smtp)
		smtp_json(w, smtp_facts(s->smtp), s->tls != NULL && s->tls_active[0]);
	else
		jw_null(w);
	jw_key(w, "tls");
	if (s->tls)
		tls_json(w, tls_facts(s->tls));
	else
		jw_null(w);
	flowsink_json_counts(w, f);
	jw_key(w, "end");
	jw_str(w, flow_end_name((enum flow_end)f->end));
	jw_key(w, "open_at_end");
	jw_bool(w, f->end == FLOW_END_EOF);
	jw_key(w, "midstream");
	jw_bool(w, f->midstream);
	jw_key(w, "anomalies");
	anomalies_json(w, f, s);
	jw_key(w, "policy");
	if (v)
		verdict_json(w, v);
	else
		jw_null(w);
	jw_obj_end(w);
}

/* Copies s into a printable, bounded terminal cell. */
static const char *printable(const char *s, char *buf, size_t cap)
{
	size_t o = 0;
	if (!s || !*s)
		return "-";
	for (; *s && o + 1 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	buf[o] = 0;
	return buf;
}

/* One-word STARTTLS story of a session for the terminal table. */
static void starttls_summary(const struct smtp_facts *m, char *buf, size_t cap)
{
	char tok[24];
	if (!m) {
		snprintf(buf, cap, "-");
	} else if (m->mangled_token[0] && !m->starttls_offered) {
		snprintf(buf, cap, "mangled:%s", printable(m->mangled_token, tok, sizeof(tok)));
	} else if (m->starttls_requested && m->starttls_reply) {
		snprintf(buf, cap, "%s %d", m->starttls_reply == 220 ? "accepted" : "refused",
			 m->starttls_reply);
	} else if (m->starttls_requested) {
		snprintf(buf, cap, "requested");
	} else if (m->starttls_offered) {
		snprintf(buf, cap, "offered,unused");
	} else if (m->ehlo_reply_seen) {
		snprintf(buf, cap, "not offered");
	} else {
		snprintf(buf, cap, "unknown");
	}
}

static void write_text(struct session_sink *k, const struct flow *f, const struct session *s)
{
	char c[INET6_ADDRSTRLEN], sv[INET6_ADDRSTRLEN], cl[64], se[64];
	char helo[32], st[40], tlsv[40], rc[64], sni[40];
	if (!k->header_done) {
		fprintf(k->out, "%-16s %-22s %-22s %-5s %-24s %-20s %-16s %s\n", "session",
			"client", "server", "proto", "helo", "starttls", "tls", "rcpt domains / sni");
		k->header_done = 1;
	}
	flow_addr_str(f, 0, c, sizeof(c));
	flow_addr_str(f, 1, sv, sizeof(sv));
	snprintf(cl, sizeof(cl), "%s:%u", c, f->key.port[0]);
	snprintf(se, sizeof(se), "%s:%u", sv, f->key.port[1]);
	const struct smtp_facts *m = s->smtp ? smtp_facts(s->smtp) : NULL;
	const struct tls_facts *t = s->tls ? tls_facts(s->tls) : NULL;
	starttls_summary(m, st, sizeof(st));
	if (t && t->server_hello) {
		const char *v = tls_version_name(t->version);
		snprintf(tlsv, sizeof(tlsv), "%s%s", v ? v : "?", t->handshake_complete ? "" : "!");
	} else if (t && t->alert_seen) {
		snprintf(tlsv, sizeof(tlsv), "alert");
	} else {
		snprintf(tlsv, sizeof(tlsv), "%s", t ? "no hello" : "none");
	}
	size_t off = 0;
	rc[0] = 0;
	for (uint32_t i = 0; m && i < m->rcpt_domain_count; i++) {
		char d[40];
		int n = snprintf(rc + off, sizeof(rc) - off, "%s%s", i ? "," : "",
				 printable(m->rcpt_domains[i], d, sizeof(d)));
		if (n < 0 || (size_t)n >= sizeof(rc) - off)
			break;
		off += (size_t)n;
	}
	if (!rc[0] && t && t->sni[0])
		snprintf(rc, sizeof(rc), "sni=%s", printable(t->sni, sni, sizeof(sni)));
	fprintf(k->out, "%-16s %-22s %-22s %-5s %-24s %-20s %-16s %s\n", f->id, cl, se,
		kind_name(s->kind), m ? printable(m->helo_name, helo, sizeof(helo)) : "-", st,
		tlsv, rc[0] ? rc : "-");
}

void session_sink_write(struct session_sink *k, const struct flow *f, const struct session *s,
			const struct verdict *v, const struct finding *findings, int n_findings)
{
	k->written++;
	if (k->json) {
		session_record_json(&k->jw, f, s, v);
		jw_emit_line(&k->jw, k->out);
		for (int i = 0; i < n_findings; i++) {
			finding_json(&k->jw, &findings[i]);
			jw_emit_line(&k->jw, k->out);
		}
		return;
	}
	write_text(k, f, s);
	for (int i = 0; i < n_findings; i++) {
		char dom[64], msg[160];
		alert_escape(findings[i].domain, dom, sizeof(dom));
		alert_escape(findings[i].message, msg, sizeof(msg));
		fprintf(k->out, "    %s %-8s %-28s %s%s%s\n", findings[i].alert ? "!" : "-",
			severity_name(findings[i].severity), finding_name(findings[i].id),
			dom[0] ? dom : "", dom[0] ? ": " : "", msg);
	}
}
