/*
 * cmd.h - the subcommands of the mxwatch program, dispatched from main().
 * Each returns the process exit status: 0 clean, 1 findings at or above
 * --fail-on, 2 usage or input error.
 */
#ifndef MXW_CMD_H
#define MXW_CMD_H

#define EXIT_CLEAN        0
#define EXIT_FINDINGS     1
#define EXIT_USAGE        2
#define EXIT_FETCH_FAILED 3 /* policy fetch: a DNS lookup failed, cached data kept */
#define EXIT_REJECTED     1 /* ingest: lines rejected; report --send: a report not delivered */

int cmd_analyze(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_capture(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_ingest(int argc, char **argv);

#endif
