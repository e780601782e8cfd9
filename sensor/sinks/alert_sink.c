/*
 * alert_sink.c - syslog alerts with escaping and rate limiting.
 */
#include "sinks/alert_sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "util/siphash.h"
#include "util/units.h"

struct rate_slot {
	uint64_t key;
	uint64_t last_ns;
	uint64_t suppressed;
};

struct alert_sink {
	struct sink_config cfg;
	int open;
	uint64_t sent, suppressed;
	struct rate_slot slots[ALERT_RATE_SLOTS];
};

struct alert_sink *alert_sink_new(const struct sink_config *cfg)
{
	int facility = syslog_facility_from_name(cfg->syslog_facility);
	if (facility < 0)
		return NULL;
	struct alert_sink *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->cfg = *cfg;
	if (cfg->syslog_enabled) {
		openlog(a->cfg.syslog_tag, LOG_PID | LOG_NDELAY, facility);
		a->open = 1;
	}
	return a;
}

void alert_sink_free(struct alert_sink *a)
{
	if (!a)
		return;
	if (a->open)
		closelog();
	free(a);
}

uint64_t alert_sink_sent(const struct alert_sink *a)
{
	return a->sent;
}

uint64_t alert_sink_suppressed(const struct alert_sink *a)
{
	return a->suppressed;
}

void alert_escape(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; in[i] && i < ALERT_VALUE_MAX; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (o + 1 >= cap)
				break;
			out[o++] = (char)c;
		} else if (c == '"' || c == '\\') {
			if (o + 2 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = (char)c;
		} else {
			if (o + 4 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = 0;
}

void alert_format(const struct finding *f, uint64_t suppressed, char *buf, size_t len)
{
	char dom[ALERT_VALUE_MAX * 4 + 1], mx[sizeof(dom)], msg[sizeof(dom)], helo[sizeof(dom)],
	    ev[96];
	alert_escape(f->domain, dom, sizeof(dom));
	alert_escape(f->helo, helo, sizeof(helo));
	alert_escape(f->mx_host, mx, sizeof(mx));
	alert_escape(f->message, msg, sizeof(msg));
	evidence_names(f->evidence, ev, sizeof(ev));
	int n = snprintf(buf, len,
			 "%s%s%sfinding=%s severity=%s session=%s domain=\"%s\" mx_host=\"%s\" "
			 "evidence=%s rfc8460=%s client=%s server=%s helo=\"%s\" msg=\"%s\"",
			 f->sensor ? "sensor=" : "", f->sensor ? f->sensor : "", f->sensor ? " " : "",
			 finding_name(f->id), severity_name(f->severity), f->session, dom, mx,
			 ev[0] ? ev : "-", f->rfc8460 ? f->rfc8460 : "-", f->client_ip,
			 f->server_ip, helo, msg);
	if (suppressed && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " suppressed=%llu",
			 (unsigned long long)suppressed);
}

int alert_sink_send(struct alert_sink *a, const struct finding *f)
{
	if (!f->alert)
		return 0;
	/* Rate limit per (rule, server, domain) in capture time, so offline
	 * analysis limits like the live sensor does. */
	char key[400];
	int kn = snprintf(key, sizeof(key), "%d|%s|%s", f->id, f->server_ip, f->domain);
	static const uint8_t k[16] = "mxwatch-alert-rl";
	uint64_t h = siphash24(k, (const uint8_t *)key, kn > 0 ? (size_t)kn : 0);
	struct rate_slot *s = &a->slots[h % ALERT_RATE_SLOTS];
	uint64_t interval = (uint64_t)a->cfg.alert_interval_s * NS_PER_S;
	uint64_t suppressed = 0;
	if (s->key == h && s->last_ns && f->ts_ns >= s->last_ns &&
	    f->ts_ns - s->last_ns < interval) {
		s->suppressed++;
		a->suppressed++;
		return 0;
	}
	if (s->key == h)
		suppressed = s->suppressed;
	s->key = h;
	s->last_ns = f->ts_ns;
	s->suppressed = 0;
	a->sent++;
	if (a->open) {
		char line[ALERT_LINE_MAX];
		alert_format(f, suppressed, line, sizeof(line));
		int pri = f->severity >= SEV_HIGH ? LOG_WARNING : LOG_NOTICE;
		syslog(pri, "%s", line);
	}
	return 1;
}

void evidence_json(struct jsonw *w, uint32_t evidence)
{
	char ev[128];
	evidence_names(evidence, ev, sizeof(ev));
	jw_arr_begin(w);
	for (char *p = ev; *p;) {
		char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		jw_strn(w, p, n);
		p += n + (c ? 1 : 0);
	}
	jw_arr_end(w);
}

void finding_json(struct jsonw *w, const struct finding *f)
{
	jw_obj_begin(w);
	jw_kv_str(w, "type", "finding");
	if (f->sensor)
		jw_kv_str(w, "sensor", f->sensor);
	jw_kv_str(w, "id", finding_name(f->id));
	jw_kv_str(w, "severity", severity_name(f->severity));
	jw_kv_bool(w, "alert", f->alert);
	jw_kv_str(w, "session", f->session);
	jw_key(w, "ts");
	jw_time(w, f->ts_ns);
	jw_kv_opt(w, "domain", f->domain);
	jw_kv_opt(w, "mx_host", f->mx_host);
	jw_key(w, "evidence");
	evidence_json(w, f->evidence);
	jw_key(w, "rfc8460");
	jw_str_or_null(w, f->rfc8460);
	jw_kv_str(w, "client_ip", f->client_ip);
	jw_kv_u64(w, "client_port", f->client_port);
	jw_kv_str(w, "server_ip", f->server_ip);
	jw_kv_u64(w, "server_port", f->server_port);
	jw_kv_str(w, "community_id", f->community_id);
	if (f->pcap)
		jw_kv_str(w, "pcap", f->pcap);
	jw_kv_opt(w, "helo_name", f->helo);
	jw_kv_str(w, "message", f->message);
	jw_obj_end(w);
}
