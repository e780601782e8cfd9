/*
 * analyze.c - `mxwatch analyze`: offline analysis of capture files.
 * Wires capture -> packet decode -> flow table -> consumer, and prints the
 * per-flow summary and the run's counters.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "capture.h"
#include "db.h"
#include "cmd.h"
#include "flow.h"
#include "flowsink.h"
#include "caps.h"
#include "session.h"
#include "alert_sink.h"
#include "config.h"
#include "history.h"
#include "rules.h"
#include "session_sink.h"
#include "summary.h"
#include "stagetime.h"
#include "x509.h"

#define MAX_FINDINGS_PER_SESSION 64
#define DB_BATCH 1000

struct analyze {
	struct policy_cache *policy;
	struct db *db;            /* results store, NULL with --no-store */
	uint64_t db_pending;      /* rows in the open transaction */
	int db_failed;
	struct rules *rules;
	struct history *history;
	struct alert_sink *alerts;
	struct summary *summary;
	int fail_on;              /* severity index, -1: never */
	int failed;               /* a finding reached --fail-on */
	struct finding findings[MAX_FINDINGS_PER_SESSION];
	int n_findings;
	uint64_t findings_dropped;
	struct jsonw record;
	struct flow_table *flows;
	struct session_engine *sessions;
	struct session_sink session_out;
	struct flowsink sink;
	int print_flows;
	struct capture_counters counters;
	uint64_t udp_packets;
	int quiet;
};

static void analyze_usage(FILE *out)
{
	fprintf(out,
		"NAME\n"
		"    mxwatch analyze - analyse SMTP sessions in capture files\n\n"
		"SYNOPSIS\n"
		"    mxwatch analyze [options] FILE...\n\n"
		"DESCRIPTION\n"
		"    Reads pcap and pcapng files (\"-\" is standard input) in the order given as one\n"
		"    continuous capture, reassembles every TCP flow, decodes SMTP (port 25/587, or\n"
		"    recognised by content or nDPI elsewhere), STARTTLS and the TLS handshake, and\n"
		"    prints one record per SMTP session: greeting, HELO/EHLO, STARTTLS offered,\n"
		"    mangled, requested and answered, AUTH before TLS, sender and recipient\n"
		"    domains, TLS version, cipher, SNI and the server's certificates (TLS <= 1.2),\n"
		"    stream bytes and anomalies (capture gaps, conflicting overlaps, injection).\n"
		"    Counters for everything dropped or evicted go to standard error at the end.\n\n"
		"OPTIONS\n"
		"    --json               one JSON object per line instead of the table\n"
		"    --db PATH            policy database (default: $MXWATCH_DB or\n"
		"                         ~/.local/share/mxwatch/mxwatch.db when it exists)\n"
		"    --flows              per-flow records (every TCP flow) instead of sessions\n"
		"    --config FILE        rules configuration (see etc/mxwatch.conf)\n"
		"    --syslog             send alerts to syslog(3) (facility and tag from --config)\n"
		"    --fail-on SEVERITY   exit 1 when an alerting finding is at or above SEVERITY\n"
		"                         (info, low, medium, high, critical)\n"
		"    --no-store           do not write sessions and findings to the database\n"
		"    --ndpi MODE          which flows nDPI classifies: auto (default: flows on\n"
		"                         other ports, and mail ports carrying non-SMTP bytes),\n"
		"                         all (every flow; adds nDPI's clear-text credentials\n"
		"                         verdict beside ours), off\n"
		"    -q, --quiet          no per-flow output, only the final counters\n"
		"    --max-flows N        flows tracked at once (default %u); the oldest is evicted\n"
		"    --reasm-memory SIZE  budget for out-of-order data of all flows, with k/M/G\n"
		"                         suffix (default %lluM)\n"
		"    -h, --help           this text\n\n"
		"EXIT STATUS\n"
		"    0 clean, 1 a finding at or above --fail-on, 2 usage error or an unreadable or\n"
		"    corrupt input (sessions read before the error are still reported)\n",
		FLOW_MAX_DEFAULT, REASM_BUDGET_DEFAULT / (1024 * 1024));
}

