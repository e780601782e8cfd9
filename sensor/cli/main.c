/*
 * main.c - the mxwatch program: dispatches git-style subcommands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"

#define MXWATCH_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out,
		"NAME\n"
		"    mxwatch - passive SMTP transport-security compliance monitor\n\n"
		"SYNOPSIS\n"
		"    mxwatch <command> [options] [args]\n\n"
		"COMMANDS\n"
		"    analyze FILE...   decode the SMTP sessions of pcap/pcapng files (\"-\" reads\n"
		"                      standard input), judge them against the cached policy\n"
		"    policy SUBCOMMAND fetch, import, export, show or list the MTA-STS / DANE\n"
		"                      policy cache (SQLite)\n"
		"    capture -i IFACE  the same, live on interfaces (SPAN port daemon)\n"
		"    report            RFC 8460 TLS reports or a summary from stored results\n"
		"    help [COMMAND]    show this text, or a command's manual\n\n"
		"    mxwatch <command> --help shows the options of each command.\n\n"
		"EXIT STATUS\n"
		"    0 clean, 1 findings at or above --fail-on, 2 usage or input error\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		usage(stdout);
		return EXIT_CLEAN;
	}
	if (!strcmp(cmd, "--version")) {
		printf("mxwatch %s\n", MXWATCH_VERSION);
		return EXIT_CLEAN;
	}
	if (!strcmp(cmd, "help")) {
		if (argc > 2 && !strcmp(argv[2], "analyze")) {
			char *args[] = {"analyze", "--help", NULL};
			return cmd_analyze(2, args);
		}
		if (argc > 2 && !strcmp(argv[2], "capture")) {
			char *args[] = {"capture", "--help", NULL};
			return cmd_capture(2, args);
		}
		if (argc > 2 && !strcmp(argv[2], "report")) {
			char *args[] = {"report", "--help", NULL};
			return cmd_report(2, args);
		}
		if (argc > 2 && !strcmp(argv[2], "policy")) {
			char *args[] = {"policy", "--help", NULL};
			return cmd_policy(2, args);
		}
		usage(stdout);
		return EXIT_CLEAN;
	}
	if (!strcmp(cmd, "analyze"))
		return cmd_analyze(argc - 1, argv + 1);
	if (!strcmp(cmd, "policy"))
		return cmd_policy(argc - 1, argv + 1);
	if (!strcmp(cmd, "report"))
		return cmd_report(argc - 1, argv + 1);
	if (!strcmp(cmd, "capture"))
		return cmd_capture(argc - 1, argv + 1);
	fprintf(stderr, "mxwatch: '%s' is not a command; see 'mxwatch --help'\n", cmd);
	return EXIT_USAGE;
}
