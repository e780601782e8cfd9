/*
 * flowsink.h - per-flow summary output (terminal table or JSON lines) for
 * `analyze --flows`, and the members every flow-based record starts with,
 * shared with the session records. Only formats a session record.
 */
#ifndef MXW_FLOWSINK_H
#define MXW_FLOWSINK_H

#include <stdio.h>

#include "decoder/record.h"
#include "sinks/jsonw.h"

enum flowsink_format {
	FLOWSINK_TEXT,
	FLOWSINK_JSON
};

struct flowsink {
	FILE *out;
	enum flowsink_format format;
	int header_done;
	struct jsonw jw;
};

void flowsink_init(struct flowsink *s, FILE *out, enum flowsink_format fmt);
void flowsink_write(struct flowsink *s, const struct session_record *r);
void flowsink_free(struct flowsink *s);

/* Writes the members every flow-based record starts with: type, id,
 * ts_start, ts_end, client and server endpoints. */
void record_json_head(struct jsonw *w, const char *type, const struct session_record *r);

/* Writes "packets" and "bytes" objects (client/server) as members. */
void record_json_counts(struct jsonw *w, const struct session_record *r);

/* Writes the record's anomalies up to layer `upto` (enum record_layer) as a
 * JSON array value. */
void record_json_anomalies(struct jsonw *w, const struct session_record *r, int upto);

#endif
