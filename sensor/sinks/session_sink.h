/*
 * session_sink.h - writes finished SMTP sessions: one JSON line per session
 * in the documented record schema, or a row of the terminal table.
 * Called from the session engine's emit callback; only reads its inputs.
 */
#ifndef MXW_SESSION_SINK_H
#define MXW_SESSION_SINK_H

#include <stdio.h>

#include "stream/flow.h"
#include "sinks/jsonw.h"
#include "rules/rules.h"
#include "run/session.h"

struct session_sink {
	FILE *out;
	int json;
	int header_done;
	uint64_t written;
	struct jsonw jw;
};

void session_sink_init(struct session_sink *k, FILE *out, int json);
/* Writes the session (with the rules' verdict, may be NULL) and then its
 * findings: JSON lines, or a table row with the findings beneath it. */
void session_sink_write(struct session_sink *k, const struct flow *f, const struct session *s,
			const struct verdict *v, const struct finding *findings, int n_findings);
void session_sink_free(struct session_sink *k);

/* Appends the session record (an object) to w. */
void session_record_json(struct jsonw *w, const struct flow *f, const struct session *s,
			 const struct verdict *v);

#endif
