/*
 * analyze.c - `mxwatch analyze`: offline analysis of capture files through
 * the pipeline, with a progress bar for big files on a terminal.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/capture.h"
#include "cli/cmd.h"
#include "cli/options.h"
#include "run/pipeline.h"
#include "util/stagetime.h"

static void analyze_usage(FILE *out)
{
	fprintf(
	    out,
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
	    "    domains, TLS version, cipher, SNI and the server's certificates (TLS 1.3\n"
	    "    ones through --tls-keylog), the verdict, stream bytes and anomalies\n"
	    "    (capture gaps, conflicting overlaps, injection, smuggling, evasion).\n"
	    "    Counters for everything dropped or evicted go to standard error at the end.\n\n"
	    "OPTIONS\n%s"
	    "    -h, --help           this text\n\n"
	    "EXIT STATUS\n"
	    "    0 clean, 1 a finding at or above --fail-on, 2 usage error or an unreadable or\n"
	    "    corrupt input (sessions read before the error are still reported), or\n"
	    "    results that could not be stored in the database (the message says how many)\n",
	    pipeline_options_help);
}

/* Progress bar on stderr for big files, only when a person is watching. */
#define PROGRESS_MIN_BYTES (16u << 20)

struct progress {
	const char *name;
	int shown;           /* drawn at least once (errors start on a new line) */
	atomic_int on_line; /* the bar is on the terminal now */
};

/* Rows may be written by the result writer while the reader draws: the
 * bar is wiped before each, and redrawn at the next tick. */
static void clear_progress(void *ctx)
{
	struct progress *pg = ctx;
	if (atomic_exchange(&pg->on_line, 0))
		fprintf(stderr, "\r%*s\r", 60, "");
}

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
	atomic_store(&pg->on_line, 1);
	if (done >= total)
		clear_progress(pg);
}

int cmd_analyze(int argc, char **argv)
{
	struct option opts[32];
	int n = 0;
	for (int i = 0; i < pipeline_n_options; i++)
		opts[n++] = pipeline_options[i];
	opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	opts[n] = (struct option){NULL, 0, NULL, 0};
	struct pipeline_opts o;
	pipeline_opts_defaults(&o);
	optind = 1;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "qh", opts, NULL);
		if (c == -1)
			break;
		if (c == 'q') {
			o.quiet = 1;
			continue;
		}
		if (c == 'h') {
			analyze_usage(stdout);
			return EXIT_CLEAN;
		}
		int r = pipeline_opt(&o, c, optarg, "analyze");
		if (r < 0)
			return EXIT_USAGE;
		if (r == 0) {
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
	char err[512];
	struct pipeline *p = pipeline_new(&o, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "mxwatch analyze: %s\n", err);
		return EXIT_USAGE;
	}
	int status = EXIT_CLEAN;
#ifdef MXW_STAGE_TIMING
	uint64_t run_start = stage_now();
#endif
	int tty = isatty(STDERR_FILENO);
	struct progress pg = {NULL, 0, 0};
	if (tty)
		pipeline_before_output(p, clear_progress, &pg);
	for (int i = optind; i < argc; i++) {
		pg.name = argv[i];
		pg.shown = 0;
		pipeline_name_input(p, argv[i]);
		if (capture_read_file(argv[i], pipeline_on_packet, p, tty ? on_progress : NULL, &pg,
				      pipeline_counters(p), err, sizeof(err)) != 0) {
			clear_progress(&pg);
			fprintf(stderr, "mxwatch analyze: %s\n", err);
			status = EXIT_USAGE;
		}
	}
	clear_progress(&pg);
	pipeline_finish(p, stderr);
#ifdef MXW_STAGE_TIMING
	uint64_t run_ns = stage_now() - run_start;
	static const char *const names[STAGE_COUNT] = {"message bodies", "after tls handshake"};
	for (int st = 0; st < STAGE_COUNT; st++)
		fprintf(
		    stderr, "stage %s: %.2f%% of the run, %" PRIu64 " bytes, %" PRIu64 " calls\n",
		    names[st], run_ns ? 100.0 * (double)stage_times.ns[st] / (double)run_ns : 0.0,
		    stage_times.bytes[st], stage_times.calls[st]);
#endif
	if (pipeline_store_failed(p) || pipeline_output_failed(p))
		status = EXIT_USAGE;
	if (status == EXIT_CLEAN && pipeline_failed(p))
		status = EXIT_FINDINGS;
	pipeline_free(p);
	return status;
}
