/*
 * report_cmd.c - `mxwatch report`: RFC 8460 (SMTP TLS Reporting) JSON per
 * policy domain from the stored sessions and findings, or a terminal
 * summary. Reads the database only; the counting is sinks/tlsrpt.c's.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmd.h"
#include "db/sql/db.h"
#include "sinks/summary.h"
#include "sinks/tlsrpt.h"
#include "util/text.h"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "NAME\n"
	    "    mxwatch report - RFC 8460 TLS reports and a summary from stored results\n\n"
	    "SYNOPSIS\n"
	    "    mxwatch report [--db PATH] [--from DATE] [--to DATE] [--domain DOMAIN]\n"
	    "                   [--json] [--org NAME] [--contact TEXT]\n\n"
	    "DESCRIPTION\n"
	    "    Reads the sessions and findings that `mxwatch analyze` stored. Without --json\n"
	    "    it prints a summary: sessions, share with TLS, share verified, findings by id,\n"
	    "    top domains, and per sensor the sessions it saw, those no other sensor saw\n"
	    "    and its findings (records of many sensors: mxwatch ingest). With --json it\n"
	    "    prints one RFC 8460 report per policy domain, one JSON object per line:\n"
	    "    organization-name, date-range, contact-info, report-id, and policies[] with\n"
	    "    the domain's policy (sts, tlsa or no-policy-found from the cache), session\n"
	    "    counts and failure-details by result type, sending MTA, receiving MX host\n"
	    "    and address. A session several sensors saw counts once, with the findings\n"
	    "    of the sensor whose record stored it.\n\n"
	    "OPTIONS\n"
	    "    --db PATH        database (default as for analyze)\n"
	    "    --from DATE      start of the range, YYYY-MM-DD (UTC, inclusive)\n"
	    "    --to DATE        end of the range, YYYY-MM-DD (UTC, inclusive)\n"
	    "    --domain DOMAIN  only this policy domain\n"
	    "    --json           RFC 8460 JSON instead of the summary\n"
	    "    --org NAME       organization-name (default \"mxwatch\")\n"
	    "    --contact TEXT   contact-info (default \"\")\n"
	    "    -h, --help       this text\n\n"
	    "EXIT STATUS\n"
	    "    0 done, 2 usage or database error, or nothing stored for --domain in the\n"
	    "    range (said on standard error)\n");
}

struct sensor_rows {
	FILE *out;
	int n;
};

/* One line per sensor: sessions it saw, of those the ones no other sensor
 * saw, and the findings it reported (counted once per session above). */
static int sensor_row(void *ctx, const char *const *cols, int n)
{
	struct sensor_rows *r = ctx;
	if (n < 4)
		return 0;
	if (!r->n++)
		fprintf(r->out, "  %-34s %8s %12s %8s\n", "sensors", "sessions", "no other saw",
			"findings");
	char name[80];
	text_escape_str(name, sizeof(name), cols[0][0] ? cols[0] : "(unnamed)");
	fprintf(r->out, "    %-32.32s %8s %12s %8s\n", name, cols[1], cols[2], cols[3]);
	return 0;
}

static int parse_date(const char *s, int64_t *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(s, "%Y-%m-%d", &tm);
	if (!end || *end)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

int cmd_report(int argc, char **argv)
{
	enum {
		OPT_DB = 256,
		OPT_FROM,
		OPT_TO,
		OPT_DOMAIN,
		OPT_JSON,
		OPT_ORG,
		OPT_CONTACT
	};
	static const struct option opts[] = {
	    {"db", required_argument, NULL, OPT_DB},
	    {"from", required_argument, NULL, OPT_FROM},
	    {"to", required_argument, NULL, OPT_TO},
	    {"domain", required_argument, NULL, OPT_DOMAIN},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"org", required_argument, NULL, OPT_ORG},
	    {"contact", required_argument, NULL, OPT_CONTACT},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db_path = NULL, *org = "mxwatch", *contact = "", *only = NULL;
	int64_t from = 0, to = INT64_MAX;
	int json = 0;
	optind = 1;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_DB: db_path = optarg; break;
		case OPT_ORG: org = optarg; break;
		case OPT_CONTACT: contact = optarg; break;
		case OPT_DOMAIN: only = optarg; break;
		case OPT_JSON: json = 1; break;
		case OPT_FROM:
		case OPT_TO: {
			int64_t t;
			if (parse_date(optarg, &t)) {
				fprintf(stderr, "mxwatch report: --%s: '%s' is not YYYY-MM-DD\n",
					c == OPT_FROM ? "from" : "to", optarg);
				return EXIT_USAGE;
			}
			if (c == OPT_FROM)
				from = t;
			else
				to = t + 86400; /* inclusive day */
			break;
		}
		case 'h': usage(stdout); return EXIT_CLEAN;
		default:
			fprintf(stderr, "mxwatch report: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mxwatch report: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	char pathbuf[4096], err[512];
	if (!db_path)
		db_path = db_default_path(pathbuf, sizeof(pathbuf));
	struct db *d = db_open_readonly(db_path, err, sizeof(err));
	if (!d) {
		fprintf(stderr, "mxwatch report: %s\n", err);
		return EXIT_USAGE;
	}
	struct tlsrpt *r = tlsrpt_new(d, only);
	int status = EXIT_CLEAN;
	int64_t first, last;
	if (!r) {
		fprintf(stderr, "mxwatch report: out of memory\n");
		status = EXIT_USAGE;
	} else if (tlsrpt_load(r, from, to)) {
		fprintf(stderr, "mxwatch report: %s: %s\n", db_path, db_errmsg(d));
		status = EXIT_USAGE;
	} else if (only && !tlsrpt_domains(r)) {
		/* Not an empty report: a typo or a pruned domain must not look
		 * like a clean one. */
		char q[1100];
		fprintf(stderr,
			"mxwatch report: %s: nothing stored for domain '%s'%s (no session tied to "
			"it, no finding naming it)\n",
			db_path, text_escape_str(q, sizeof(q), only),
			from || to != INT64_MAX ? " in that date range" : "");
		status = EXIT_USAGE;
	} else if (json) {
		tlsrpt_write_json(r, stdout, org, contact, from, to);
	} else {
		char a[32] = "-", b[32] = "-";
		tlsrpt_span(r, &first, &last);
		if (first) {
			time_t t1 = (time_t)first, t2 = (time_t)last;
			struct tm tm;
			strftime(a, sizeof(a), "%Y-%m-%d %H:%M:%S", gmtime_r(&t1, &tm));
			strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%S", gmtime_r(&t2, &tm));
		}
		printf("mxwatch report: %s, sessions from %s to %s UTC\n", db_path, a, b);
		summary_print(tlsrpt_summary(r), stdout);
		struct sensor_rows rows = {stdout, 0};
		if (db_report_sensors(d, from, to, sensor_row, &rows)) {
			fprintf(stderr, "mxwatch report: %s: %s\n", db_path, db_errmsg(d));
			status = EXIT_USAGE;
		}
	}
	tlsrpt_free(r);
	db_close(d);
	return status;
}
