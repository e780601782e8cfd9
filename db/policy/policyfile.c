/*
 * policyfile.c - parse and write the policy text format.
 */
#include "db/policy/policyfile.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/policy/mtasts.h"
#include "db/policy/tlsrpt_txt.h"
#include "util/text.h"

#define MAX_FIELDS 80
#define MAX_LINE   32768

struct line {
	char *f[MAX_FIELDS];
	int n;
	const char *name;
	int no;
	char *err;
	size_t errlen;
};

/* What the line says is quoted escaped (at most 80 of its bytes): a binary
 * file's bytes never reach the terminal raw. */
static int fail(struct line *l, const char *field, const char *msg, const char *val)
{
	char f[160], v[330];
	text_escape_str(f, sizeof(f), field);
	if (val)
		text_escape(v, sizeof(v), val, strnlen(val, 80));
	snprintf(l->err, l->errlen, "%s:%d: %s: %s%s%s%s", l->name, l->no, f, msg, val ? " '" : "",
		 val ? v : "", val ? "'" : "");
	return -1;
}

/* Lower-cases a name and drops a trailing dot: the cache's canonical form. */
static void canon(char *s)
{
	ascii_lower_inplace(s);
	size_t n = strlen(s);
	if (n > 1 && s[n - 1] == '.')
		s[n - 1] = 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return -1;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Takes the optional trailing dnssec=... field. */
static int opt_dnssec(struct line *l, int from, char *out, size_t cap)
{
	snprintf(out, cap, "secure");
	for (int i = from; i < l->n; i++) {
		if (strncmp(l->f[i], "dnssec=", 7) != 0)
			return fail(l, "field", "unexpected", l->f[i]);
		const char *v = l->f[i] + 7;
		if (strcmp(v, "secure") && strcmp(v, "insecure"))
			return fail(l, "dnssec", "must be secure or insecure, not", v);
		snprintf(out, cap, "%s", v);
	}
	return 0;
}

static int rec_mx(struct db *d, struct line *l, int64_t now)
{
	if (l->n < 4)
		return fail(l, "mx", "expected", "mx DOMAIN PREFERENCE HOST");
	struct db_mx m;
	memset(&m, 0, sizeof(m));
	canon(l->f[1]);
	canon(l->f[3]);
	unsigned long pref;
	if (!hostname_valid(l->f[1]))
		return fail(l, "domain", "not a domain name", l->f[1]);
	if (parse_uint(l->f[2], 65535, &pref))
		return fail(l, "preference", "not a number 0..65535", l->f[2]);
	if (!hostname_valid(l->f[3]))
		return fail(l, "host", "not a host name", l->f[3]);
	if (opt_dnssec(l, 4, m.dnssec, sizeof(m.dnssec)))
		return -1;
	snprintf(m.domain, sizeof(m.domain), "%s", l->f[1]);
	snprintf(m.host, sizeof(m.host), "%s", l->f[3]);
	snprintf(m.source, sizeof(m.source), "import");
	m.preference = (int)pref;
	m.fetched_at = now;
	return db_mx_put(d, &m) ? fail(l, "mx", "database error", db_errmsg(d)) : 0;
}

static int rec_address(struct db *d, struct line *l, int64_t now)
{
	if (l->n < 3)
		return fail(l, "address", "expected", "address HOST ADDRESS");
	struct db_addr a;
	memset(&a, 0, sizeof(a));
	canon(l->f[1]);
	if (!hostname_valid(l->f[1]))
		return fail(l, "host", "not a host name", l->f[1]);
	unsigned char bin[16];
	int v4 = inet_pton(AF_INET, l->f[2], bin) == 1;
	if (!v4 && inet_pton(AF_INET6, l->f[2], bin) != 1)
		return fail(l, "address", "not an IPv4 or IPv6 address", l->f[2]);
	if (opt_dnssec(l, 3, a.dnssec, sizeof(a.dnssec)))
		return -1;
	snprintf(a.host, sizeof(a.host), "%s", l->f[1]);
	/* Stored in the canonical text form so lookups compare equal. */
	inet_ntop(v4 ? AF_INET : AF_INET6, bin, a.address, sizeof(a.address));
	snprintf(a.source, sizeof(a.source), "import");
	a.fetched_at = now;
	return db_addr_put(d, &a) ? fail(l, "address", "database error", db_errmsg(d)) : 0;
}

static int rec_tlsa(struct db *d, struct line *l, int64_t now)
{
	if (l->n < 7)
		return fail(l, "tlsa", "expected", "tlsa HOST PORT USAGE SELECTOR MTYPE HEX");
	struct db_tlsa *t = calloc(1, sizeof(*t));
	if (!t)
		return fail(l, "tlsa", "out of memory", NULL);
	int rc = -1;
	unsigned long port, usage, sel, mtype;
	canon(l->f[1]);
	if (!hostname_valid(l->f[1]))
		rc = fail(l, "host", "not a host name", l->f[1]);
	else if (parse_uint(l->f[2], 65535, &port) || port == 0)
		rc = fail(l, "port", "not a port number", l->f[2]);
	else if (parse_uint(l->f[3], 255, &usage))
		rc = fail(l, "usage", "not a number 0..255", l->f[3]);
	else if (parse_uint(l->f[4], 255, &sel))
		rc = fail(l, "selector", "not a number 0..255", l->f[4]);
	else if (parse_uint(l->f[5], 255, &mtype))
		rc = fail(l, "matching type", "not a number 0..255", l->f[5]);
	else {
		size_t hl = strlen(l->f[6]);
		int ok = hl > 0 && hl % 2 == 0 && hl < DB_MAX_TLSA_HEX;
		for (size_t i = 0; ok && i < hl; i++) {
			char c = l->f[6][i];
			if (c >= 'A' && c <= 'F')
				l->f[6][i] = ascii_lower(c);
			else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
				ok = 0;
		}
		if (!ok)
			rc = fail(l, "data", "not an even number of hex digits", l->f[6]);
		else if (!opt_dnssec(l, 7, t->dnssec, sizeof(t->dnssec))) {
			snprintf(t->name, sizeof(t->name), "_%lu._tcp.%s", port, l->f[1]);
			snprintf(t->host, sizeof(t->host), "%s", l->f[1]);
			t->port = (int)port;
			t->usage = (int)usage;
			t->selector = (int)sel;
			t->mtype = (int)mtype;
			snprintf(t->data, sizeof(t->data), "%s", l->f[6]);
			snprintf(t->source, sizeof(t->source), "import");
			t->fetched_at = now;
			rc = db_tlsa_put(d, t) ? fail(l, "tlsa", "database error", db_errmsg(d))
					       : 0;
		}
	}
	free(t);
	return rc;
}

static int rec_sts(struct db *d, struct line *l, int64_t now)
{
	if (l->n < 2)
		return fail(l, "mta-sts", "expected", "mta-sts DOMAIN mode=... max_age=... mx=...");
	canon(l->f[1]);
	if (!hostname_valid(l->f[1]))
		return fail(l, "domain", "not a domain name", l->f[1]);
	/* Rebuild a policy file and put it through the RFC 8461 grammar, so an
	 * imported policy obeys the same rules as a fetched one. */
	char text[20480];
	size_t o = (size_t)snprintf(text, sizeof(text), "version: STSv1\n");
	const char *id = NULL;
	for (int i = 2; i < l->n; i++) {
		char *eq = strchr(l->f[i], '=');
		if (!eq)
			return fail(l, "field", "expected KEY=VALUE, got", l->f[i]);
		*eq = 0;
		const char *k = l->f[i], *v = eq + 1;
		if (!strcmp(k, "id")) {
			id = v;
			continue;
		}
		if (strcmp(k, "mode") && strcmp(k, "max_age") && strcmp(k, "mx"))
			return fail(l, k, "unknown field (mode, max_age, mx, id)", NULL);
		int n = snprintf(text + o, sizeof(text) - o, "%s: %s\n", k, v);
		if (n < 0 || (size_t)n >= sizeof(text) - o)
			return fail(l, "mta-sts", "too long", NULL);
		o += (size_t)n;
	}
	struct sts_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return fail(l, "mta-sts", "out of memory", NULL);
	char perr[256];
	if (sts_policy_parse(text, o, p, perr, sizeof(perr))) {
		free(p);
		/* perr names a line of the rebuilt text; name the field instead. */
		const char *field = perr;
		if (!strncmp(perr, "line ", 5) && strchr(perr, ':'))
			field = strchr(perr, ':') + 2;
		return fail(l, "mta-sts", field, NULL);
	}
	if (id) {
		struct sts_txt t;
		char tx[64], terr[128];
		snprintf(tx, sizeof(tx), "v=STSv1; id=%.40s", id);
		if (sts_txt_parse(tx, strlen(tx), &t, terr, sizeof(terr))) {
			free(p);
			return fail(l, "id", terr, id);
		}
	}
	struct db_sts *s = calloc(1, sizeof(*s));
	if (!s) {
		free(p);
		return fail(l, "mta-sts", "out of memory", NULL);
	}
	snprintf(s->domain, sizeof(s->domain), "%s", l->f[1]);
	snprintf(s->txt_id, sizeof(s->txt_id), "%s", id ? id : "import");
	snprintf(s->txt_dnssec, sizeof(s->txt_dnssec), "secure");
	s->policy_text = text;
	snprintf(s->mode, sizeof(s->mode), "%s", sts_mode_name(p->mode));
	s->max_age = p->max_age;
	size_t mo = 0;
	for (int i = 0; i < p->n_mx; i++) {
		int n = snprintf(s->mx_patterns + mo, sizeof(s->mx_patterns) - mo, "%s%s",
				 i ? "\n" : "", p->mx[i]);
		if (n < 0 || (size_t)n >= sizeof(s->mx_patterns) - mo) {
			free(s);
			free(p);
			return fail(l, "mx", "too many patterns", NULL);
		}
		mo += (size_t)n;
	}
	s->policy_fetched_at = now;
	s->checked_at = now;
	snprintf(s->result, sizeof(s->result), "ok");
	snprintf(s->source, sizeof(s->source), "import");
	int rc = db_sts_put(d, s) ? fail(l, "mta-sts", "database error", db_errmsg(d)) : 0;
	free(s);
	free(p);
	return rc;
}

/* Letters, digits, '-', '_' and dots, 1-253 bytes: a name that can go into
 * mail headers and file names as it is. */
static int dns_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return 0;
	}
	return 1;
}

