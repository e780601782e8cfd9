/*
 * alert_sink.h - findings as syslog(3) alerts: one line per finding, in
 * key=value form, every peer-controlled value escaped (no CR, LF or control
 * bytes, quotes and backslashes escaped, each value bounded), and repeated
 * alerts for the same (rule, server, domain) rate-limited with a count of
 * what was suppressed. Also renders the JSON form of a finding.
 */
#ifndef MXW_ALERT_SINK_H
#define MXW_ALERT_SINK_H

#include <stdint.h>

#include "rules/rules.h"
#include "sinks/jsonw.h"
#include "sinks/sink_config.h"

#define ALERT_VALUE_MAX  200
#define ALERT_LINE_MAX   1500
#define ALERT_RATE_SLOTS 4096

struct alert_sink;

/* Returns NULL on failure (bad facility). Opens syslog when enabled. */
struct alert_sink *alert_sink_new(const struct sink_config *cfg);
void alert_sink_free(struct alert_sink *a);

/* Sends the finding to syslog unless rate-limited; returns 1 if sent. */
int alert_sink_send(struct alert_sink *a, const struct finding *f);

uint64_t alert_sink_sent(const struct alert_sink *a);
uint64_t alert_sink_suppressed(const struct alert_sink *a);

/* Formats the syslog line (without the tag) into buf; used by tests too.
 * `suppressed` > 0 adds the count of alerts held back since the last one. */
void alert_format(const struct finding *f, uint64_t suppressed, char *buf, size_t len);

/* Escapes a value for a key=value line: printable ASCII kept, '"' and '\'
 * backslash-escaped, anything else as \xHH; at most ALERT_VALUE_MAX bytes
 * of input. */
void alert_escape(const char *in, char *out, size_t cap);

/* Appends the evidence bitmask as a JSON array of names. */
void evidence_json(struct jsonw *w, uint32_t evidence);

/* Appends {"type":"finding",...} to w. */
void finding_json(struct jsonw *w, const struct finding *f);

#endif