/* Progress bar on stderr for big files, only when a person is watching. */
#define PROGRESS_MIN_BYTES (16u << 20)

struct progress {
	const char *name;
	int shown;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *pg = ctx;
	if (total < PROGRESS_MIN_BYTES)
		return;
	int pct = (int)(done * 100 / total);
	char bar[41];
	int fill = pct * 40 / 100;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, ' ', (size_t)(40 - fill));
	bar[40] = 0;
	fprintf(stderr, "\r[%s] %3d%% %.40s", bar, pct, pg->name);
	pg->shown = 1;
	if (done >= total)
		fprintf(stderr, "\r%*s\r", 60, "");
}

static void on_packet(void *ctx, const struct packet *p)
{
	struct analyze *a = ctx;
	if (p->ip_proto == 6)
		flow_table_packet(a->flows, p);
	else
		a->udp_packets++;
}

static void on_finding(void *ctx, const struct finding *f)
{
	struct analyze *a = ctx;
	if (a->n_findings == MAX_FINDINGS_PER_SESSION) {
		a->findings_dropped++;
		return;
	}
	a->findings[a->n_findings++] = *f;
}

/* Results go to SQLite in batches: one transaction per DB_BATCH rows. */
static void store(struct analyze *a, const struct flow *f, const struct session *s,
		  const struct verdict *v)
{
	if (!a->db || a->db_failed)
		return;
	if (a->db_pending == 0 && db_begin(a->db)) {
		a->db_failed = 1;
		return;
	}
	char client[64], server[64];
	flow_addr_str(f, 0, client, sizeof(client));
	flow_addr_str(f, 1, server, sizeof(server));
	const struct tls_facts *t = s->tls ? tls_facts(s->tls) : NULL;
	const struct smtp_facts *m = s->smtp ? smtp_facts(s->smtp) : NULL;
	jw_reset(&a->record);
	session_record_json(&a->record, f, s, v);
	char *rec = a->record.failed ? NULL : strndup(a->record.buf, a->record.len);
	struct db_session_row row = {
		.id = f->id,
		.ts_start = (int64_t)(f->ts_first / 1000000000u),
		.ts_end = (int64_t)(f->ts_last / 1000000000u),
		.client_ip = client,
		.server_ip = server,
		.server_port = f->key.port[1],
		.domain = v->domain,
		.mx_host = v->mx_host,
		.tls_version = t && t->server_hello ? tls_version_name(t->version) : NULL,
		.starttls_offered = m && m->ehlo_reply_seen ? m->starttls_offered : -1,
		.verified = v->verified,
		.record = rec ? rec : "{}",
	};
	int rc = db_session_put(a->db, &row);
	free(rec);
	for (int i = 0; !rc && i < v->n_domains; i++)
		rc = db_session_domain_put(a->db, f->id, v->domains[i], v->mx_hosts[i]);
	for (int i = 0; !rc && i < a->n_findings; i++) {
		const struct finding *x = &a->findings[i];
		struct db_finding_row fr = {
			.session_id = x->session,
			.rule = finding_name(x->id),
			.severity = severity_name(x->severity),
			.domain = x->domain,
			.mx_host = x->mx_host,
			.rfc8460 = x->rfc8460,
			.ts = (int64_t)(x->ts_ns / 1000000000u),
			.sending_ip = x->client_ip,
			.receiving_ip = x->server_ip,
			.message = x->message,
		};
		rc = db_finding_put(a->db, &fr);
	}
	if (rc) {
		fprintf(stderr, "mxwatch analyze: storing results: %s\n", db_errmsg(a->db));
		db_rollback(a->db);
		a->db_failed = 1;
		return;
	}
	if (++a->db_pending >= DB_BATCH) {
		if (db_commit(a->db))
			a->db_failed = 1;
		a->db_pending = 0;
	}
}

