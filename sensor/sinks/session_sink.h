/*
 * session_sink.h - writes finished SMTP sessions: one JSON line per session
 * in the documented record schema, or a row of the terminal table, each
 * followed by the session's findings. Only formats the session record and
 * what rules/ concluded; never judges, never parses certificates.
 */
#ifndef MXW_SESSION_SINK_H
#define MXW_SESSION_SINK_H

#include <stdio.h>

#include "decoder/record.h"
#include "rules/rules.h"
#include "sinks/jsonw.h"

struct session_sink {
	FILE *out;
	int json;
	int findings_only; /* JSON: finding records alone; table: sessions with findings */
	/* Called before each write: a progress line on the same terminal is
	 * cleared first, or rows would be glued to it. */
	void (*before_write)(void *ctx);
	void *before_ctx;
	int header_done;
	uint64_t written;
	struct jsonw jw;
	/* Lines wait here and leave in one fwrite per batch; a terminal gets
	 * each session at once (batch_limit 0). */
	struct jsonw batch;
	size_t batch_limit;
	int write_failed; /* some output could not be written */
};

void session_sink_init(struct session_sink *k, FILE *out, int json);
/* Writes the session and then its findings: JSON lines, or a table row
 * with the findings beneath it. In JSON, `json` is the record already
 * serialised by session_record_json() (once, for every output); it is
 * emitted and reset. */
void session_sink_write(struct session_sink *k, const struct session_record *r,
			const struct verdict *v, struct jsonw *json, const struct finding *findings,
			int n_findings);
/* Writes out what waits in the batch. */
void session_sink_flush(struct session_sink *k);
/* Flushes, then frees. */
void session_sink_free(struct session_sink *k);

/* Appends the session record (an object) with the rules' verdict (may be
 * NULL) to w. */
void session_record_json(struct jsonw *w, const struct session_record *r, const struct verdict *v);

#endif
