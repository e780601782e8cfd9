/*
 * config.h - the configuration file (sample in etc/mxwatch.conf): per-finding
 * severity or "off", protected domains with their MX addresses, peers allowed
 * to be plaintext ([rules], [protect DOMAIN], [allow]), syslog and discovery
 * settings ([syslog], [discovery]). INI-like; a bad line is an error naming
 * file, line and key.
 */
#ifndef MXW_RUN_CONFIG_H
#define MXW_RUN_CONFIG_H

#include <stddef.h>

#include "rules/rules.h"
#include "sinks/sink_config.h"

/* Parses `path` into the configs (which hold defaults already). Returns 0,
 * or -1 with "PATH:LINE: key 'K': problem" in err. */
int config_load(const char *path, struct rules_config *rules, struct sink_config *sinks, char *err,
		size_t errlen);

#endif