/* tlsrpt DOMAIN rua=URI[,URI...] [dnssec=...]: put through the RFC 8460
 * record grammar, as a fetched record is. */
static int rec_tlsrpt(struct db *d, struct line *l, int64_t now)
{
	if (l->n < 3 || l->n > 4 || strncmp(l->f[2], "rua=", 4))
		return fail(l, "tlsrpt", "expected", "tlsrpt DOMAIN rua=URI[,URI...] [dnssec=...]");
	struct db_tlsrpt *t = calloc(1, sizeof(*t));
	struct tlsrpt_txt *rec = calloc(1, sizeof(*rec));
	if (!t || !rec) {
		free(t);
		free(rec);
		return fail(l, "tlsrpt", "out of memory", NULL);
	}
	int rc = 0;
	canon(l->f[1]);
	if (!dns_name_ok(l->f[1])) {
		free(t);
		free(rec);
		return fail(l, "tlsrpt", "not a domain name", l->f[1]);
	}
	snprintf(t->domain, sizeof(t->domain), "%s", l->f[1]);
	int n = snprintf(t->txt_raw, sizeof(t->txt_raw), "v=TLSRPTv1; %s", l->f[2]);
	char perr[256];
	if (n < 0 || (size_t)n >= sizeof(t->txt_raw))
		rc = fail(l, "rua", "too long", NULL);
	else if (tlsrpt_txt_parse(t->txt_raw, (size_t)n, rec, perr, sizeof(perr)))
		rc = fail(l, "rua", perr, l->f[2] + 4);
	else if (opt_dnssec(l, 3, t->dnssec, sizeof(t->dnssec)))
		rc = -1;
	if (!rc) {
		size_t o = 0;
		for (int i = 0; i < rec->n_rua; i++)
			o += (size_t)snprintf(t->rua + o, sizeof(t->rua) - o, "%s%s", i ? "\n" : "",
					      rec->rua[i]);
		t->fetched_at = t->checked_at = now;
		snprintf(t->result, sizeof(t->result), "ok");
		snprintf(t->source, sizeof(t->source), "import");
		if (db_tlsrpt_put(d, t))
			rc = fail(l, "tlsrpt", "database error", db_errmsg(d));
	}
	free(t);
	free(rec);
	return rc;
}

