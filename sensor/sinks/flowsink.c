/*
 * flowsink.c - writes one summary per finished TCP flow.
 */
#include "sinks/flowsink.h"

#include <arpa/inet.h>
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

static void endpoint(const struct flow *f, int side, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	flow_addr_str(f, side, a, sizeof(a));
	if (f->key.family == 6)
		snprintf(buf, len, "[%s]:%u", a, f->key.port[side]);
	else
		snprintf(buf, len, "%s:%u", a, f->key.port[side]);
}

void flowsink_json_counts(struct jsonw *w, const struct flow *f)
{
	jw_key(w, "packets");
	jw_obj_begin(w);
	jw_key(w, "client");
	jw_u64(w, f->packets[0]);
	jw_key(w, "server");
	jw_u64(w, f->packets[1]);
	jw_obj_end(w);
	jw_key(w, "bytes");
	jw_obj_begin(w);
	jw_key(w, "client");
	jw_u64(w, flow_stream_bytes(f, 0));
	jw_key(w, "server");
	jw_u64(w, flow_stream_bytes(f, 1));
	jw_obj_end(w);
}

void flowsink_json_anomalies(struct jsonw *w, const struct flow *f)
{
	jw_arr_begin(w);
	for (unsigned i = 0; i < f->n_anomalies; i++) {
		const struct flow_anomaly *a = &f->anomalies[i];
		jw_obj_begin(w);
		jw_key(w, "kind");
		jw_str(w, reasm_anomaly_name((enum reasm_anomaly)a->kind));
		jw_key(w, "direction");
		jw_str(w, a->dir == FLOW_TO_SERVER ? "client" : "server");
		jw_key(w, "count");
		jw_u64(w, a->count);
		jw_key(w, "bytes");
		jw_u64(w, a->bytes);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

void flowsink_json_head(struct jsonw *w, const char *type, const struct flow *f)
{
	static const char *const side_names[2] = {"client", "server"};
	char a[INET6_ADDRSTRLEN];
	jw_key(w, "type");
	jw_str(w, type);
	jw_key(w, "id");
	jw_str(w, f->id);
	jw_key(w, "ts_start");
	jw_time(w, f->ts_first);
	jw_key(w, "ts_end");
	jw_time(w, f->ts_last);
	for (int side = 0; side < 2; side++) {
		jw_key(w, side_names[side]);
		jw_obj_begin(w);
		flow_addr_str(f, side, a, sizeof(a));
		jw_key(w, "ip");
		jw_str(w, a);
		jw_key(w, "port");
		jw_u64(w, f->key.port[side]);
		jw_obj_end(w);
	}
}

static void write_json(struct flowsink *s, const struct flow *f)
{
	struct jsonw *w = &s->jw;

	jw_obj_begin(w);
	flowsink_json_head(w, "flow", f);
	flowsink_json_counts(w, f);
	jw_key(w, "midstream");
	jw_bool(w, f->midstream);
	jw_key(w, "end");
	jw_str(w, flow_end_name((enum flow_end)f->end));
	jw_key(w, "anomalies");
	flowsink_json_anomalies(w, f);
	jw_obj_end(w);
	jw_emit_line(w, s->out);
}

static void write_text(struct flowsink *s, const struct flow *f)
{
	char c[64], sv[64], an[160] = "-";
	if (!s->header_done) {
		fprintf(s->out, "%-16s %-28s %-28s %13s %23s %-7s %s\n", "flow", "client", "server",
			"packets c/s", "bytes c/s", "end", "anomalies");
		s->header_done = 1;
	}
	endpoint(f, 0, c, sizeof(c));
	endpoint(f, 1, sv, sizeof(sv));
	size_t off = 0;
	for (unsigned i = 0; i < f->n_anomalies && off < sizeof(an); i++) {
		const struct flow_anomaly *a = &f->anomalies[i];
		int n = snprintf(an + off, sizeof(an) - off, "%s%s(%s,%" PRIu64 "B)",
				 i ? " " : "", reasm_anomaly_name((enum reasm_anomaly)a->kind),
				 a->dir == FLOW_TO_SERVER ? "c" : "s", a->bytes);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	char pk[32], by[48];
	snprintf(pk, sizeof(pk), "%" PRIu64 "/%" PRIu64, f->packets[0], f->packets[1]);
	snprintf(by, sizeof(by), "%" PRIu64 "/%" PRIu64, flow_stream_bytes(f, 0),
		 flow_stream_bytes(f, 1));
	fprintf(s->out, "%-16s %-28s %-28s %13s %23s %-7s %s%s\n", f->id, c, sv, pk, by,
		flow_end_name((enum flow_end)f->end), an, f->midstream ? " midstream" : "");
}

void flowsink_write(struct flowsink *s, const struct flow *f)
{
	if (s->format == FLOWSINK_JSON)
		write_json(s, f);
	else
		write_text(s, f);
}
