/*
 * report_cmd.c - `mxwatch report`: RFC 8460 (SMTP TLS Reporting) JSON per
 * policy domain from the stored sessions and findings, or a terminal
 * summary. Reads the database only; the counting is sinks/tlsrpt.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sys/file.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "cli/cmd.h"
#include "db/sql/db.h"
#include "run/config.h"
#include "sinks/rua.h"
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
	    "                   [--json] [--org NAME] [--contact TEXT] [--config FILE]\n"
	    "    mxwatch report --send [--dry-run] --config FILE [--ca-bundle FILE]\n"
	    "                   [--timeout SECONDS] [--db PATH] [--from DATE] [--to DATE]\n"
	    "                   [--domain DOMAIN] [--org NAME] [--contact TEXT]\n\n"
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
	    "    With --send, one report per policy domain and UTC day that is over is sent\n"
	    "    to each destination (rua) of the domain's TLSRPT record (cached by `policy\n"
	    "    fetch`, or imported): https: destinations get an HTTP POST of the gzipped\n"
	    "    JSON (application/tlsrpt+gzip; certificate checked, no redirects),\n"
	    "    mailto: ones a message through the local MTA's sendmail with the RFC 8460\n"
	    "    5.3 headers and the gzipped report attached. What was sent is kept in the\n"
	    "    database: each (domain, day, destination) goes once, and one that failed\n"
	    "    is tried again at the next --send, for a day (then given up); one that\n"
	    "    can never take it (not one mail address) is not tried again. Without\n"
	    "    --from, the last 3 days are sent. Only sessions from the [report]\n"
	    "    senders of --config count (the organisation's own outgoing mail, so a\n"
	    "    sensor that also sees inbound mail never reports others' traffic); the\n"
	    "    same section names the organisation (org, contact), the submitter\n"
	    "    domain, the From address and the sendmail command. --dry-run says what\n"
	    "    would go where and sends nothing.\n\n"
	    "OPTIONS\n"
	    "    --db PATH        database (default as for analyze)\n"
	    "    --from DATE      start of the range, YYYY-MM-DD (UTC, inclusive)\n"
	    "    --to DATE        end of the range, YYYY-MM-DD (UTC, inclusive)\n"
	    "    --domain DOMAIN  only this policy domain\n"
	    "    --json           RFC 8460 JSON instead of the summary\n"
	    "    --org NAME       organization-name (default \"mxwatch\")\n"
	    "    --contact TEXT   contact-info (default \"\")\n"
	    "    --config FILE    [report] settings; with senders, reports and summary count\n"
	    "                     only sessions from those addresses\n"
	    "    --send           send the reports due (see above)\n"
	    "    --dry-run        with --send: say what would be sent, send nothing\n"
	    "    --ca-bundle FILE certificates that HTTPS destinations are checked against\n"
	    "                     (default: the system's)\n"
	    "    --timeout SEC    per HTTPS destination (default 60)\n"
	    "    -h, --help       this text\n\n"
	    "EXIT STATUS\n"
	    "    0 done, 1 (--send) some report could not be delivered (tried again next\n"
	    "    time), 2 usage or database error, or nothing stored for --domain in the\n"
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

/* Silence must not hide what did not fit. */
static void warn_dropped(const struct tlsrpt *r)
{
	uint64_t domains, details;
	tlsrpt_dropped(r, &domains, &details);
	if (domains)
		fprintf(stderr,
			"mxwatch report: %llu sessions or findings of domains past the 4,096th of the "
			"range are not in any report (use --domain or a shorter range)\n",
			(unsigned long long)domains);
	if (details)
		fprintf(stderr,
			"mxwatch report: %llu failure details past 256 per policy are left out of "
			"the reports (their sessions are counted)\n",
			(unsigned long long)details);
}

/* A destination failing this long after its first attempt is given up:
 * the next day's report is due by then. */
#define RETRY_FOR_S 86400
/* Without --from, the days sent are these last ones (a timer run missed
 * while the box was off is made up; a year of old days is not sent). */
#define DEFAULT_DAYS 3

struct send_totals {
	int sent, failed, gave_up, already, would, no_record, not_looked_up, given_up;
};

