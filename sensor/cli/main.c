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
		"    prune             delete stored sessions, findings and server history\n"
		"                      older than --older-than DAYS days (policies stay)\n"
		"    ingest FILE...    store the JSON records of many sensors in one database\n"
		"                      (the collector of a network-wide deployment)\n"
		"    help [COMMAND]    show this text, or a command's manual\n\n"
		"    mxwatch <command> --help shows the options of each command.\n\n"
		"EXIT STATUS\n"
		"    0 clean, 1 findings at or above --fail-on, 2 usage or input error\n");
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
    {"analyze", cmd_analyze},
    {"policy", cmd_policy},
    {"report", cmd_report},
    {"capture", cmd_capture},
    /* retention: deletes stored results older than N days */
    {"prune", cmd_prune},
    /* the collector: records of many sensors into one database */
    {"ingest", cmd_ingest},
};

static int (*find_command(const char *name))(int, char **)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return commands[i].run;
	return NULL;
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
		int (*run)(int, char **) = argc > 2 ? find_command(argv[2]) : NULL;
		if (run) {
			char *args[] = {argv[2], "--help", NULL};
			return run(2, args);
		}
		usage(stdout);
		return EXIT_CLEAN;
	}
	int (*run)(int, char **) = find_command(cmd);
	if (run)
		return run(argc - 1, argv + 1);
	fprintf(stderr, "mxwatch: '%s' is not a command; see 'mxwatch --help'\n", cmd);
	return EXIT_USAGE;
}
