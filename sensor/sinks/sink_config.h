/*
 * sink_config.h - the settings of the output sinks (syslog alerts, the
 * discovery queue), read from the [syslog] and [discovery] sections of the
 * configuration file by run/config.c.
 */
#ifndef MXW_SINK_CONFIG_H
#define MXW_SINK_CONFIG_H

struct sink_config {
	char syslog_facility[16]; /* "mail", "local0".. */
	char syslog_tag[32];
	int syslog_enabled;
	unsigned alert_interval_s; /* same (rule, server, domain): one alert per interval */
	int discovery_enabled;     /* queue RCPT domains without cached policy */
	unsigned discovery_per_minute;
};

void sink_config_defaults(struct sink_config *s);

/* syslog(3) facility value of a name ("mail", "local0"), or -1. */
int syslog_facility_from_name(const char *name);

#endif
