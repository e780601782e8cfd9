/*
 * tlsrpt.h - RFC 8460 (SMTP TLS Reporting) aggregation for `mxwatch report`:
 * reads the stored sessions and findings of a time range through db/, counts
 * them per policy domain, and writes one report per domain as a JSON line;
 * the same pass fills the terminal summary.
 */
#ifndef MXW_TLSRPT_H
#define MXW_TLSRPT_H

#include <stdint.h>
#include <stdio.h>

#include "db/sql/db.h"
#include "sinks/sink_config.h"
#include "sinks/summary.h"

struct tlsrpt;

/* `only_domain` (may be NULL) limits the reports to one policy domain; it
 * must outlive the object. NULL when out of memory. */
struct tlsrpt *tlsrpt_new(struct db *db, const char *only_domain);
void tlsrpt_free(struct tlsrpt *r);

/* Reads sessions and findings stored in [from, to) (seconds). -1 on a
 * database error (db_errmsg says which). */
int tlsrpt_load(struct tlsrpt *r, int64_t from, int64_t to);

/* One RFC 8460 report per policy domain, a JSON object per line. */
void tlsrpt_write_json(struct tlsrpt *r, FILE *out, const char *org, const char *contact,
		       int64_t from, int64_t to);

/* Only sessions (and findings) sent from these addresses count, in the
 * reports and the summary; NULL or no senders: every session. Set before
 * tlsrpt_load; `c` must outlive the object. */
void tlsrpt_set_senders(struct tlsrpt *r, const struct report_config *c);

/* Domain i's name (0 <= i < tlsrpt_domains()). */
const char *tlsrpt_domain_name(const struct tlsrpt *r, int i);
/* Domain i's report as JSON text (malloc'ed, NUL-terminated, *len bytes)
 * and its report-id in id; NULL when out of memory. */
char *tlsrpt_report_text(struct tlsrpt *r, int i, const char *org, const char *contact,
			 int64_t from, int64_t to, char *id, size_t idcap, size_t *len);

/* What did not fit: sessions and findings of domains past the 4,096th, and
 * failure details past 256 per policy (out of memory counts too). */
void tlsrpt_dropped(const struct tlsrpt *r, uint64_t *domains, uint64_t *details);

/* How many policy domains have a report (sessions or findings read). */
int tlsrpt_domains(const struct tlsrpt *r);

const struct summary *tlsrpt_summary(const struct tlsrpt *r);
/* Capture times of the first and last session read (0 when none). */
void tlsrpt_span(const struct tlsrpt *r, int64_t *first, int64_t *last);

#endif