static void on_session(void *ctx, const struct flow *f, const struct session *s)
{
	struct analyze *a = ctx;
	if (a->print_flows) {
		if (!a->quiet)
			flowsink_write(&a->sink, f);
		return;
	}
	if (!session_is_mail(f, s))
		return;
	struct verdict v;
	a->n_findings = 0;
	rules_evaluate(a->rules, f, s, on_finding, a, &v);
	const struct tls_facts *t = s->tls ? tls_facts(s->tls) : NULL;
	summary_session(a->summary, v.domain, t && t->server_hello, v.verified);
	for (int i = 0; i < a->n_findings; i++) {
		const struct finding *x = &a->findings[i];
		summary_finding(a->summary, x);
		alert_sink_send(a->alerts, x);
		if (a->fail_on >= 0 && x->alert && (int)x->severity >= a->fail_on)
			a->failed = 1;
	}
	store(a, f, s, &v);
	if (!a->quiet)
		session_sink_write(&a->session_out, f, s, &v, a->findings, a->n_findings);
}

static void print_counters(const struct analyze *a, FILE *out)
{
	const struct capture_counters *c = &a->counters;
	const struct flow_stats *s = flow_table_stats(a->flows);
	const struct reasm_budget *b = flow_table_budget(a->flows);

	fprintf(out, "frames %" PRIu64 " (%" PRIu64 " bytes):", c->frames, c->bytes);
	for (int r = 0; r < PKT_RESULT_COUNT; r++)
		if (c->by_result[r])
			fprintf(out, " %s=%" PRIu64, packet_result_name((enum packet_result)r),
				c->by_result[r]);
	fprintf(out, "\n");
	fprintf(out, "tcp packets %" PRIu64 ", stray (no flow) %" PRIu64 ", udp packets %" PRIu64 "\n",
		s->packets_tcp, s->packets_ignored, a->udp_packets);
	fprintf(out, "flows %" PRIu64 " (peak %" PRIu64 " at once, %" PRIu64
		" time jumps back), ended:", s->flows_created, s->flows_peak, s->clock_jumps);
	for (int e = 1; e < FLOW_END_COUNT; e++)
		if (s->ended[e])
			fprintf(out, " %s=%" PRIu64, flow_end_name((enum flow_end)e), s->ended[e]);
	fprintf(out, "\n");
	if (a->policy) {
		int nd, nh, na, nt;
		policy_cache_counts(a->policy, &nd, &nh, &na, &nt);
		fprintf(out, "policy cache: %d domains, %d mx hosts, %d addresses, %d tlsa records\n",
			nd, nh, na, nt);
	}
	const struct session_stats *ss = session_engine_stats(a->sessions);
	fprintf(out, "sessions: smtp %" PRIu64 ", implicit tls %" PRIu64 ", not mail %" PRIu64
		", bypassed after tls %" PRIu64 "\n",
		ss->sessions[SESSION_SMTP], ss->sessions[SESSION_SMTPS],
		ss->sessions[SESSION_OTHER] + ss->sessions[SESSION_UNDECIDED], ss->tls_bypassed);
	if (a->alerts)
		fprintf(out, "alerts sent %" PRIu64 ", suppressed by rate limit %" PRIu64
			", findings over the per-session cap %" PRIu64 "\n",
			alert_sink_sent(a->alerts), alert_sink_suppressed(a->alerts), a->findings_dropped);
	fprintf(out,
		"evicted for memory %" PRIu64 ", segments dropped %" PRIu64 " (%" PRIu64
		" bytes), gap bytes %" PRIu64 ", overlap conflicts %" PRIu64
		", reassembly budget refusals %" PRIu64 "\n",
		s->evicted_for_memory, s->segments_dropped, s->bytes_dropped, s->gap_bytes,
		s->overlap_conflicts, b->over_limit + b->oom);
}

