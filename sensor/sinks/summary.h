/*
 * summary.h - the terminal summary that ends `mxwatch analyze` and makes
 * the body of `mxwatch report`'s table: sessions, share with TLS, sessions
 * by verdict, findings by id, the busiest domains.
 */
#ifndef MXW_SUMMARY_H
#define MXW_SUMMARY_H

#include <stdint.h>
#include <stdio.h>

#include "rules/rules.h"

#define SUMMARY_MAX_DOMAINS 4096

struct summary {
	uint64_t sessions;
	uint64_t tls;
	uint64_t verdicts[VERDICT_COUNT];
	uint64_t verdict_unknown; /* stored by a version without verdicts */
	uint64_t findings[F_COUNT];
	uint64_t by_severity[SEV_COUNT];
	uint64_t alerts; /* findings that alert (not report-only) */
	struct {
		char name[256];
		uint64_t sessions;
		uint64_t findings;
	} domains[SUMMARY_MAX_DOMAINS];
	int n_domains;
	uint64_t domains_dropped;
};

/* `verdict`: enum verdict_kind, or -1 when not recorded. */
void summary_session(struct summary *s, const char *domain, int tls, int verdict);
void summary_finding(struct summary *s, const struct finding *f);
void summary_print(const struct summary *s, FILE *out);

#endif
