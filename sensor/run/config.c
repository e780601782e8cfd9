/*
 * config.c - INI-style configuration reader.
 */
#include "run/config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sink_config_defaults(struct sink_config *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->syslog_facility, sizeof(s->syslog_facility), "mail");
	snprintf(s->syslog_tag, sizeof(s->syslog_tag), "mxwatch");
	s->alert_interval_s = 300;
	s->discovery_per_minute = 30;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = 0;
	return s;
}

static int canon_addr(const char *in, char *out, size_t cap)
{
	unsigned char bin[16];
	if (inet_pton(AF_INET, in, bin) == 1)
		return inet_ntop(AF_INET, bin, out, (socklen_t)cap) ? 0 : -1;
	if (inet_pton(AF_INET6, in, bin) == 1)
		return inet_ntop(AF_INET6, bin, out, (socklen_t)cap) ? 0 : -1;
	return -1;
}

static const char *const facilities[] = {"kern", "user", "mail", "daemon", "auth", "syslog",
					  "local0", "local1", "local2", "local3", "local4",
					  "local5", "local6", "local7"};

int config_load(const char *path, struct rules_config *rules, struct sink_config *sinks, char *err,
		size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open", path);
		return -1;
	}
	char line[1024];
	char section[300] = "";
	struct protected_domain *cur = NULL;
	int no = 0, rc = 0;
#define BAD(key, ...)                                                                          \
	do {                                                                                   \
		int n_ = snprintf(err, errlen, "%s:%d: key '%s': ", path, no, key);            \
		if (n_ > 0 && (size_t)n_ < errlen)                                             \
			snprintf(err + n_, errlen - (size_t)n_, __VA_ARGS__);                  \
		rc = -1;                                                                       \
		goto out;                                                                      \
	} while (0)
	while (fgets(line, sizeof(line), f)) {
		no++;
		if (!strchr(line, '\n') && !feof(f))
			BAD("-", "line longer than %zu bytes", sizeof(line) - 2);
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *s = trim(line);
		if (!*s)
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');
			if (!end || end[1])
				BAD(s, "malformed section header");
			*end = 0;
			snprintf(section, sizeof(section), "%s", trim(s + 1));
			cur = NULL;
			if (!strncmp(section, "protect ", 8)) {
				if (rules->n_protected == RULES_MAX_PROTECTED)
					BAD(section, "more than %d protected domains", RULES_MAX_PROTECTED);
				cur = &rules->protected[rules->n_protected++];
				memset(cur, 0, sizeof(*cur));
				snprintf(cur->domain, sizeof(cur->domain), "%s", trim(section + 8));
				for (char *p = cur->domain; *p; p++)
					if (*p >= 'A' && *p <= 'Z')
						*p = (char)(*p - 'A' + 'a');
				if (!cur->domain[0])
					BAD(section, "protect needs a domain");
			} else if (strcmp(section, "rules") && strcmp(section, "allow") &&
				   strcmp(section, "syslog") && strcmp(section, "discovery")) {
				BAD(section, "unknown section (rules, syslog, discovery, allow, protect DOMAIN)");
			}
			continue;
		}
		char *eq = strchr(s, '=');
		if (!eq)
			BAD(s, "expected key = value");
		*eq = 0;
		char *key = trim(s), *val = trim(eq + 1);
		if (!*val)
			BAD(key, "empty value");
		if (!strcmp(section, "rules")) {
			int id = finding_from_name(key);
			if (id >= 0) {
				if (!strcmp(val, "off")) {
					rules->disabled[id] = 1;
				} else {
					int sev = severity_from_name(val);
					if (sev < 0)
						BAD(key, "'%s' is not off, info, low, medium, high or critical",
						    val);
					rules->disabled[id] = 0;
					rules->severity[id] = (enum severity)sev;
				}
			} else if (!strcmp(key, "fallback_window")) {
				char *end;
				unsigned long v = strtoul(val, &end, 10);
				if (*end || !v || v > 86400)
					BAD(key, "'%s' is not 1..86400 seconds", val);
				rules->fallback_window_s = (uint32_t)v;
			} else if (!strcmp(key, "ca_bundle")) {
				snprintf(rules->ca_bundle, sizeof(rules->ca_bundle), "%s", val);
			} else {
				BAD(key, "not a finding id, fallback_window or ca_bundle");
			}
		} else if (!strcmp(section, "syslog")) {
			if (!strcmp(key, "enabled")) {
				if (strcmp(val, "yes") && strcmp(val, "no"))
					BAD(key, "'%s' is not yes or no", val);
				sinks->syslog_enabled = !strcmp(val, "yes");
			} else if (!strcmp(key, "facility")) {
				int ok = 0;
				for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
					ok |= !strcmp(val, facilities[i]);
				if (!ok)
					BAD(key, "'%s' is not a syslog facility (mail, daemon, local0..7, ...)",
					    val);
				snprintf(sinks->syslog_facility, sizeof(sinks->syslog_facility), "%s", val);
			} else if (!strcmp(key, "tag")) {
				if (strlen(val) >= sizeof(sinks->syslog_tag))
					BAD(key, "longer than %zu characters", sizeof(sinks->syslog_tag) - 1);
				snprintf(sinks->syslog_tag, sizeof(sinks->syslog_tag), "%s", val);
			} else if (!strcmp(key, "alert_interval")) {
				char *end;
				unsigned long v = strtoul(val, &end, 10);
				if (*end || v > 86400)
					BAD(key, "'%s' is not 0..86400 seconds", val);
				sinks->alert_interval_s = (unsigned)v;
			} else {
				BAD(key, "not enabled, facility, tag or alert_interval");
			}
		} else if (!strcmp(section, "discovery")) {
			if (!strcmp(key, "enabled")) {
				if (strcmp(val, "yes") && strcmp(val, "no"))
					BAD(key, "'%s' is not yes or no", val);
				sinks->discovery_enabled = !strcmp(val, "yes");
			} else if (!strcmp(key, "per_minute")) {
				char *end;
				unsigned long v = strtoul(val, &end, 10);
				if (*end || !v || v > 100000)
					BAD(key, "'%s' is not 1..100000", val);
				sinks->discovery_per_minute = (unsigned)v;
			} else {
				BAD(key, "not enabled or per_minute");
			}
		} else if (!strcmp(section, "allow")) {
			if (strcmp(key, "plaintext"))
				BAD(key, "only 'plaintext = ADDRESS' is allowed here");
			if (rules->n_allow == RULES_MAX_ALLOW)
				BAD(key, "more than %d entries", RULES_MAX_ALLOW);
			if (canon_addr(val, rules->allow_plaintext[rules->n_allow], 64))
				BAD(key, "'%s' is not an IP address", val);
			rules->n_allow++;
		} else if (cur) {
			if (strcmp(key, "mx"))
				BAD(key, "only 'mx = ADDRESS' is allowed in [protect DOMAIN]");
			if (cur->n_addrs == RULES_MAX_ADDRS)
				BAD(key, "more than %d addresses", RULES_MAX_ADDRS);
			if (canon_addr(val, cur->addrs[cur->n_addrs], 64))
				BAD(key, "'%s' is not an IP address", val);
			cur->n_addrs++;
		} else {
			BAD(key, "outside a section");
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -1;
	}
out:
	fclose(f);
	return rc;
#undef BAD
}
