/*
 * summary.c - counts and the terminal summary table.
 */
#include "sinks/summary.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int domain_slot(struct summary *s, const char *domain)
{
	if (!domain || !domain[0])
		return -1;
	for (int i = 0; i < s->n_domains; i++) {
		const char *a = s->domains[i].name, *b = domain;
		while (*a && (*a == *b || (*a == '?' && !(*b > 0x20 && *b < 0x7f)))) {
			a++;
			b++;
		}
		if (!*a && !*b)
			return i;
	}
	if (s->n_domains == SUMMARY_MAX_DOMAINS) {
		s->domains_dropped++;
		return -1;
	}
	/* Domains come off the wire (RCPT TO): keep the terminal safe. */
	char *d = s->domains[s->n_domains].name;
	size_t i = 0;
	for (; domain[i] && i + 1 < sizeof(s->domains[0].name); i++)
		d[i] = (domain[i] > 0x20 && domain[i] < 0x7f) ? domain[i] : '?';
	d[i] = 0;
	return s->n_domains++;
}

void summary_session(struct summary *s, const char *domain, int tls, int verdict)
{
	s->sessions++;
	s->tls += tls != 0;
	if (verdict >= 0 && verdict < VERDICT_COUNT)
		s->verdicts[verdict]++;
	else
		s->verdict_unknown++;
	int i = domain_slot(s, domain);
	if (i >= 0)
		s->domains[i].sessions++;
}

void summary_finding(struct summary *s, const struct finding *f)
{
	s->findings[f->id]++;
	s->by_severity[f->severity]++;
	s->alerts += f->alert;
	int i = domain_slot(s, f->domain);
	if (i >= 0)
		s->domains[i].findings++;
}

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0.0;
}

static int by_sessions(const void *a, const void *b)
{
	const uint64_t *x = (const uint64_t *)((const char *)a + 256);
	const uint64_t *y = (const uint64_t *)((const char *)b + 256);
	if (*x != *y)
		return *x < *y ? 1 : -1;
	return strcmp(a, b);
}

void summary_print(const struct summary *s, FILE *out)
{
	fprintf(out, "\nsummary\n");
	fprintf(out, "  sessions        %" PRIu64 "\n", s->sessions);
	fprintf(out, "  with TLS        %" PRIu64 " (%.1f%%)\n", s->tls, pct(s->tls, s->sessions));
	/* Every session has one verdict: the lines add up to the sessions. */
	fprintf(out, "  verdicts\n");
	for (int v = 0; v < VERDICT_COUNT; v++)
		fprintf(out, "    %-28s %" PRIu64 " (%.1f%%)\n", verdict_name((enum verdict_kind)v),
			s->verdicts[v], pct(s->verdicts[v], s->sessions));
	if (s->verdict_unknown)
		fprintf(out, "    %-28s %" PRIu64 " (stored without a verdict)\n", "unrecorded",
			s->verdict_unknown);
	uint64_t total = 0;
	for (int i = 0; i < F_COUNT; i++)
		total += s->findings[i];
	fprintf(out, "  findings        %" PRIu64 " (%" PRIu64 " alerting)\n", total, s->alerts);
	for (int i = 0; i < F_COUNT; i++)
		if (s->findings[i])
			fprintf(out, "    %-28s %" PRIu64 "\n", finding_name((enum finding_id)i),
				s->findings[i]);
	if (s->n_domains) {
		/* Sort a copy: the summary itself keeps insertion order. */
		size_t n = (size_t)s->n_domains;
		char(*copy)[256 + 16] = malloc(n * sizeof(*copy));
		if (copy) {
			for (size_t i = 0; i < n; i++) {
				memcpy(copy[i], s->domains[i].name, 256);
				memcpy(copy[i] + 256, &s->domains[i].sessions, 8);
				memcpy(copy[i] + 264, &s->domains[i].findings, 8);
			}
			qsort(copy, n, sizeof(*copy), by_sessions);
			fprintf(out, "  top domains     %-32s %8s %8s\n", "", "sessions",
				"findings");
			for (size_t i = 0; i < n && i < 10; i++) {
				uint64_t ss, ff;
				memcpy(&ss, copy[i] + 256, 8);
				memcpy(&ff, copy[i] + 264, 8);
				fprintf(out, "    %-44.44s %8" PRIu64 " %8" PRIu64 "\n", copy[i],
					ss, ff);
			}
			free(copy);
		}
	}
}
