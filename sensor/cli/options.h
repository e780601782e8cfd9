/*
 * options.h - command-line options shared by the pipeline commands
 * (analyze, capture): a getopt_long table to append to each command's own,
 * its help text, and the handler that fills struct pipeline_opts.
 */
#ifndef MXW_OPTIONS_H
#define MXW_OPTIONS_H

#include <getopt.h>

#include "run/pipeline.h"

/* Long options every pipeline command takes (terminated, for getopt_long
 * tables built by the commands). */
#define PIPELINE_OPT_BASE 1000
extern const struct option pipeline_options[];
extern const int pipeline_n_options;
/* Help text for those options. */
extern const char pipeline_options_help[];

/* Handles one getopt_long result for a pipeline option; returns 1 when
 * handled, 0 when not a pipeline option, -1 on a bad value (message
 * printed, naming `cmd`). */
int pipeline_opt(struct pipeline_opts *o, int c, const char *arg, const char *cmd);

/* Parses a non-negative integer option value with an optional k/M/G suffix;
 * returns -1 (after printing an error naming the option) when invalid. */
int parse_size_option(const char *opt, const char *val, unsigned long long *out);

#endif
