/*
 * sink_config.h - the settings of the output sinks (syslog alerts, the
 * discovery queue), read from the [syslog] and [discovery] sections of the
 * configuration file by run/config.c.
 */
#ifndef MXW_SINK_CONFIG_H
#define MXW_SINK_CONFIG_H

/* [report]: who this organisation is in the reports it sends, and which
 * sessions are its own (RFC 8460 reports describe the sender's traffic). */
#define REPORT_MAX_SENDERS 64
struct report_sender {
	int family; /* 4 or 6 */
	int prefix; /* bits */
	unsigned char addr[16];
};
struct report_config {
	struct report_sender senders[REPORT_MAX_SENDERS];
	int n_senders;
	char org[128];       /* organization-name */
	char contact[256];   /* contact-info */
	char submitter[256]; /* TLS-Report-Submitter: a domain of ours */
	char mail_from[256]; /* envelope and header From of mailed reports */
	char sendmail[512];  /* the local MTA's sendmail interface, with arguments */
};

struct sink_config {
	char syslog_facility[16]; /* "mail", "local0".. */
	char syslog_tag[32];
	int syslog_enabled;
	unsigned alert_interval_s; /* same (rule, server, domain): one alert per interval */
	int discovery_enabled;     /* queue RCPT domains without cached policy */
	unsigned discovery_per_minute;
	struct report_config report;
};

void sink_config_defaults(struct sink_config *s);

/* "ADDRESS" or "ADDRESS/PREFIX" into a sender entry; -1 when it is not one. */
int report_sender_parse(const char *text, struct report_sender *out);
/* 1 when the address (text) is one of the configured senders. */
int report_sender_match(const struct report_config *c, const char *ip);

/* syslog(3) facility value of a name ("mail", "local0"), or -1. */
int syslog_facility_from_name(const char *name);

#endif
