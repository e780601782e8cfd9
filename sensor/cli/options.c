/*
 * options.c - the command-line options every pipeline command takes
 * (analyze, capture), parsed into struct pipeline_opts, and the shared
 * size-value parser.
 */
#include "cli/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"
#include "util/text.h"

enum {
	OPT_JSON = PIPELINE_OPT_BASE,
	OPT_FLOWS,
	OPT_MAX_FLOWS,
	OPT_REASM_MEMORY,
	OPT_NDPI,
	OPT_DB,
	OPT_CONFIG,
	OPT_SYSLOG,
	OPT_FAIL_ON,
	OPT_NO_STORE,
	OPT_QUIET,
	OPT_WORKERS,
	OPT_DB_WAIT,
	OPT_TLS_KEYLOG,
	OPT_KEYLOG_WAIT,
	OPT_FINDINGS_ONLY,
	OPT_SENSOR,
	OPT_OUTPUT
};

const struct option pipeline_options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"flows", no_argument, NULL, OPT_FLOWS},
    {"ndpi", required_argument, NULL, OPT_NDPI},
    {"db", required_argument, NULL, OPT_DB},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"syslog", no_argument, NULL, OPT_SYSLOG},
    {"fail-on", required_argument, NULL, OPT_FAIL_ON},
    {"no-store", no_argument, NULL, OPT_NO_STORE},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"max-flows", required_argument, NULL, OPT_MAX_FLOWS},
    {"reasm-memory", required_argument, NULL, OPT_REASM_MEMORY},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"db-wait", required_argument, NULL, OPT_DB_WAIT},
    {"tls-keylog", required_argument, NULL, OPT_TLS_KEYLOG},
    {"keylog-wait", required_argument, NULL, OPT_KEYLOG_WAIT},
    {"findings-only", no_argument, NULL, OPT_FINDINGS_ONLY},
    {"sensor", required_argument, NULL, OPT_SENSOR},
    {"output", required_argument, NULL, OPT_OUTPUT},
};
const int pipeline_n_options = sizeof(pipeline_options) / sizeof(pipeline_options[0]);

const char pipeline_options_help[] =
    "    --json               one JSON object per line instead of the table\n"
    "    --findings-only      only problems: with --json the finding records alone,\n"
    "                         in the table the sessions that have findings (the\n"
    "                         summary and the database are unchanged)\n"
    "    --db PATH            policy and results database (default: $MXWATCH_DB or\n"
    "                         ~/.local/share/mxwatch/mxwatch.db when it exists);\n"
    "                         \"none\": no database (no policy, nothing stored)\n"
    "    --config FILE        rules configuration (see etc/mxwatch.conf)\n"
    "    --syslog             send alerts to syslog(3) (facility and tag from --config)\n"
    "    --fail-on SEVERITY   exit 1 when an alerting finding is at or above SEVERITY\n"
    "                         (info, low, medium, high, critical)\n"
    "    --no-store           do not write sessions and findings to the database\n"
    "    --db-wait SEC        analyze: how long a database locked by another process\n"
    "                         is retried before storing stops and the run exits 2\n"
    "                         (default 30); capture retries for as long as it runs,\n"
    "                         queueing up to 64M of results and counting any dropped\n"
    "    --tls-keylog FILE    NSS key log of the MTA (SSLKEYLOGFILE format; may be\n"
    "                         given up to 8 times): TLS 1.3 server certificates are\n"
    "                         read through its SERVER_HANDSHAKE_TRAFFIC_SECRET lines\n"
    "                         and checked like TLS 1.2 ones; followed as it grows\n"
    "    --keylog-wait SEC    capture: how long a TLS 1.3 session waits for its keys\n"
    "                         to appear in the key log (default 5)\n"
    "    --flows              per-flow records (every TCP flow) instead of sessions\n"
    "    --ndpi MODE          which flows nDPI classifies: auto (default: flows on\n"
    "                         other ports, and mail ports carrying non-SMTP bytes),\n"
    "                         all (every flow; adds nDPI's clear-text credentials\n"
    "                         verdict beside ours), off\n"
    "    -q, --quiet          no per-session output and no summary, only the counters\n"
    "    --max-flows N        flows tracked at once; the oldest is evicted\n"
    "    --reasm-memory SIZE  budget for out-of-order data of all flows (k/M/G suffix)\n"
    "    --output FILE        sessions, findings and flows go to FILE (appended to)\n"
    "                         instead of standard output; capture reopens it on\n"
    "                         SIGHUP, after log rotation\n"
    "    --sensor NAME        this sensor's name on every record and alert, so that a\n"
    "                         collector can tell sensors apart (default: the host\n"
    "                         name): letters, digits, '.', '-', '_', at most 63\n"
    "    --workers N          threads (default: one per core); offline the reading\n"
    "                         thread is one of them and N - 1 decode, each owning a\n"
    "                         share of the flows. Results do not depend on N\n"
    "                         while no flow or memory cap is reached: the caps are\n"
    "                         split between the workers, each evicting its own\n"
    "                         oldest flows\n";

