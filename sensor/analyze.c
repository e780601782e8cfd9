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

#include "capture.h"
#include "cmd.h"
#include "flow.h"
#include "flowsink.h"
#include "limits.h"

struct analyze {
	struct flow_table *flows;
	struct flowsink sink;
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
		"    continuous capture, reassembles every TCP flow and prints a summary per flow:\n"
		"    client, server, packets and stream bytes per direction, how it ended, and the\n"
		"    anomalies seen (gaps from capture loss, conflicting overlaps, ...).\n"
		"    Counters for everything dropped or evicted go to standard error at the end.\n\n"
		"OPTIONS\n"
		"    --json               one JSON object per line instead of the table\n"
		"    -q, --quiet          no per-flow output, only the final counters\n"
		"    --max-flows N        flows tracked at once (default %u); the oldest is evicted\n"
		"    --reasm-memory SIZE  budget for out-of-order data of all flows, with k/M/G\n"
		"                         suffix (default %lluM)\n"
		"    -h, --help           this text\n\n"
		"EXIT STATUS\n"
		"    0 clean, 2 usage error or an unreadable/corrupt input (flows read before the\n"
		"    error are still reported)\n",
		FLOW_MAX_DEFAULT, REASM_BUDGET_DEFAULT / (1024 * 1024));
}

static void on_packet(void *ctx, const struct packet *p)
{
	struct analyze *a = ctx;
	if (p->ip_proto == 6)
		flow_table_packet(a->flows, p);
	else
		a->udp_packets++;
}

static void on_close(void *ctx, struct flow *f)
{
	struct analyze *a = ctx;
	if (!a->quiet)
		flowsink_write(&a->sink, f);
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
	fprintf(out, "flows %" PRIu64 " (peak %" PRIu64 " at once), ended:", s->flows_created,
		s->flows_peak);
	for (int e = 1; e < FLOW_END_COUNT; e++)
		if (s->ended[e])
			fprintf(out, " %s=%" PRIu64, flow_end_name((enum flow_end)e), s->ended[e]);
	fprintf(out, "\n");
	fprintf(out,
		"evicted for memory %" PRIu64 ", segments dropped %" PRIu64 " (%" PRIu64
		" bytes), gap bytes %" PRIu64 ", overlap conflicts %" PRIu64
		", reassembly budget refusals %" PRIu64 "\n",
		s->evicted_for_memory, s->segments_dropped, s->bytes_dropped, s->gap_bytes,
		s->overlap_conflicts, b->over_limit + b->oom);
}

int cmd_analyze(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_MAX_FLOWS, OPT_REASM_MEMORY };
	static const struct option opts[] = {
		{"json", no_argument, NULL, OPT_JSON},
		{"quiet", no_argument, NULL, 'q'},
		{"max-flows", required_argument, NULL, OPT_MAX_FLOWS},
		{"reasm-memory", required_argument, NULL, OPT_REASM_MEMORY},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct flow_config cfg;
	int json = 0, quiet = 0;
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
	a.quiet = quiet;
	flowsink_init(&a.sink, stdout, json ? FLOWSINK_JSON : FLOWSINK_TEXT);
	struct flow_consumer consumer = {.ctx = &a, .close = on_close};
	a.flows = flow_table_new(&cfg, &consumer);
	if (!a.flows) {
		fprintf(stderr, "mxwatch analyze: out of memory creating the flow table\n");
		return EXIT_USAGE;
	}
	int status = EXIT_CLEAN;
	for (int i = optind; i < argc; i++) {
		char err[512];
		if (capture_read_file(argv[i], on_packet, &a, NULL, NULL, &a.counters, err,
				      sizeof(err)) != 0) {
			fprintf(stderr, "mxwatch analyze: %s\n", err);
			status = EXIT_USAGE;
		}
	}
	flow_table_flush(a.flows);
	fflush(stdout);
	print_counters(&a, stderr);
	flow_table_free(a.flows);
	flowsink_free(&a.sink);
	return status;
}