int policyfile_import(struct db *d, FILE *f, const char *name, char *err, size_t errlen,
		      int *records)
{
	char *buf = malloc(MAX_LINE);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	int64_t now = (int64_t)time(NULL);
	struct line l = {.name = name, .err = err, .errlen = errlen};
	int rc = 0;
	*records = 0;
	if (db_begin(d)) {
		snprintf(err, errlen, "%s: database: %s", name, db_errmsg(d));
		free(buf);
		return -1;
	}
	while (fgets(buf, MAX_LINE, f)) {
		l.no++;
		size_t len = strlen(buf);
		if (len == MAX_LINE - 1 && buf[len - 1] != '\n') {
			rc = fail(&l, "line", "longer than 32767 bytes", NULL);
			break;
		}
		/* A comment starts a line or follows a space: '#' inside a field
		 * (a URI's fragment, a mail address) is the field's. */
		for (char *h = buf; (h = strchr(h, '#')); h++)
			if (h == buf || h[-1] == ' ' || h[-1] == '\t') {
				*h = 0;
				break;
			}
		l.n = 0;
		for (char *tok = strtok(buf, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
			if (l.n == MAX_FIELDS) {
				rc = fail(&l, "line", "too many fields", NULL);
				break;
			}
			l.f[l.n++] = tok;
		}
		if (rc)
			break;
		if (l.n == 0)
			continue;
		if (!strcmp(l.f[0], "mx"))
			rc = rec_mx(d, &l, now);
		else if (!strcmp(l.f[0], "address"))
			rc = rec_address(d, &l, now);
		else if (!strcmp(l.f[0], "tlsa"))
			rc = rec_tlsa(d, &l, now);
		else if (!strcmp(l.f[0], "mta-sts"))
			rc = rec_sts(d, &l, now);
		else if (!strcmp(l.f[0], "tlsrpt"))
			rc = rec_tlsrpt(d, &l, now);
		else
			rc = fail(&l, "record", "unknown type (mx, address, mta-sts, tlsa, tlsrpt)",
				  l.f[0]);
		if (rc)
			break;
		(*records)++;
	}
	if (!rc && ferror(f)) {
		snprintf(err, errlen, "%s: read error", name);
		rc = -1;
	}
	free(buf);
	if (rc) {
		db_rollback(d);
		*records = 0;
		return -1;
	}
	if (db_commit(d)) {
		snprintf(err, errlen, "%s: database: %s", name, db_errmsg(d));
		return -1;
	}
	return 0;
}

static int ex_mx(void *ctx, const struct db_mx *r)
{
	fprintf(ctx, "mx %s %d %s dnssec=%s\n", r->domain, r->preference, r->host,
		strcmp(r->dnssec, "secure") ? "insecure" : "secure");
	return 0;
}

static int ex_addr(void *ctx, const struct db_addr *r)
{
	fprintf(ctx, "address %s %s dnssec=%s\n", r->host, r->address,
		strcmp(r->dnssec, "secure") ? "insecure" : "secure");
	return 0;
}

static int ex_tlsa(void *ctx, const struct db_tlsa *r)
{
	/* Bogus data is never stored, so secure/insecure covers it all. */
	fprintf(ctx, "tlsa %s %d %d %d %d %s dnssec=%s\n", r->host, r->port, r->usage, r->selector,
		r->mtype, r->data, strcmp(r->dnssec, "secure") ? "insecure" : "secure");
	return 0;
}

static int ex_sts(void *ctx, const struct db_sts *r)
{
	if (!r->mode[0] || r->max_age < 0)
		return 0; /* no policy known: nothing to export */
	fprintf(ctx, "mta-sts %s mode=%s max_age=%lld", r->domain, r->mode, (long long)r->max_age);
	const char *p = r->mx_patterns;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		fprintf(ctx, " mx=%.*s", (int)n, p);
		p += n + (nl ? 1 : 0);
	}
	if (r->txt_id[0])
		fprintf(ctx, " id=%s", r->txt_id);
	fprintf(ctx, "\n");
	return 0;
}

static int ex_tlsrpt(void *ctx, const struct db_tlsrpt *r)
{
	if (!r->rua[0])
		return 0; /* no destinations known: nothing to export */
	fprintf(ctx, "tlsrpt %s rua=", r->domain);
	for (const char *p = r->rua; *p; p++)
		fputc(*p == '\n' ? ',' : *p, ctx);
	fprintf(ctx, " dnssec=%s\n", strcmp(r->dnssec, "secure") ? "insecure" : "secure");
	return 0;
}

int policyfile_export(struct db *d, FILE *out)
{
	fprintf(out, "# mxwatch policy export (mxwatch policy import reads this back)\n");
	if (db_each_mx(d, NULL, ex_mx, out) || db_each_addr(d, NULL, ex_addr, out) ||
	    db_each_sts(d, NULL, ex_sts, out) || db_each_tlsa(d, NULL, ex_tlsa, out) ||
	    db_each_tlsrpt(d, NULL, ex_tlsrpt, out))
		return -1;
	return 0;
}
