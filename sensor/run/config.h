/*
 * config.h - the rules configuration file (sample in etc/mxwatch.conf):
 * per-finding severity or "off", protected domains with their MX addresses,
 * peers allowed to be plaintext, syslog settings. INI-like; a bad line is an
 * error naming file, line and key.
 */
#ifndef MXW_RULES_CONFIG_H
#define MXW_RULES_CONFIG_H

#include <stddef.h>

#include "rules/rules.h"

struct sink_config {
	char syslog_facility[16]; /* "mail", "local0".. */
	char syslog_tag[32];
	int syslog_enabled;
	unsigned alert_interval_s; /* same (rule, server, domain): one alert per interval */
	int discovery_enabled;     /* queue RCPT domains without cached policy */
	unsigned discovery_per_minute;
};

void sink_config_defaults(struct sink_config *s);

/* Parses `path` into the configs (which hold defaults already). Returns 0,
 * or -1 with "PATH:LINE: key 'K': problem" in err. */
int config_load(const char *path, struct rules_config *rules, struct sink_config *sinks, char *err,
		size_t errlen);

#endif
