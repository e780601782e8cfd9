/*
 * flowsink.h - per-flow summary output (terminal table or JSON lines).
 * The analyze loop calls flowsink_write() from the flow consumer's close
 * event; it only reads the finished flow.
 */
#ifndef MXW_FLOWSINK_H
#define MXW_FLOWSINK_H

#include <stdio.h>

#include "stream/flow.h"
#include "sinks/jsonw.h"

enum flowsink_format { FLOWSINK_TEXT, FLOWSINK_JSON };

struct flowsink {
	FILE *out;
	enum flowsink_format format;
	int header_done;
	struct jsonw jw;
};

void flowsink_init(struct flowsink *s, FILE *out, enum flowsink_format fmt);
void flowsink_write(struct flowsink *s, const struct flow *f);
void flowsink_free(struct flowsink *s);

/* Writes the members every flow-based record starts with: type, id,
 * ts_start, ts_end, client and server endpoints. */
void flowsink_json_head(struct jsonw *w, const char *type, const struct flow *f);

/* Writes "packets" and "bytes" objects (client/server) as members. */
void flowsink_json_counts(struct jsonw *w, const struct flow *f);

/* Writes the flow's anomalies as a JSON array value. */
void flowsink_json_anomalies(struct jsonw *w, const struct flow *f);

#endif
