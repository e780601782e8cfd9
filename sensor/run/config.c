/*
 * config.c - INI-style configuration reader: one handler per section, each
 * checking its keys and values; the reader loop adds file, line and key to
 * whatever a handler objects to.
 */
#include "run/config.h"
#include "util/text.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config_ctx {
	struct rules_config *rules;
	struct sink_config *sinks;
	struct protected_domain *protect; /* inside [protect DOMAIN] */
	char problem[400];
};

/* Records what is wrong with the current line, with what it quotes of the
 * file escaped; returns -1 for the handler to pass on. */
__attribute__((format(printf, 2, 3))) static int bad(struct config_ctx *c, const char *fmt, ...)
{
	char raw[sizeof(c->problem)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	text_escape_str(c->problem, sizeof(c->problem), raw);
	return -1;
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

/* A decimal number in [min, max]. */
static int parse_uint(const char *val, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v = strtoul(val, &end, 10);
	if (*val == '-' || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_yes_no(struct config_ctx *c, const char *val, int *out)
{
	if (strcmp(val, "yes") && strcmp(val, "no"))
		return bad(c, "'%s' is not yes or no", val);
	*out = !strcmp(val, "yes");
	return 0;
}

static int section_rules(struct config_ctx *c, const char *key, const char *val)
{
	struct rules_config *r = c->rules;
	unsigned long v;
	int id = finding_from_name(key);
	if (id >= 0) {
		if (!strcmp(val, "off")) {
			r->disabled[id] = 1;
			return 0;
		}
		int sev = severity_from_name(val);
		if (sev < 0)
			return bad(c, "'%s' is not off, info, low, medium, high or critical", val);
		r->disabled[id] = 0;
		r->severity[id] = (enum severity)sev;
	} else if (!strcmp(key, "fallback_window")) {
		if (parse_uint(val, 1, 86400, &v))
			return bad(c, "'%s' is not 1..86400 seconds", val);
		r->fallback_window_s = (uint32_t)v;
	} else if (!strcmp(key, "ca_bundle")) {
		snprintf(r->ca_bundle, sizeof(r->ca_bundle), "%s", val);
	} else {
		return bad(c, "not a finding id, fallback_window or ca_bundle");
	}
	return 0;
}

static int section_syslog(struct config_ctx *c, const char *key, const char *val)
{
	struct sink_config *s = c->sinks;
	unsigned long v;
	if (!strcmp(key, "enabled"))
		return parse_yes_no(c, val, &s->syslog_enabled);
	if (!strcmp(key, "facility")) {
		if (syslog_facility_from_name(val) < 0)
			return bad(
			    c, "'%s' is not a syslog facility (mail, daemon, local0..7, ...)", val);
		snprintf(s->syslog_facility, sizeof(s->syslog_facility), "%s", val);
	} else if (!strcmp(key, "tag")) {
		if (strlen(val) >= sizeof(s->syslog_tag))
			return bad(c, "longer than %zu characters", sizeof(s->syslog_tag) - 1);
		snprintf(s->syslog_tag, sizeof(s->syslog_tag), "%s", val);
	} else if (!strcmp(key, "alert_interval")) {
		if (parse_uint(val, 0, 86400, &v))
			return bad(c, "'%s' is not 0..86400 seconds", val);
		s->alert_interval_s = (unsigned)v;
	} else {
		return bad(c, "not enabled, facility, tag or alert_interval");
	}
	return 0;
}

static int section_discovery(struct config_ctx *c, const char *key, const char *val)
{
	unsigned long v;
	if (!strcmp(key, "enabled"))
		return parse_yes_no(c, val, &c->sinks->discovery_enabled);
	if (strcmp(key, "per_minute"))
		return bad(c, "not enabled or per_minute");
	if (parse_uint(val, 1, 100000, &v))
		return bad(c, "'%s' is not 1..100000", val);
	c->sinks->discovery_per_minute = (unsigned)v;
	return 0;
}

/* [report]: senders (addresses or prefixes, several per line with commas),
 * and the names the sent reports carry. */
static int section_report(struct config_ctx *c, const char *key, const char *val)
{
	struct report_config *r = &c->sinks->report;
	if (!strcmp(key, "senders")) {
		char list[1024];
		snprintf(list, sizeof(list), "%s", val);
		for (char *save = NULL, *t = strtok_r(list, ", \t", &save); t;
		     t = strtok_r(NULL, ", \t", &save)) {
			if (r->n_senders == REPORT_MAX_SENDERS)
				return bad(c, "more than %d senders", REPORT_MAX_SENDERS);
			if (report_sender_parse(t, &r->senders[r->n_senders]))
				return bad(c, "'%s' is not an address or ADDRESS/PREFIX", t);
			r->n_senders++;
		}
		return 0;
	}
	static const struct {
		const char *key;
		size_t off, cap;
	} texts[] = {
	    {"org", offsetof(struct report_config, org), sizeof(r->org)},
	    {"contact", offsetof(struct report_config, contact), sizeof(r->contact)},
	    {"submitter", offsetof(struct report_config, submitter), sizeof(r->submitter)},
	    {"from", offsetof(struct report_config, mail_from), sizeof(r->mail_from)},
	    {"sendmail", offsetof(struct report_config, sendmail), sizeof(r->sendmail)},
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		if (strcmp(key, texts[i].key))
			continue;
		if (strlen(val) >= texts[i].cap)
			return bad(c, "longer than %zu characters", texts[i].cap - 1);
		for (const char *p = val; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
				return bad(c, "a control character in the value");
		snprintf((char *)r + texts[i].off, texts[i].cap, "%s", val);
		return 0;
	}
	return bad(c, "not senders, org, contact, submitter, from or sendmail");
}

/* Appends an address, canonical, to one of the configuration's lists. */
static int add_address(struct config_ctx *c, char (*list)[64], int *n, int max, const char *val)
{
	if (*n == max)
		return bad(c, "more than %d entries", max);
	if (canon_addr(val, list[*n], sizeof(list[0])))
		return bad(c, "'%s' is not an IP address", val);
	(*n)++;
	return 0;
}

static int section_allow(struct config_ctx *c, const char *key, const char *val)
{
	if (strcmp(key, "plaintext"))
		return bad(c, "only 'plaintext = ADDRESS' is allowed here");
	return add_address(c, c->rules->allow_plaintext, &c->rules->n_allow, RULES_MAX_ALLOW, val);
}

static int section_protect(struct config_ctx *c, const char *key, const char *val)
{
	if (strcmp(key, "mx"))
		return bad(c, "only 'mx = ADDRESS' is allowed in [protect DOMAIN]");
	return add_address(c, c->protect->addrs, &c->protect->n_addrs, RULES_MAX_ADDRS, val);
}

typedef int (*section_fn)(struct config_ctx *c, const char *key, const char *val);

static const struct {
	const char *name;
	section_fn handler;
} sections[] = {
    {"rules", section_rules},
    {"syslog", section_syslog},
    {"discovery", section_discovery},
    {"allow", section_allow},
    {"report", section_report},
};

/* "[name]": the section's handler, or NULL with the problem recorded. */
static section_fn open_section(struct config_ctx *c, const char *name)
{
	c->protect = NULL;
	if (!strncmp(name, "protect ", 8)) {
		struct rules_config *r = c->rules;
		if (r->n_protected == RULES_MAX_PROTECTED) {
			bad(c, "more than %d protected domains", RULES_MAX_PROTECTED);
			return NULL;
		}
		struct protected_domain *p = &r->protected[r->n_protected++];
		memset(p, 0, sizeof(*p));
		hostname_lower_copy(p->domain, sizeof(p->domain), trim((char *)name + 8));
		if (!p->domain[0]) {
			bad(c, "protect needs a domain");
			return NULL;
		}
		c->protect = p;
		return section_protect;
	}
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (!strcmp(name, sections[i].name))
			return sections[i].handler;
	bad(c, "unknown section (rules, syslog, discovery, allow, report, protect DOMAIN)");
	return NULL;
}

int config_load(const char *path, struct rules_config *rules, struct sink_config *sinks, char *err,
		size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open", path);
		return -1;
	}
	struct config_ctx c = {.rules = rules, .sinks = sinks};
	section_fn handler = NULL;
	char line[1024], section[300] = "";
	const char *key = "-";
	int no = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		no++;
		key = "-";
		if (!strchr(line, '\n') && !feof(f)) {
			rc = bad(&c, "line longer than %zu bytes", sizeof(line) - 2);
			break;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *s = trim(line);
		if (!*s)
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');
			key = s;
			if (!end || end[1]) {
				rc = bad(&c, "malformed section header");
				break;
			}
			*end = 0;
			snprintf(section, sizeof(section), "%s", trim(s + 1));
			key = section;
			if (!(handler = open_section(&c, section))) {
				rc = -1;
				break;
			}
			continue;
		}
		char *eq = strchr(s, '=');
		key = s;
		if (!eq) {
			rc = bad(&c, "expected key = value");
			break;
		}
		*eq = 0;
		key = trim(s);
		char *val = trim(eq + 1);
		if (!*val)
			rc = bad(&c, "empty value");
		else if (!handler)
			rc = bad(&c, "outside a section");
		else
			rc = handler(&c, key, val);
		if (rc)
			break;
	}
	if (rc) {
		char k[200];
		snprintf(err, errlen, "%s:%d: key '%s': %s", path, no,
			 text_escape_str(k, sizeof(k), key), c.problem);
	} else if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -1;
	}
	fclose(f);
	return rc;
}
