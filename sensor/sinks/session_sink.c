/*
 * session_sink.c - session records as JSON lines or a terminal table.
 * Every string that came off the wire goes through the JSON escaper (JSON)
 * or through printable() (terminal), never raw.
 */
#include "sinks/session_sink.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sinks/alert_sink.h"
#include "sinks/flowsink.h"
#include "util/units.h"

#define BATCH_BYTES (64u << 10)

void session_sink_init(struct session_sink *k, FILE *out, int json)
{
	memset(k, 0, sizeof(*k));
	k->out = out;
	k->json = json;
	jw_init(&k->jw);
	jw_init(&k->batch);
	k->batch_limit = out && isatty(fileno(out)) ? 0 : BATCH_BYTES;
}

void session_sink_flush(struct session_sink *k)
{
	if (!k->batch.len && !k->batch.failed)
		return;
	if (k->before_write)
		k->before_write(k->before_ctx);
	if (jw_write(&k->batch, k->out))
		k->write_failed = 1;
}

void session_sink_free(struct session_sink *k)
{
	if (k->out)
		session_sink_flush(k);
	jw_free(&k->jw);
	jw_free(&k->batch);
}

/* A line of text, formatted like printf, into the batch. */
static void batch_printf(struct session_sink *k, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void batch_printf(struct session_sink *k, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1; /* cells are bounded: never happens */
	jw_raw(&k->batch, line, (size_t)n);
}

/* A finished JSON line into the batch; w is reset. */
static void batch_json(struct session_sink *k, struct jsonw *w)
{
	const char *text = jw_cstr(w);
	if (!text)
		k->write_failed = 1; /* this record lost for want of memory, not the batch */
	else {
		jw_raw(&k->batch, text, w->len);
		jw_raw(&k->batch, "\n", 1);
	}
	jw_reset(w);
}

static void smtp_json(struct jsonw *w, const struct smtp_facts *m, int tls_started)
{
	jw_obj_begin(w);
	jw_kv_u64_if(w, "greeting_code", m->greeting_code != 0, (uint64_t)m->greeting_code);
	jw_kv_opt(w, "greeting_host", m->greeting_host);
	jw_kv_opt(w, "helo_name", m->ehlo >= 0 ? m->helo_name : NULL);
	jw_kv_bool_if(w, "ehlo", m->ehlo >= 0, m->ehlo);
	jw_kv_opt(w, "ehlo_host", m->ehlo_host);
	jw_key(w, "starttls");
	jw_obj_begin(w);
	/* No capability list seen: unknown, not false. */
	jw_kv_bool_if(w, "offered", smtp_starttls_offer_known(m), m->starttls_offered);
	jw_kv_opt(w, "mangled_token", m->mangled_token);
	jw_kv_bool(w, "requested", m->starttls_requested);
	jw_kv_u64_if(w, "reply_code", m->starttls_reply != 0, (uint64_t)m->starttls_reply);
	jw_kv_bool(w, "tls_started", tls_started);
	jw_obj_end(w);
	jw_kv_bool(w, "pipelining_offered", m->pipelining_offered);
	jw_kv_bool(w, "chunking_offered", m->chunking_offered);
	jw_kv_bool(w, "auth_offered", m->auth_offered);
	jw_kv_bool(w, "auth_before_tls", m->auth_before_tls);
	jw_kv_opt(w, "auth_mechanism", m->auth_mechanism);
	jw_kv_opt(w, "mail_from_domain", m->has_mail_from ? m->mail_from_domain : NULL);
	jw_key(w, "rcpt_domains");
	jw_arr_begin(w);
	for (uint32_t i = 0; i < m->rcpt_domain_count; i++)
		jw_str(w, m->rcpt_domains[i]);
	jw_arr_end(w);
	jw_kv_u64(w, "rcpt_count", m->rcpt_count);
	jw_kv_bool(w, "plaintext_transaction", m->has_mail_from);
	jw_kv_bool(w, "pipelined", m->pipelined);
	jw_kv_u64(w, "data_count", m->data_count);
	jw_kv_u64(w, "bdat_count", m->bdat_count);
	jw_kv_u64(w, "body_bytes", m->body_bytes);
	jw_kv_u64(w, "bare_line_ends", m->bare_line_ends);
	if (m->bare_line_ends)
		jw_kv_u64(w, "bare_line_end_offset", m->bare_line_end_offset);
	jw_kv_u64(w, "smuggled_ends", m->smuggled_ends);
	if (m->smuggled_ends)
		jw_kv_u64(w, "smuggled_end_offset", m->smuggled_end_offset);
	jw_kv_u64(w, "commands", m->commands);
	jw_kv_bool(w, "quit", m->quit);
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

static void certs_json(struct jsonw *w, const struct session_record *r)
{
	const struct tls_facts *t = r->tls;
	jw_arr_begin(w);
	for (int i = 0; i < r->n_cert_infos && i < t->n_certs; i++) {
		const struct x509_info *info = r->certs[i];
		if (!info)
			continue;
		jw_obj_begin(w);
		jw_kv_opt(w, "subject", info->parsed ? info->subject : NULL);
		jw_kv_opt(w, "issuer", info->parsed ? info->issuer : NULL);
		jw_key(w, "san");
		jw_arr_begin(w);
		for (int j = 0; j < info->n_san; j++)
			jw_str(w, info->san[j]);
		jw_arr_end(w);
		jw_kv_opt(w, "not_before", info->not_before);
		jw_kv_opt(w, "not_after", info->not_after);
		jw_kv_opt(w, "sha256", info->sha256);
		jw_kv_opt(w, "spki_sha256", info->spki_sha256);
		jw_kv_bool(w, "parsed", info->parsed);
		jw_kv_u64(w, "der_length", t->certs[i].len);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

static void tls_json(struct jsonw *w, const struct session_record *r)
{
	const struct tls_facts *t = r->tls;
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
	jw_kv_opt(w, "sni", t->sni);
	jw_kv_bool(w, "client_hello", t->client_hello);
	jw_kv_bool(w, "server_hello", t->server_hello);
	jw_key(w, "offered_versions");
	jw_arr_begin(w);
	if (t->n_offered_versions) {
		for (int i = 0; i < t->n_offered_versions; i++)
			version_json(w, t->offered_versions[i]);
	} else if (t->client_hello) {
		version_json(w, t->client_version);
	}
	jw_arr_end(w);
	jw_kv_bool(w, "handshake_complete", t->handshake_complete);
	jw_key(w, "alert");
	if (t->alert_seen) {
		jw_obj_begin(w);
		jw_kv_str(w, "direction", t->alert_dir ? "server" : "client");
		jw_kv_bool(w, "encrypted", t->alert_encrypted);
		if (!t->alert_encrypted) {
			jw_kv_str(w, "level", t->alert_level == 2 ? "fatal" : "warning");
			jw_kv_str(w, "description", tls_alert_name(t->alert_description));
		}
		jw_obj_end(w);
	} else {
		jw_null(w);
	}
	const char *hidden = record_certs_unobservable(r);
	jw_kv_bool(w, "certs_observable", hidden == NULL);
	jw_key(w, "certs_unobservable_reason");
	jw_str_or_null(w, hidden);
	jw_kv_bool(w, "certificate_message", t->certificate_seen);
	jw_key(w, "certs_source");
	jw_str_or_null(w, t->certs_source);
	jw_key(w, "certs");
	certs_json(w, r);
	jw_obj_end(w);
}

static void verdict_json(struct jsonw *w, const struct verdict *v)
{
	jw_obj_begin(w);
	jw_kv_opt(w, "domain", v->domain);
	jw_kv_opt(w, "mx_host", v->mx_host);
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
	jw_kv_u64(w, "findings", (uint64_t)v->findings);
	jw_obj_end(w);
}

void session_record_json(struct jsonw *w, const struct session_record *r, const struct verdict *v)
{
	jw_obj_begin(w);
	record_json_head(w, "session", r);
	if (v) {
		jw_kv_str(w, "verdict", verdict_name(v->verdict));
		jw_kv_opt(w, "verdict_reason", v->reason);
	}
	jw_kv_str(w, "protocol", session_kind_name((enum session_kind)r->kind));
	jw_kv_str(w, "detected_by",
		  r->reason == SESSION_BY_PORT      ? "port"
		  : r->reason == SESSION_BY_CONTENT ? "content"
						    : "none");
	jw_kv_bool(w, "content_is_smtp", r->kind == SESSION_SMTP && !r->content_not_smtp);
	jw_key(w, "ndpi");
	if (r->ndpi.done) {
		jw_obj_begin(w);
		jw_kv_str(w, "protocol", r->ndpi.name);
		jw_kv_bool(w, "smtp", r->ndpi.smtp);
		jw_kv_bool(w, "cleartext_credentials", r->ndpi.cleartext_credentials);
		/* nDPI's verdict next to ours: disagreement is worth a look. */
		jw_kv_bool(w, "credentials_agree",
			   !r->smtp || r->ndpi.cleartext_credentials == r->smtp->auth_before_tls);
		jw_obj_end(w);
	} else {
		jw_null(w); /* not classified (see --ndpi) */
	}
	jw_key(w, "smtp");
	if (r->smtp)
		smtp_json(w, r->smtp, r->tls != NULL && r->tls_used);
	else
		jw_null(w);
	jw_key(w, "tls");
	if (r->tls)
		tls_json(w, r);
	else
		jw_null(w);
	record_json_counts(w, r);
	jw_kv_str(w, "end", r->end);
	jw_kv_bool(w, "open_at_end", r->open_at_end);
	jw_kv_bool(w, "midstream", r->midstream);
	jw_key(w, "anomalies");
	record_json_anomalies(w, r, RECORD_LAYER_TLS);
	jw_key(w, "policy");
	if (v)
		verdict_json(w, v);
	else
		jw_null(w);
	jw_obj_end(w);
}

/* Copies s into a printable terminal cell of cap - 1 columns; a cut is
 * marked with '~' in the last column, so columns never shift. */
static const char *printable(const char *s, char *buf, size_t cap)
{
	size_t o = 0;
	if (!s || !*s)
		return "-";
	for (; *s && o + 1 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (*s && o)
		buf[o - 1] = '~';
	buf[o] = 0;
	return buf;
}

/* The leaf certificate in a few words: its CN (else first SAN), marked
 * expired at the session's time or self-signed. */
static void cert_cell(const struct session_record *r, const char *when, char *buf, size_t cap)
{
	const struct tls_facts *t = r->tls;
	if (!t || !t->n_certs || !r->n_cert_infos || !r->certs[0] || !r->certs[0]->parsed) {
		snprintf(buf, cap, "-");
		return;
	}
	const struct x509_info *c = r->certs[0];
	char name[256] = "";
	const char *cn = strstr(c->subject, "CN=");
	if (cn && (cn == c->subject || cn[-1] == ','))
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(cn + 3, ","), cn + 3);
	else if (c->n_san)
		snprintf(name, sizeof(name), "%s", c->san[0]);
	char at[40];
	snprintf(at, sizeof(at), "%.32sZ", when); /* the same form as not_after */
	const char *mark = c->not_after[0] && strcmp(c->not_after, at) < 0 ? " expired"
			   : !strcmp(c->subject, c->issuer)                 ? " self-signed"
									    : "";
	char n[32];
	size_t room = cap - strlen(mark);
	const char *shown = printable(name, n, room < sizeof(n) ? room : sizeof(n));
	snprintf(buf, cap, "%.*s%s", (int)(room - 1), shown, mark);
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
	} else if (smtp_starttls_not_offered(m)) {
		snprintf(buf, cap, "not offered");
	} else {
		snprintf(buf, cap, "unknown");
	}
}

/* "verified", or "not-checkable:tls13-no-keys" with the reason. */
static void verdict_cell(const struct verdict *v, char *buf, size_t cap)
{
	if (!v)
		snprintf(buf, cap, "-");
	else if (v->reason)
		snprintf(buf, cap, "%s:%s", verdict_name(v->verdict), v->reason);
	else
		snprintf(buf, cap, "%s", verdict_name(v->verdict));
}

static void write_text(struct session_sink *k, const struct session_record *r,
		       const struct verdict *v)
{
	char cl[64], se[64], when[32], verdict[48];
	char helo[25], st[40], tlsv[40], rc[64], sni[40], cert[29];
	if (!k->header_done) {
		batch_printf(k, "%-19s %-16s %-22s %-22s %-5s %-24s %-20s %-16s %-28s %-28s %s\n",
			"start (UTC)", "session", "client", "server", "proto", "helo", "starttls",
			"tls", "verdict", "certificate", "rcpt domains / sni");
		k->header_done = 1;
	}
	time_t secs = (time_t)(r->ts_first / NS_PER_S);
	struct tm tm;
	if (!gmtime_r(&secs, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(when, sizeof(when), "-");
	verdict_cell(v, verdict, sizeof(verdict));
	snprintf(cl, sizeof(cl), "%s:%u", r->ip[0], r->port[0]);
	snprintf(se, sizeof(se), "%s:%u", r->ip[1], r->port[1]);
	const struct smtp_facts *m = r->smtp;
	const struct tls_facts *t = r->tls;
	starttls_summary(m, st, sizeof(st));
	if (t && t->server_hello) {
		const char *name = tls_version_name(t->version);
		snprintf(tlsv, sizeof(tlsv), "%s%s", name ? name : "?",
			 t->handshake_complete ? "" : "!");
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
	cert_cell(r, when, cert, sizeof(cert));
	batch_printf(k, "%-19s %-16s %-22s %-22s %-5s %-24s %-20s %-16s %-28s %-28s %s\n", when,
		r->id, cl, se, session_kind_name((enum session_kind)r->kind),
		m ? printable(m->helo_name, helo, sizeof(helo)) : "-", st, tlsv, verdict, cert,
		rc[0] ? rc : "-");
}

void session_sink_write(struct session_sink *k, const struct session_record *r,
			const struct verdict *v, struct jsonw *json, const struct finding *findings,
			int n_findings)
{
	if (k->findings_only && !n_findings)
		return;
	k->written++;
	if (k->json) {
		if (!k->findings_only)
			batch_json(k, json);
		for (int i = 0; i < n_findings; i++) {
			finding_json(&k->jw, &findings[i]);
			batch_json(k, &k->jw);
		}
	} else {
		write_text(k, r, v);
	}
	for (int i = 0; !k->json && i < n_findings; i++) {
		char dom[64], msg[160];
		alert_escape(findings[i].domain, dom, sizeof(dom));
		alert_escape(findings[i].message, msg, sizeof(msg));
		batch_printf(k, "    %s %-8s %-28s %s%s%s\n", findings[i].alert ? "!" : "-",
			severity_name(findings[i].severity), finding_name(findings[i].id),
			dom[0] ? dom : "", dom[0] ? ": " : "", msg);
	}
	if (k->batch.len > k->batch_limit || k->batch.failed)
		session_sink_flush(k);
}
