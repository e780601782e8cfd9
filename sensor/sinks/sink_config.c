/*
 * sink_config.c - sink defaults and the syslog facility names.
 */
#include "sinks/sink_config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

void sink_config_defaults(struct sink_config *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->syslog_facility, sizeof(s->syslog_facility), "mail");
	snprintf(s->syslog_tag, sizeof(s->syslog_tag), "mxwatch");
	s->alert_interval_s = 300;
	s->discovery_per_minute = 30;
	snprintf(s->report.org, sizeof(s->report.org), "mxwatch");
	snprintf(s->report.sendmail, sizeof(s->report.sendmail), "/usr/sbin/sendmail");
}

int report_sender_parse(const char *text, struct report_sender *out)
{
	char buf[80];
	if (strlen(text) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", text);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1)
		out->family = 4;
	else if (inet_pton(AF_INET6, buf, out->addr) == 1)
		out->family = 6;
	else
		return -1;
	int max = out->family == 4 ? 32 : 128;
	out->prefix = max;
	if (slash) {
		char *end;
		long p = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || p < 0 || p > max)
			return -1;
		out->prefix = (int)p;
	}
	return 0;
}

static int prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)bytes))
		return 0;
	if (!rest)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

int report_sender_match(const struct report_config *c, const char *ip)
{
	unsigned char a[16];
	int family = inet_pton(AF_INET, ip, a) == 1 ? 4 : inet_pton(AF_INET6, ip, a) == 1 ? 6 : 0;
	for (int i = 0; family && i < c->n_senders; i++)
		if (c->senders[i].family == family &&
		    prefix_equal(a, c->senders[i].addr, c->senders[i].prefix))
			return 1;
	return 0;
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