int parse_size_option(const char *opt, const char *val, unsigned long long *out)
{
	char *end;
	if (!val || !*val || *val == '-')
		goto bad;
	unsigned long long v = strtoull(val, &end, 10);
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1024ull, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024ull * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		mul = 1024ull * 1024 * 1024, end++;
	if (end == val || *end || v > ~0ull / mul)
		goto bad;
	*out = v * mul;
	return 0;
bad:
	fprintf(stderr, "mxwatch: %s: invalid value '%s' (expected a number, optional k/M/G)\n",
		opt, val ? val : "");
	return -1;
}

int pipeline_opt(struct pipeline_opts *o, int c, const char *arg, const char *cmd)
{
	unsigned long long v = 0;
	switch (c) {
	case OPT_JSON: o->json = 1; return 1;
	case OPT_QUIET: o->quiet = 1; return 1;
	case OPT_FINDINGS_ONLY: o->findings_only = 1; return 1;
	case OPT_FLOWS: o->flows = 1; return 1;
	case OPT_DB: o->db_path = arg; return 1;
	case OPT_OUTPUT: o->output_path = arg; return 1;
	case OPT_SENSOR:
		if (!sensor_name_valid(arg)) {
			fprintf(stderr,
				"mxwatch %s: --sensor: '%s' is not a sensor name (1 to 63 letters, "
				"digits, '.', '-' or '_')\n",
				cmd, arg);
			return -1;
		}
		o->sensor = arg;
		return 1;
	case OPT_CONFIG: o->config_path = arg; return 1;
	case OPT_SYSLOG: o->syslog_on = 1; return 1;
	case OPT_NO_STORE: o->no_store = 1; return 1;
	case OPT_FAIL_ON:
		o->fail_on = severity_from_name(arg);
		if (o->fail_on < 0) {
			fprintf(stderr,
				"mxwatch %s: --fail-on: '%s' is not info, low, medium, high or "
				"critical\n",
				cmd, arg);
			return -1;
		}
		return 1;
	case OPT_NDPI:
		if (!strcmp(arg, "auto"))
			o->ndpi = SESSION_NDPI_AUTO;
		else if (!strcmp(arg, "all"))
			o->ndpi = SESSION_NDPI_ALL;
		else if (!strcmp(arg, "off"))
			o->ndpi = SESSION_NDPI_OFF;
		else {
			fprintf(stderr, "mxwatch %s: --ndpi: '%s' is not auto, all or off\n", cmd,
				arg);
			return -1;
		}
		return 1;
	case OPT_MAX_FLOWS:
		if (parse_size_option("--max-flows", arg, &v))
			return -1;
		if (v == 0 || v > (1u << 30)) {
			fprintf(stderr, "mxwatch %s: --max-flows: must be 1..%u\n", cmd, 1u << 30);
			return -1;
		}
		o->flow.max_flows = (uint32_t)v;
		return 1;
	case OPT_WORKERS:
		if (parse_size_option("--workers", arg, &v))
			return -1;
		if (v < 1 || v > PIPELINE_MAX_WORKERS) {
			fprintf(stderr, "mxwatch %s: --workers: must be 1..%d\n", cmd,
				PIPELINE_MAX_WORKERS);
			return -1;
		}
		o->workers = (int)v;
		return 1;
	case OPT_DB_WAIT:
		if (parse_size_option("--db-wait", arg, &v))
			return -1;
		if (v > 86400) {
			fprintf(stderr, "mxwatch %s: --db-wait: at most 86400 seconds\n", cmd);
			return -1;
		}
		o->db_wait_s = (int)v;
		return 1;
	case OPT_TLS_KEYLOG:
		if (o->n_keylogs == PIPELINE_MAX_KEYLOGS) {
			fprintf(stderr, "mxwatch %s: --tls-keylog: at most %d files\n", cmd,
				PIPELINE_MAX_KEYLOGS);
			return -1;
		}
		o->keylogs[o->n_keylogs++] = arg;
		return 1;
	case OPT_KEYLOG_WAIT:
		if (parse_size_option("--keylog-wait", arg, &v))
			return -1;
		if (v > 3600) {
			fprintf(stderr, "mxwatch %s: --keylog-wait: at most 3600 seconds\n", cmd);
			return -1;
		}
		o->keylog_wait_s = (int)v;
		return 1;
	case OPT_REASM_MEMORY:
		if (parse_size_option("--reasm-memory", arg, &v))
			return -1;
		o->flow.reasm_budget = v;
		return 1;
	default: return 0;
	}
}
