/*
 * sink_config.c - sink defaults and the syslog facility names.
 */
#include "sinks/sink_config.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>

void sink_config_defaults(struct sink_config *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->syslog_facility, sizeof(s->syslog_facility), "mail");
	snprintf(s->syslog_tag, sizeof(s->syslog_tag), "mxwatch");
	s->alert_interval_s = 300;
	s->discovery_per_minute = 30;
}

static const struct {
	const char *name;
	int value;
} facility_table[] = {
    {"kern", LOG_KERN},     {"user", LOG_USER},     {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON},
    {"auth", LOG_AUTH},     {"syslog", LOG_SYSLOG}, {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
    {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

int syslog_facility_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(facility_table) / sizeof(facility_table[0]); i++)
		if (!strcmp(facility_table[i].name, name))
			return facility_table[i].value;
	return -1;
}