/* The reports of one UTC day: for each domain with traffic that day and
 * TLSRPT destinations, each destination not yet sent to. */
static int send_day(struct db *d, const struct report_config *rc, const struct rua_config *ua,
		    const char *only, int64_t day, int dry_run, const char *org,
		    const char *contact, struct send_totals *t)
{
	struct tlsrpt *r = tlsrpt_new(d, only);
	if (!r)
		return -1;
	tlsrpt_set_senders(r, rc);
	if (tlsrpt_load(r, day, day + 86400)) {
		tlsrpt_free(r);
		return -1;
	}
	warn_dropped(r);
	char date[16];
	time_t tt = (time_t)day;
	struct tm tm;
	strftime(date, sizeof(date), "%Y-%m-%d", gmtime_r(&tt, &tm));
	int rc_db = 0;
	for (int i = 0; i < tlsrpt_domains(r) && !rc_db; i++) {
		const char *name = tlsrpt_domain_name(r, i);
		struct db_tlsrpt rec;
		int have = db_tlsrpt_get(d, name, &rec);
		if (have < 0) {
			rc_db = -1;
			break;
		}
		if (!have) {
			printf("%s %s: TLSRPT record never looked up (mxwatch policy fetch): no report "
			       "sent\n",
			       date, name);
			t->not_looked_up++;
			continue;
		}
		if (!rec.rua[0] && (!strcmp(rec.result, "temperror") ||
				    !strcmp(rec.result, "dnssec-invalid"))) {
			/* not "no reports wanted": nobody knows */
			printf("%s %s: TLSRPT record unknown (last lookup: %s): no report sent\n", date,
			       name, rec.result);
			t->not_looked_up++;
			continue;
		}
		if (!rec.rua[0]) {
			t->no_record++;
			continue; /* the domain wants no reports */
		}
		char id[160];
		size_t len = 0, gz_len = 0;
		char *json = tlsrpt_report_text(r, i, org, contact, day, day + 86400, id, sizeof(id),
						&len);
		unsigned char *gz = json ? rua_gzip(json, len, &gz_len) : NULL;
		if (!gz) {
			free(json);
			rc_db = -1;
			break;
		}
		for (const char *p = rec.rua; *p && !rc_db;) {
			const char *nl = strchr(p, '\n');
			char uri[600];
			size_t n = nl ? (size_t)(nl - p) : strlen(p);
			snprintf(uri, sizeof(uri), "%.*s", (int)n, p);
			p += n + (nl ? 1 : 0);
			struct db_sent prev;
			int known = db_sent_get(d, name, day, uri, &prev);
			if (known < 0) {
				rc_db = -1;
				break;
			}
			if (known && strcmp(prev.status, "failed")) {
				if (!strcmp(prev.status, "sent"))
					t->already++;
				else
					t->given_up++;
				continue;
			}
			if (dry_run) {
				printf("%s %s %s: would send report %s (%zu bytes of JSON, %zu "
				       "gzipped)%s\n",
				       date, name, uri, id, len, gz_len,
				       known ? " again (it failed before)" : "");
				t->would++;
				continue;
			}
			char detail[512];
			int64_t now = (int64_t)time(NULL);
			int failed = rua_send(ua, uri, name, id, day, day + 86399, gz, gz_len, detail,
					      sizeof(detail));
			char shown[600];
			text_escape_str(shown, sizeof(shown), detail);
			struct db_sent row = {.attempts = (known ? prev.attempts : 0) + 1,
					      .first_attempt = known ? prev.first_attempt : now,
					      .last_attempt = now};
			const char *status = !failed			    ? "sent"
					     : failed == RUA_PERMANENT	    ? "rejected"
					     : now - row.first_attempt >= RETRY_FOR_S ? "expired"
										     : "failed";
			snprintf(row.status, sizeof(row.status), "%s", status);
			snprintf(row.report_id, sizeof(row.report_id), "%s", id);
			snprintf(row.detail, sizeof(row.detail), "%s", detail);
			if (db_sent_put(d, name, day, uri, &row))
				rc_db = -1;
			if (failed) {
				if (!strcmp(status, "failed"))
					t->failed++;
				else
					t->gave_up++;
				printf("%s %s %s: FAILED (attempt %d): %s; %s\n", date, name, uri,
				       row.attempts, shown,
				       !strcmp(status, "failed")     ? "tried again at the next --send"
				       : !strcmp(status, "rejected") ? "this destination can never take it"
								     : "given up after a day of failures");
			} else {
				t->sent++;
				printf("%s %s %s: sent report %s (%zu bytes gzipped): %s\n", date, name,
				       uri, id, gz_len, shown);
			}
		}
		free(gz);
		free(json);
	}
	tlsrpt_free(r);
	return rc_db;
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

/* --send: the days that are over in the range, each sent as send_day says. */
static const char *day_text(int64_t day)
{
	static char buf[16];
	time_t t = (time_t)day;
	struct tm tm;
	strftime(buf, sizeof(buf), "%Y-%m-%d", gmtime_r(&t, &tm));
	return buf;
}

static int cmd_send(const char *db_path, const struct report_config *rc, const char *only,
		    int64_t from, int from_given, int64_t to, int dry_run, const char *org,
		    const char *contact, const char *ca_bundle, long timeout_s)
{
	if (!rc->n_senders) {
		fprintf(stderr, "mxwatch report: --send needs [report] senders in --config: a report "
				"describes this organisation's own outgoing mail, and without the "
				"sending MTAs' addresses every session seen would count\n");
		return EXIT_USAGE;
	}
	char err[512], submitter[256];
	const char *at = strrchr(rc->mail_from, '@');
	snprintf(submitter, sizeof(submitter), "%s", rc->submitter[0] ? rc->submitter
						     : at	       ? at + 1
								       : "");
	struct rua_config ua = {ca_bundle, timeout_s, rc->sendmail, rc->mail_from, submitter};
	/* One sender at a time: two runs would both find a report unsent
	 * and both send it. */
	int lock = -1;
	if (!dry_run) {
		char lock_path[4200];
		snprintf(lock_path, sizeof(lock_path), "%s.send-lock", db_path);
		lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
		if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB)) {
			fprintf(stderr, "mxwatch report: %s: %s\n", lock_path,
				lock < 0 ? strerror(errno)
					 : "another `report --send` is running on this database");
			if (lock >= 0)
				close(lock);
			return EXIT_USAGE;
		}
	}
	struct db *d = dry_run ? db_open_readonly(db_path, err, sizeof(err))
			       : db_open_existing(db_path, err, sizeof(err));
	if (!d) {
		fprintf(stderr, "mxwatch report: %s\n", err);
		if (lock >= 0)
			close(lock);
		return EXIT_USAGE;
	}
	db_set_busy_wait(d, 30000);
	/* the span of stored sessions in the range, from this organisation */
	struct tlsrpt *all = tlsrpt_new(d, only);
	int64_t first = 0, last = 0;
	if (!all || (tlsrpt_set_senders(all, rc), tlsrpt_load(all, from, to))) {
		fprintf(stderr, "mxwatch report: %s: %s\n", db_path, all ? db_errmsg(d) : "out of memory");
		tlsrpt_free(all);
		db_close(d);
		return EXIT_USAGE;
	}
	tlsrpt_span(all, &first, &last);
	tlsrpt_free(all);
	int64_t today = (int64_t)time(NULL) / 86400 * 86400;
	if (!from_given) {
		from = today - DEFAULT_DAYS * 86400;
		printf("days from %s on (without --from, the last %d days)\n",
		       day_text(from), DEFAULT_DAYS);
	}
	struct send_totals t = {0};
	int status = EXIT_CLEAN;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int64_t day = first / 86400 * 86400;
	if (from > day)
		day = from;
	for (; first && day <= last && day < to; day += 86400) {
		if (day >= today) {
			printf("reports for today (UTC) go once the day is over\n");
			break;
		}
		if (send_day(d, rc, &ua, only, day, dry_run, org, contact, &t)) {
			fprintf(stderr, "mxwatch report: %s: %s\n", db_path, db_errmsg(d));
			status = EXIT_USAGE;
			break;
		}
	}
	curl_global_cleanup();
	if (dry_run)
		printf("%d report(s) would be sent, %d already sent", t.would, t.already);
	else
		printf("%d report(s) sent, %d failed (tried again at the next --send), %d given up, "
		       "%d already sent",
		       t.sent, t.failed, t.gave_up, t.already);
	printf("; %d given up before; %d domain-day(s) without TLSRPT destinations, %d whose "
	       "record is not known\n",
	       t.given_up, t.no_record, t.not_looked_up);
	db_close(d);
	if (lock >= 0)
		close(lock);
	if (status == EXIT_CLEAN && (t.failed || t.gave_up))
		status = EXIT_REJECTED;
	return status;
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
		OPT_CONTACT,
		OPT_CONFIG,
		OPT_SEND,
		OPT_DRY_RUN,
		OPT_CA,
		OPT_TIMEOUT
	};
	static const struct option opts[] = {
	    {"db", required_argument, NULL, OPT_DB},
	    {"from", required_argument, NULL, OPT_FROM},
	    {"to", required_argument, NULL, OPT_TO},
	    {"domain", required_argument, NULL, OPT_DOMAIN},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"org", required_argument, NULL, OPT_ORG},
	    {"contact", required_argument, NULL, OPT_CONTACT},
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"send", no_argument, NULL, OPT_SEND},
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    {"ca-bundle", required_argument, NULL, OPT_CA},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db_path = NULL, *org = NULL, *contact = NULL, *only = NULL;
	const char *config = NULL, *ca_bundle = NULL;
	int64_t from = 0, to = INT64_MAX;
	int json = 0, send = 0, dry_run = 0, from_given = 0;
	long timeout_s = 60;
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
		case OPT_CONFIG: config = optarg; break;
		case OPT_SEND: send = 1; break;
		case OPT_DRY_RUN: dry_run = 1; break;
		case OPT_CA: ca_bundle = optarg; break;
		case OPT_TIMEOUT: {
			char *end;
			timeout_s = strtol(optarg, &end, 10);
			if (*end || end == optarg || timeout_s < 1 || timeout_s > 3600) {
				fprintf(stderr, "mxwatch report: --timeout: 1..3600 seconds\n");
				return EXIT_USAGE;
			}
			break;
		}
		case OPT_FROM:
		case OPT_TO: {
			int64_t t;
			if (parse_date(optarg, &t)) {
				fprintf(stderr, "mxwatch report: --%s: '%s' is not YYYY-MM-DD\n",
					c == OPT_FROM ? "from" : "to", optarg);
				return EXIT_USAGE;
			}
			if (c == OPT_FROM) {
				from = t;
				from_given = 1;
			}
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
	if (dry_run && !send) {
		fprintf(stderr, "mxwatch report: --dry-run goes with --send\n");
		return EXIT_USAGE;
	}
	char pathbuf[4096], err[512];
	struct rules_config rules;
	static struct sink_config sinks;
	rules_config_defaults(&rules);
	sink_config_defaults(&sinks);
	if (config && config_load(config, &rules, &sinks, err, sizeof(err))) {
		fprintf(stderr, "mxwatch report: %s\n", err);
		return EXIT_USAGE;
	}
	struct report_config *rc = &sinks.report;
	if (!org)
		org = rc->org;
	if (!contact)
		contact = rc->contact;
	if (!db_path)
		db_path = db_default_path(pathbuf, sizeof(pathbuf));
	if (send)
		return cmd_send(db_path, rc, only, from, from_given, to, dry_run, org, contact,
				ca_bundle, timeout_s);
	struct db *d = db_open_readonly(db_path, err, sizeof(err));
	if (!d) {
		fprintf(stderr, "mxwatch report: %s\n", err);
		return EXIT_USAGE;
	}
	struct tlsrpt *r = tlsrpt_new(d, only);
	int status = EXIT_CLEAN;
	int64_t first, last;
	if (r)
		tlsrpt_set_senders(r, rc);
	if (!r) {
		fprintf(stderr, "mxwatch report: out of memory\n");
		status = EXIT_USAGE;
	} else if (tlsrpt_load(r, from, to)) {
		fprintf(stderr, "mxwatch report: %s: %s\n", db_path, db_errmsg(d));
		status = EXIT_USAGE;
	} else if ((warn_dropped(r), 0)) {
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
