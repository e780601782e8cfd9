/*
 * flowsink.c - writes one summary per finished TCP flow.
 */
#include "sinks/flowsink.h"

#include <inttypes.h>

void flowsink_init(struct flowsink *s, FILE *out, enum flowsink_format fmt)
{
	s->out = out;
	s->format = fmt;
	s->header_done = 0;
	jw_init(&s->jw);
}

void flowsink_free(struct flowsink *s)
{
	jw_free(&s->jw);
}

static const char *const side_names[2] = {"client", "server"};

static void endpoint(const struct session_record *r, int side, char *buf, size_t len)
{
	if (r->family == 6)
		snprintf(buf, len, "[%s]:%u", r->ip[side], r->port[side]);
	else
		snprintf(buf, len, "%s:%u", r->ip[side], r->port[side]);
}

void record_json_counts(struct jsonw *w, const struct session_record *r)
{
	jw_key(w, "packets");
	jw_obj_begin(w);
	jw_kv_u64(w, "client", r->packets[0]);
	jw_kv_u64(w, "server", r->packets[1]);
	jw_obj_end(w);
	jw_key(w, "bytes");
	jw_obj_begin(w);
	jw_kv_u64(w, "client", r->stream_bytes[0]);
	jw_kv_u64(w, "server", r->stream_bytes[1]);
	jw_obj_end(w);
}

void record_json_anomalies(struct jsonw *w, const struct session_record *r, int upto)
{
	jw_arr_begin(w);
	for (unsigned i = 0; i < r->n_anomalies; i++) {
		const struct record_anomaly *a = &r->anomalies[i];
		if (a->layer > upto)
			continue;
		jw_obj_begin(w);
		jw_kv_str(w, "kind", a->kind);
		jw_kv_str(w, "direction", side_names[a->dir & 1]);
		jw_kv_u64(w, "count", a->count);
		if (a->layer != RECORD_LAYER_TLS) {
			jw_kv_u64(w, "bytes", a->bytes);
		}
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

void record_json_head(struct jsonw *w, const char *type, const struct session_record *r)
{
	jw_kv_str(w, "type", type);
	if (r->sensor)
		jw_kv_str(w, "sensor", r->sensor);
	jw_kv_str(w, "id", r->id);
	jw_kv_str(w, "community_id", r->community_id);
	if (r->pcap)
		jw_kv_str(w, "pcap", r->pcap);
	jw_key(w, "ts_start");
	jw_time(w, r->ts_first);
	jw_key(w, "ts_end");
	jw_time(w, r->ts_last);
	for (int side = 0; side < 2; side++) {
		jw_key(w, side_names[side]);
		jw_obj_begin(w);
		jw_kv_str(w, "ip", r->ip[side]);
		jw_kv_u64(w, "port", r->port[side]);
		jw_obj_end(w);
	}
}

static void write_json(struct flowsink *s, const struct session_record *r)
{
	struct jsonw *w = &s->jw;

	jw_obj_begin(w);
	record_json_head(w, "flow", r);
	record_json_counts(w, r);
	jw_kv_bool(w, "midstream", r->midstream);
	jw_kv_str(w, "end", r->end);
	jw_key(w, "anomalies");
	record_json_anomalies(w, r, RECORD_LAYER_STREAM);
	jw_obj_end(w);
	jw_emit_line(w, s->out);
}

static void write_text(struct flowsink *s, const struct session_record *r)
{
	char c[64], sv[64], an[160] = "-";
	if (!s->header_done) {
		fprintf(s->out, "%-16s %-28s %-28s %13s %23s %-7s %s\n", "flow", "client", "server",
			"packets c/s", "bytes c/s", "end", "anomalies");
		s->header_done = 1;
	}
	endpoint(r, 0, c, sizeof(c));
	endpoint(r, 1, sv, sizeof(sv));
	size_t off = 0;
	for (unsigned i = 0; i < r->n_anomalies && off < sizeof(an); i++) {
		const struct record_anomaly *a = &r->anomalies[i];
		if (a->layer != RECORD_LAYER_STREAM)
			continue;
		int n = snprintf(an + off, sizeof(an) - off, "%s%s(%s,%" PRIu64 "B)", i ? " " : "",
				 a->kind, a->dir == 0 ? "c" : "s", a->bytes);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	char pk[32], by[48];
	snprintf(pk, sizeof(pk), "%" PRIu64 "/%" PRIu64, r->packets[0], r->packets[1]);
	snprintf(by, sizeof(by), "%" PRIu64 "/%" PRIu64, r->stream_bytes[0], r->stream_bytes[1]);
	fprintf(s->out, "%-16s %-28s %-28s %13s %23s %-7s %s%s\n", r->id, c, sv, pk, by, r->end, an,
		r->midstream ? " midstream" : "");
}

void flowsink_write(struct flowsink *s, const struct session_record *r)
{
	if (s->format == FLOWSINK_JSON)
		write_json(s, r);
	else
		write_text(s, r);
}