int cmd_analyze(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_FLOWS, OPT_MAX_FLOWS, OPT_REASM_MEMORY, OPT_NDPI, OPT_DB,
	       OPT_CONFIG, OPT_SYSLOG, OPT_FAIL_ON, OPT_NO_STORE };
	static const struct option opts[] = {
		{"json", no_argument, NULL, OPT_JSON},
		{"flows", no_argument, NULL, OPT_FLOWS},
		{"ndpi", required_argument, NULL, OPT_NDPI},
		{"db", required_argument, NULL, OPT_DB},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"syslog", no_argument, NULL, OPT_SYSLOG},
		{"fail-on", required_argument, NULL, OPT_FAIL_ON},
		{"no-store", no_argument, NULL, OPT_NO_STORE},
		{"quiet", no_argument, NULL, 'q'},
		{"max-flows", required_argument, NULL, OPT_MAX_FLOWS},
		{"reasm-memory", required_argument, NULL, OPT_REASM_MEMORY},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct flow_config cfg;
	int json = 0, quiet = 0, flows = 0;
	enum session_ndpi_mode ndpi = SESSION_NDPI_AUTO;
	const char *db_path = NULL, *config_path = NULL;
	int syslog_on = 0, fail_on = -1, no_store = 0;
	unsigned long long v;

	flow_config_defaults(&cfg);
	optind = 1;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "qh", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_JSON:
			json = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case OPT_FLOWS:
			flows = 1;
			break;
		case OPT_DB:
			db_path = optarg;
			break;
		case OPT_CONFIG:
			config_path = optarg;
			break;
		case OPT_SYSLOG:
			syslog_on = 1;
			break;
		case OPT_NO_STORE:
			no_store = 1;
			break;
		case OPT_FAIL_ON:
			fail_on = severity_from_name(optarg);
			if (fail_on < 0) {
				fprintf(stderr, "mxwatch analyze: --fail-on: '%s' is not info, low, "
						"medium, high or critical\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_NDPI:
			if (!strcmp(optarg, "auto"))
				ndpi = SESSION_NDPI_AUTO;
			else if (!strcmp(optarg, "all"))
				ndpi = SESSION_NDPI_ALL;
			else if (!strcmp(optarg, "off"))
				ndpi = SESSION_NDPI_OFF;
			else {
				fprintf(stderr, "mxwatch analyze: --ndpi: '%s' is not auto, all or off\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_MAX_FLOWS:
			if (parse_size_option("--max-flows", optarg, &v) || v == 0 || v > (1u << 30)) {
				if (v == 0 || v > (1u << 30))
					fprintf(stderr, "mxwatch: --max-flows: must be 1..%u\n", 1u << 30);
				return EXIT_USAGE;
			}
			cfg.max_flows = (uint32_t)v;
			break;
		case OPT_REASM_MEMORY:
			if (parse_size_option("--reasm-memory", optarg, &v))
				return EXIT_USAGE;
			cfg.reasm_budget = v;
			break;
		case 'h':
			analyze_usage(stdout);
			return EXIT_CLEAN;
		default:
			fprintf(stderr, "mxwatch analyze: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			fprintf(stderr, "see 'mxwatch analyze --help'\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "mxwatch analyze: no capture file given\n");
		fprintf(stderr, "see 'mxwatch analyze --help'\n");
		return EXIT_USAGE;
	}

	struct analyze a;
	memset(&a, 0, sizeof(a));
	/* The policy cache is read once into memory: the packet path never
	 * touches SQLite. */
	char pathbuf[4096], err[512];
	if (!db_path && access(db_default_path(pathbuf, sizeof(pathbuf)), R_OK) == 0)
		db_path = pathbuf;
	struct rules_config rcfg;
	struct sink_config scfg;
	rules_config_defaults(&rcfg);
	sink_config_defaults(&scfg);
	if (config_path && config_load(config_path, &rcfg, &scfg, err, sizeof(err))) {
		fprintf(stderr, "mxwatch analyze: %s\n", err);
		return EXIT_USAGE;
	}
	if (syslog_on)
		scfg.syslog_enabled = 1;
	a.fail_on = fail_on;
	a.history = history_new();
	a.summary = calloc(1, sizeof(*a.summary));
	jw_init(&a.record);
	if (!a.history || !a.summary) {
		fprintf(stderr, "mxwatch analyze: out of memory\n");
		return EXIT_USAGE;
	}
	if (db_path) {
		struct db *d = db_open(db_path, err, sizeof(err));
		if (!d) {
			fprintf(stderr, "mxwatch analyze: %s\n", err);
			return EXIT_USAGE;
		}
		a.policy = policy_cache_load(d, err, sizeof(err));
		if (!a.policy || history_load(a.history, d)) {
			fprintf(stderr, "mxwatch analyze: %s: %s\n", db_path,
				a.policy ? db_errmsg(d) : err);
			db_close(d);
			return EXIT_USAGE;
		}
		if (no_store)
			db_close(d);
		else
			a.db = d;
	}
	a.rules = rules_new(&rcfg, a.policy, a.history, err, sizeof(err));
	a.alerts = alert_sink_new(&scfg);
	if (!a.rules || !a.alerts) {
		fprintf(stderr, "mxwatch analyze: %s\n", a.rules ? "bad syslog facility" : err);
		return EXIT_USAGE;
	}
	a.quiet = quiet;
	a.print_flows = flows;
	flowsink_init(&a.sink, stdout, json ? FLOWSINK_JSON : FLOWSINK_TEXT);
	session_sink_init(&a.session_out, stdout, json);
	if (x509_init() != 0) {
		fprintf(stderr, "mxwatch analyze: cannot initialise OpenSSL\n");
		return EXIT_USAGE;
	}
	a.sessions = session_engine_new(ndpi, on_session, &a);
	if (!a.sessions) {
		fprintf(stderr, "mxwatch analyze: cannot initialise nDPI\n");
		return EXIT_USAGE;
	}
	struct flow_consumer consumer = session_engine_consumer(a.sessions);
	a.flows = flow_table_new(&cfg, &consumer);
	if (!a.flows) {
		fprintf(stderr, "mxwatch analyze: out of memory creating the flow table\n");
		return EXIT_USAGE;
	}
	int status = EXIT_CLEAN;
#ifdef MXW_STAGE_TIMING
	uint64_t run_start = stage_now();
#endif
	int tty = isatty(STDERR_FILENO);
	for (int i = optind; i < argc; i++) {
		struct progress pg = {argv[i], 0};
		if (capture_read_file(argv[i], on_packet, &a, tty ? on_progress : NULL, &pg,
				      &a.counters, err, sizeof(err)) != 0) {
			fprintf(stderr, "%smxwatch analyze: %s\n", pg.shown ? "\n" : "", err);
			status = EXIT_USAGE;
		}
	}
	flow_table_flush(a.flows);
	if (a.db && !a.db_failed) {
		if ((a.db_pending || db_begin(a.db) == 0) &&
		    (history_save(a.history, a.db) || db_commit(a.db))) {
			fprintf(stderr, "mxwatch analyze: storing results: %s\n", db_errmsg(a.db));
			db_rollback(a.db);
		}
	}
	if (!a.print_flows && !quiet)
		summary_print(a.summary, json ? stderr : stdout);
	fflush(stdout);
	print_counters(&a, stderr);
#ifdef MXW_STAGE_TIMING
	uint64_t run_ns = stage_now() - run_start;
	static const char *const names[STAGE_COUNT] = {"message bodies", "after tls handshake"};
	for (int st = 0; st < STAGE_COUNT; st++)
		fprintf(stderr, "stage %s: %.2f%% of the run, %" PRIu64 " bytes, %" PRIu64
				" calls\n",
			names[st],
			run_ns ? 100.0 * (double)stage_times.ns[st] / (double)run_ns : 0.0,
			stage_times.bytes[st], stage_times.calls[st]);
#endif
	flow_table_free(a.flows);
	session_engine_free(a.sessions);
	session_sink_free(&a.session_out);
	flowsink_free(&a.sink);
	policy_cache_free(a.policy);
	rules_free(a.rules);
	history_free(a.history);
	alert_sink_free(a.alerts);
	free(a.summary);
	jw_free(&a.record);
	db_close(a.db);
	if (status == EXIT_CLEAN && a.failed)
		status = EXIT_FINDINGS;
	x509_cleanup();
	return status;
}
